"""A grid's early stopping in the report (``hydra.sweeper.halving``): the runs stopped within their
cells, when, and the epochs that saved; the runs themselves in ``pruned_runs.csv``.

Search trials that a pruner stopped are the search section's (``report.search``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from pipeline.tracking import layout

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

CSV = "pruned_runs.csv"


def grid_pruned(jobs: pd.DataFrame) -> pd.Series:
    """Which job runs of a ``read_runs`` frame the grid's early stopping stopped (not search trials)."""
    pruned = jobs["pruned"].notna() if "pruned" in jobs else pd.Series(False, index=jobs.index)
    trial = jobs["trial"].notna() if "trial" in jobs else pd.Series(False, index=jobs.index)
    return pruned & ~trial


def write_early_stopping_section(jobs: pd.DataFrame, axes: Sequence[str], out: Path) -> list[str]:
    """Write ``pruned_runs.csv`` into ``out``; returns report.md's lines ([] when no run was stopped)."""
    stopped = grid_pruned(jobs)
    if not stopped.any():
        return []
    epochs = pd.to_numeric(jobs["train.epochs"], errors="coerce")
    ran = pd.to_numeric(jobs["pruned"], errors="coerce")
    trained = int(epochs[~stopped].sum() + ran[stopped].sum())
    full = int(epochs.sum())
    keys = [layout.ACTIVATION, layout.HIDDEN_NEURONS, *axes, layout.SEED]
    table = jobs[stopped][["run_name", *(k for k in keys if k in jobs), "pruned", "stop_reason", "run_id"]]
    table.rename(columns={"pruned": "stopped_after_epoch"}).to_csv(out / CSV, index=False)
    lines = [
        f"## Early stopping: {int(stopped.sum())} of {len(jobs)} runs stopped within their cells",
        "",
        f"{trained} of {full} epochs trained ({1 - trained / full:.0%} not trained). Each cell kept the "
        "learning rates (or competing values) that ranked best on validation at every rung, all seeds of each; "
        "the tables above hold only the runs that trained to their last epoch.",
        "",
        "| stopped after epoch | runs |",
        "| --- | --- |",
        *(f"| {int(epoch)} | {n} |" for epoch, n in ran[stopped].value_counts().sort_index().items()),
        "",
        f"[The stopped runs, with why (CSV)]({CSV})",
        "",
    ]
    return lines
