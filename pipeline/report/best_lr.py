"""The best learning rate per cell, chosen on validation: ``table1_best_lr`` and its figure.

For every (width, other axes, activation) cell the lr with the highest mean final validation
accuracy over seeds (lowest validation MSE for regression) is chosen, ties to the smaller lr;
the table shows the mean *test* score at that lr. Choosing on the test set would overstate results.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.report.render import MISSING, latex_table
from pipeline.report.tables import label, ordered_activations
from pipeline.tracking import layout

if TYPE_CHECKING:
    from pathlib import Path

    from pipeline.report.tables import TableSpec

STEM = "table1_best_lr"
FIGURE = "val_vs_lr.png"
LR_COLUMN = "lr"
CHOICE_NOTE = (
    "Each cell's lr has the highest mean final validation {metric} over seeds (ties: the smaller lr); "
    "the cell is the mean test score at that lr, never chosen on test."
)


def other_axes(axes: Sequence[str]) -> list[str]:
    """The report's extra axes besides lr."""
    return [a for a in axes if a != layout.LR]


def lr_cells(jobs: pd.DataFrame, axes: Sequence[str], spec: TableSpec) -> pd.DataFrame:
    """One row per (width, other axes, activation, lr) of FINISHED runs: mean validation and test scores, n.

    jobs: a ``layout.read_runs`` frame; axes: the report's extra axes (``optimizer.lr`` among them).
    """
    others = other_axes(axes)
    validation = layout.VALIDATION_METRIC[spec.best]
    finished = jobs[jobs["status"] == "FINISHED"]
    frame = pd.DataFrame(
        {
            "hidden_neurons": finished[layout.HIDDEN_NEURONS],
            **{a: finished[a] for a in others},
            "activation": finished[layout.ACTIVATION],
            LR_COLUMN: finished[layout.LR].astype(float),
            "validation": finished[validation].astype(float) if validation in finished else np.nan,
            "test": finished[spec.metric].astype(float) * spec.scale,
        }
    )
    keys = ["hidden_neurons", *others, "activation", LR_COLUMN]
    return (
        frame.groupby(keys, dropna=False)
        .agg(
            validation=("validation", "mean"),
            validation_std=("validation", "std"),
            test=("test", "mean"),
            n=("test", "size"),
        )
        .reset_index()
    )


def best_lr_table(cells: pd.DataFrame, others: Sequence[str], spec: TableSpec) -> tuple[pd.DataFrame, list[str]]:
    """Rows (other axes..., width ascending); per activation the mean test score at the best lr and
    ``<activation>_lr``, the lr chosen. cells: ``lr_cells``. Returns (table, activations)."""
    scored = cells[cells["validation"].notna()]
    ascending = spec.best == "min"
    # Best validation first; among equals the smaller lr.
    best = scored.sort_values(["validation", LR_COLUMN], ascending=[ascending, True], kind="stable").drop_duplicates(
        ["hidden_neurons", *others, "activation"]
    )
    grid = cells[["hidden_neurons", *others]].drop_duplicates().sort_values([*others, "hidden_neurons"])
    table = grid.reset_index(drop=True)
    activations = ordered_activations(cells["activation"])
    for activation in activations:
        chosen = best[best["activation"] == activation].set_index(["hidden_neurons", *others])
        index = pd.MultiIndex.from_frame(grid) if others else pd.Index(grid["hidden_neurons"])
        chosen = chosen.reindex(index)
        table[activation] = chosen["test"].to_numpy()
        table[f"{activation}_lr"] = chosen[LR_COLUMN].to_numpy()
    return table, activations


def _best_cell(row, activation, spec):
    if pd.isna(row[activation]):
        return MISSING
    return f"{row[activation]:.{spec.digits}f} (lr {label(row[f'{activation}_lr'])})"


def markdown_best_lr(table: pd.DataFrame, activations: Sequence[str], others: Sequence[str], spec: TableSpec) -> str:
    header = ["hidden neurons", *others, *activations]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for _, row in table.iterrows():
        cells = [_best_cell(row, a, spec) for a in activations]
        lines.append("| " + " | ".join([label(row["hidden_neurons"]), *(label(row[o]) for o in others), *cells]) + " |")
    return "\n".join(lines) + "\n"


def write_best_lr(
    jobs: pd.DataFrame, axes: Sequence[str], spec: TableSpec, selection: str, out: Path
) -> tuple[str, str, Callable[[Path], str | None]]:
    """Write table1_best_lr.{csv,md,tex} into ``out``; returns (note, Markdown table, what draws
    ``FIGURE`` at a path: it returns why the figure was not drawn, or None)."""
    from pipeline.report import figures

    others, cells = other_axes(axes), lr_cells(jobs, axes, spec)
    table, activations = best_lr_table(cells, others, spec)
    with np.errstate(over="ignore"):  # as for the other tables
        table.round(6).to_csv(out / f"{STEM}.csv", index=False)
    metric = layout.VALIDATION_METRIC[spec.best].removeprefix("val_")
    note = CHOICE_NOTE.format(metric=metric)
    md = markdown_best_lr(table, activations, others, spec)
    (out / f"{STEM}.md").write_text(
        f"# {spec.label} at the best learning rate per cell ({selection})\n\n{note}\n\n{md}"
    )
    caption = f"{spec.label} at the best lr per cell ({selection}). {note}"
    (out / f"{STEM}.tex").write_text(
        latex_table(table, activations, others, caption, spec, cell=lambda row, a: _best_cell(row, a, spec))
    )
    return note, md, functools.partial(figures.plot_validation_vs_lr, cells, activations, f"final validation {metric}")
