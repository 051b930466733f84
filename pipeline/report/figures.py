"""Report figures: loss curves per activation, a table's metric vs width, heatmaps, the best run's
confusion matrix.

Each ``plot_*`` draws its figure and returns None, or, when its data has
nothing to draw (no finished run in it), draws nothing and returns why, for
the report's index.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.report.render import fmt
from pipeline.runtime import compat
from pipeline.tracking import artifacts, layout, model_registry
from pipeline.tracking.artifacts import pyplot  # Matplotlib at the first figure, not at import

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.figure import Figure
    from mlflow import MlflowClient

TRAIN_LOSS, VAL_LOSS = layout.EPOCH_METRICS["loss"], layout.EPOCH_METRICS["val_loss"]


def warm_up() -> None:
    """Draw a small figure into memory: a process's first figure costs 0.3-0.5 s more than the next
    (Matplotlib's lazy imports, font look-ups, the math-text parser for log-axis labels). Done once
    while a sweep's workers run, the report's figures, and the child that draws half of them
    (``forked_share``), start warm."""
    import io

    fig, ax = pyplot().subplots(figsize=(3, 2))
    image = ax.imshow(np.arange(4.0).reshape(2, 2), cmap="viridis")
    fig.colorbar(image, ax=ax)
    ax.text(0, 0, "0", ha="center", va="center")
    ax.set(title="warm-up", xlabel="x", ylabel="y", yscale="log")
    ax.xaxis.set_major_locator(_ticker().MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png", dpi=110)
    pyplot().close(fig)


def _ticker():
    import matplotlib.ticker

    return matplotlib.ticker


LossHistories = tuple[dict[str, list[float]], dict[str, list[float]]]


def loss_histories(client: MlflowClient, frame: pd.DataFrame, run_ids: Sequence[str]) -> LossHistories:
    """The finished runs' per-epoch train and validation losses ({run id: [loss per epoch]}), for
    ``plot_loss_curves``: read from the store here, so that the figure can be drawn anywhere."""
    finished = frame.assign(run_id=run_ids)[frame["status"] == "FINISHED"]
    ids = list(finished["run_id"])
    train, val = (compat.metric_histories(client, ids, metric) for metric in (TRAIN_LOSS, VAL_LOSS))
    return train, val


def plot_loss_curves(
    histories: LossHistories, frame: pd.DataFrame, run_ids: Sequence[str], activations: Sequence[str], path: Path
) -> str | None:
    """One panel per activation, one colour per width: train (solid) and validation (dashed), mean over
    seeds; ``histories``: ``loss_histories`` of the same runs."""
    finished = frame.assign(run_id=run_ids)[frame["status"] == "FINISHED"]
    train, val = histories
    if not any(train.values()):
        return "no finished run has a loss curve"
    fig, axes = pyplot().subplots(
        1, len(activations), figsize=(4.5 * len(activations), 3.8), squeeze=False, sharey=True
    )
    widths = sorted(frame["hidden_neurons"].unique())
    colors = pyplot().cm.viridis(np.linspace(0, 0.9, len(widths)))
    for ax, activation in zip(axes[0], activations):
        for width, color in zip(widths, colors):
            cell = finished[(finished["activation"] == activation) & (finished["hidden_neurons"] == width)]
            for series, style, name in ((train, "-", f"{width} train"), (val, "--", f"{width} val")):
                curves = [series[r] for r in cell["run_id"] if series.get(r)]
                if curves:
                    length = min(map(len, curves))
                    mean = np.mean([c[:length] for c in curves], axis=0)
                    ax.plot(np.arange(1, length + 1), mean, style, color=color, label=name)
        ax.set(title=activation, xlabel="epoch", yscale="log")
        ax.xaxis.set_major_locator(_ticker().MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("loss (mean over seeds)")
    if axes[0][-1].get_legend_handles_labels()[0]:  # the last panel may have no finished run
        axes[0][-1].legend(fontsize=7, ncol=2)
    save_figure(fig, path)
    return None


def _nothing_to_draw(values, log_scale=False):
    """Why ``values`` (a frame of cells) cannot be drawn, or None."""
    values = values.to_numpy(dtype=float)
    if not np.isfinite(values).any():
        return "no cell has a finished run"
    if log_scale and not (values[np.isfinite(values)] > 0).any():
        return "no cell has a positive value for the log scale"
    return None


def plot_vs_width(
    table: pd.DataFrame, activations: Sequence[str], ylabel: str, path: Path, log_y: bool = False
) -> str | None:
    grouped = table.groupby("hidden_neurons")[activations].mean()
    if reason := _nothing_to_draw(grouped, log_y):
        return reason
    fig, ax = pyplot().subplots(figsize=(6, 4))
    for activation in activations:
        std = None
        if f"{activation}_std" in table:
            std = table.groupby("hidden_neurons")[f"{activation}_std"].mean()
        ax.errorbar(grouped.index, grouped[activation], yerr=std, marker="o", capsize=3, label=activation)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="hidden neurons", ylabel=ylabel)
    ax.set_xticks(grouped.index, [str(w) for w in grouped.index])
    ax.xaxis.set_minor_formatter(_ticker().NullFormatter())
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
    return None


def plot_validation_vs_lr(cells: pd.DataFrame, activations: Sequence[str], ylabel: str, path: Path) -> str | None:
    """One panel per activation, one line per width: mean validation score vs lr (log axis), std over seeds.

    cells: ``best_lr.lr_cells`` rows (other axes are pooled into the width's line).
    """
    if reason := _nothing_to_draw(cells[["validation"]]):
        return reason
    fig, axes = pyplot().subplots(1, len(activations), figsize=(4 * len(activations), 3.6), sharey=True, squeeze=False)
    for ax, activation in zip(axes[0], activations):
        mine = cells[cells["activation"] == activation]
        for width, line in mine.groupby("hidden_neurons"):
            line = line.groupby("lr")[["validation", "validation_std"]].mean()
            ax.errorbar(
                line.index, line["validation"], yerr=line["validation_std"], marker="o", capsize=3, label=f"{width:g}"
            )
        ax.set_xscale("log")
        ax.set(title=activation, xlabel="learning rate")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(title="hidden neurons", fontsize=7)
    save_figure(fig, path)
    return None


def plot_heatmap(
    table: pd.DataFrame, activations: Sequence[str], title: str, path: Path, digits: int, cmap: str
) -> str | None:
    values = table.groupby("hidden_neurons")[activations].mean()
    if reason := _nothing_to_draw(values):
        return reason
    fig, ax = pyplot().subplots(figsize=(1.6 + 1.3 * len(activations), 1.2 + 0.6 * len(values)))
    image = ax.imshow(values.to_numpy(dtype=float), cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(activations)), activations)
    ax.set_yticks(range(len(values)), [str(w) for w in values.index])
    ax.set(xlabel="activation", ylabel="hidden neurons", title=title)
    for (i, j), value in np.ndenumerate(values.to_numpy(dtype=float)):
        red, green, blue, _ = image.cmap(image.norm(value))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
        ax.text(j, i, fmt(value, digits), ha="center", va="center", fontsize=9, color="white" if dark else "black")
    fig.colorbar(image, ax=ax)
    save_figure(fig, path)
    return None


def save_figure(fig: Figure, path: Path) -> None:
    """Lay out, write (110 dpi) and close ``fig``."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def best_confusion_matrix(client: MlflowClient, jobs: pd.DataFrame) -> tuple[np.ndarray, str] | str:
    """(the test confusion matrix of the run with the best validation score, as the registry chooses
    it, from the CSV every classification run keeps; its title), or why there is none."""
    try:
        best, metric = model_registry.best_job(jobs)
    except InputError:
        return "no finished run has a validation score to choose by"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            csv = client.download_artifacts(best.run_id, layout.ARTIFACT_CONFUSION_CSV, tmp)
        except Exception:  # MLflow raises its own error types per artifact store for a missing file
            return f"the best run ({best.run_name}) has no {layout.ARTIFACT_CONFUSION_CSV}"
        matrix = pd.read_csv(csv, index_col=0).to_numpy()
    return matrix, f"{best.run_name}, best {metric}: test set"


def plot_confusion_matrix(best: tuple[np.ndarray, str] | str, path: Path) -> str | None:
    """``best_confusion_matrix``'s matrix, or its reason for none."""
    if isinstance(best, str):
        return best
    save_figure(artifacts.draw_confusion_matrix(*best), path)
    return None
