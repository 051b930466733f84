"""Per-run artifacts: resolved config, loss curve, confusion matrix, a failed job's log."""

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


def log_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """The test set's confusion matrix as CSV and PNG; returns it, shape (n_classes, n_classes)."""
    # Imported here: scikit-learn (with SciPy) is 0.6 s of the launching process's start-up, which
    # never draws a confusion matrix. Parallel workers have it from pipeline.runtime.worker_imports.
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    labels = np.arange(n_classes)
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    table = pd.DataFrame(matrix, index=pd.Index(labels, name="true\\predicted"), columns=labels)
    mlflow.log_text(table.to_csv(), layout.ARTIFACT_CONFUSION_CSV)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay(matrix, display_labels=labels).plot(
        ax=ax, cmap="Blues", include_values=n_classes <= 12, values_format="d", colorbar=True
    )
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test set)")
    fig.tight_layout()
    mlflow.log_figure(fig, layout.ARTIFACT_CONFUSION_PNG)
    plt.close(fig)
    return matrix


def log_job_log(log_file: str | os.PathLike | None, traceback_text: str) -> None:
    """Attach a failed job's log (or, without a log file, its traceback) to its run."""
    if log_file is not None and Path(log_file).is_file():
        mlflow.log_text(Path(log_file).read_text(errors="replace"), layout.ARTIFACT_JOB_LOG)
    else:
        mlflow.log_text(traceback_text, layout.ARTIFACT_JOB_LOG)
