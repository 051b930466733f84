"""Per-run artifacts: resolved config, the confusion matrix (CSV; PNG on request), loss curve, a failed job's log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

if TYPE_CHECKING:
    import os

    from fnn_core.history import History

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pipeline.tracking import layout  # noqa: E402


def log_config(resolved_config: dict) -> None:
    mlflow.log_text(yaml.safe_dump(resolved_config, sort_keys=False), layout.ARTIFACT_CONFIG)


def log_loss_curve(history: History, title: str) -> None:
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
        plt.close(fig)
    return matrix


def draw_confusion_matrix(matrix: np.ndarray, title: str) -> Figure:
    """A figure of ``matrix`` (n_classes, n_classes), counts in the cells up to 12 classes."""
    # Imported here: scikit-learn (with SciPy) is 0.6 s of the launching process's start-up, which
    # never draws a confusion matrix. Parallel workers have it from pipeline.runtime.worker_imports.
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay(matrix, display_labels=np.arange(len(matrix))).plot(
        ax=ax, cmap="Blues", include_values=len(matrix) <= 12, values_format="d", colorbar=True
    )
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def log_job_log(log_file: str | os.PathLike | None, traceback_text: str) -> None:
    """Attach a failed job's log (or, without a log file, its traceback) to its run."""
    if log_file is not None and Path(log_file).is_file():
        mlflow.log_text(Path(log_file).read_text(errors="replace"), layout.ARTIFACT_JOB_LOG)
    else:
        mlflow.log_text(traceback_text, layout.ARTIFACT_JOB_LOG)
