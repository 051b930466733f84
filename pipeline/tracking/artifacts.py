"""Per-run artifacts: resolved config, the confusion matrix (CSV; PNG on request), loss curve, a failed job's log,
a paused run's checkpoint."""

from __future__ import annotations

import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
import yaml

from pipeline.tracking import layout

if TYPE_CHECKING:
    import os
    from types import ModuleType

    from matplotlib.figure import Figure

    from fnn_core.history import History
    from pipeline.tracking.store import Store


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the file-only Agg backend, imported at the first figure.

    Not at import: Matplotlib is 0.35 s of every parallel sweep's start-up (the workers' fork
    server), and by default no job draws (``mlflow.log_figures=false``); the report does.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def log_config(resolved_config: dict) -> None:
    mlflow.log_text(yaml.safe_dump(resolved_config, sort_keys=False), layout.ARTIFACT_CONFIG)


def log_loss_curve(history: History, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, history.epochs + 1)
    ax.plot(epochs, history["loss"], marker="o", label="train")
    if "val_loss" in history:
        ax.plot(epochs, history["val_loss"], marker="o", label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.legend()
    fig.tight_layout()
    mlflow.log_figure(fig, layout.ARTIFACT_LOSS_CURVE)
    plt.close(fig)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) label pairs, shape (n_classes, n_classes); rows are true labels."""
    pairs = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def confusion_frame(matrix: np.ndarray) -> pd.DataFrame:
    """The matrix as the CSV artifact's table: true labels down, predicted across."""
    labels = np.arange(len(matrix))
    return pd.DataFrame(matrix, index=pd.Index(labels, name="true\\predicted"), columns=labels)


def log_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, figure: bool = False) -> np.ndarray:
    """The test set's confusion matrix as CSV (and, with ``figure``, PNG); returns it, shape (n_classes, n_classes)."""
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    mlflow.log_text(confusion_frame(matrix).to_csv(), layout.ARTIFACT_CONFUSION_CSV)
    if figure:
        fig = draw_confusion_matrix(matrix, "confusion matrix (test set)")
        mlflow.log_figure(fig, layout.ARTIFACT_CONFUSION_PNG)
        pyplot().close(fig)
    return matrix


def draw_confusion_matrix(matrix: np.ndarray, title: str) -> Figure:
    """A figure of ``matrix`` (n_classes, n_classes): true labels down, predicted across, counts in
    the cells up to 12 classes (white on dark cells, as scikit-learn's ConfusionMatrixDisplay draws)."""
    fig, ax = pyplot().subplots(figsize=(5, 4.5))
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax)
    labels = np.arange(len(matrix))
    ax.set(xticks=labels, yticks=labels, xlabel="predicted", ylabel="true", title=title)
    if len(matrix) <= 12:
        dark = matrix > (matrix.max() + matrix.min()) / 2
        for (row, column), count in np.ndenumerate(matrix):
            colour = "white" if dark[row, column] else "black"
            ax.text(column, row, f"{count:d}", ha="center", va="center", color=colour, fontsize=8)
    fig.tight_layout()
    return fig


def log_job_log(log_file: str | os.PathLike | None, traceback_text: str) -> None:
    """Attach a failed job's log (or, without a log file, its traceback) to its run."""
    if log_file is not None and Path(log_file).is_file():
        mlflow.log_text(Path(log_file).read_text(errors="replace"), layout.ARTIFACT_JOB_LOG)
    else:
        mlflow.log_text(traceback_text, layout.ARTIFACT_JOB_LOG)


@dataclass
class Checkpoint:
    """What a paused run continues from: fnn_core's network and optimizer as they were after
    ``history.epochs`` epochs (``FNN.fit(..., initial_epoch=...)`` resumes them exactly), the
    epochs' history and the seconds of training so far."""

    network: Any
    optimizer: Any
    history: History
    training_time: float


def log_checkpoint(checkpoint: Checkpoint) -> None:
    """Log ``checkpoint`` to the active run (a pickle: written and read by this pipeline only)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / layout.ARTIFACT_CHECKPOINT
        path.write_bytes(pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL))
        mlflow.log_artifact(str(path))


def load_checkpoint(store: Store, run_id: str) -> Checkpoint:
    """The checkpoint a paused run logged (``log_checkpoint``)."""
    with tempfile.TemporaryDirectory() as folder:
        path = store.client.download_artifacts(run_id, layout.ARTIFACT_CHECKPOINT, folder)
        return pickle.loads(Path(path).read_bytes())
