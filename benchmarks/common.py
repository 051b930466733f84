"""What the benchmarks share: a timed `python -m pipeline -m` in its own home, the runs it left, and their
Markdown tables."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.tracking.store import Store


def timed_sweep(home: str, overrides: Sequence[str], failed_jobs_ok: bool = False) -> tuple[float, float]:
    """Run `python -m pipeline -m OVERRIDES` with FNN_SWEEP_HOME=home; returns (wall seconds, its start
    as epoch seconds). A failed sweep ends the benchmark with its last error line; with
    ``failed_jobs_ok``, a sweep whose only failures are jobs (exit 1: a search's diverged trials) counts."""
    command = [sys.executable, "-m", "pipeline", "-m", *overrides]
    # Its own store in ``home``, whatever MLflow's variables (the defaults of mlflow.tracking_uri and
    # mlflow.experiment_name) say in the shell.
    inherited = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")}
    env = {**inherited, "FNN_SWEEP_HOME": str(home)}
    started, clock = time.time(), time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - clock
    if result.returncode != 0 and not (failed_jobs_ok and result.returncode == 1):
        sys.exit(f"error: the sweep failed (exit {result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
    return wall, started


def runs_in(home: str) -> tuple[Store, pd.DataFrame]:
    """The store a sweep made in ``home`` (``timed_sweep``) and every run of its experiment
    (a ``layout.read_runs`` frame)."""
    from pipeline.tracking import layout, store

    tracking = store.open_store(f"sqlite:///{home}/mlflow.db")
    experiment_id = store.find_experiment(tracking.uri, "fnn-sweep")
    assert experiment_id is not None, "the sweep made it"
    return tracking, layout.read_runs(tracking, [experiment_id])


def markdown_columns(
    results: Mapping[str, Mapping[str, float]], fmt: Callable[[str, float], str], corner: str = ""
) -> list[str]:
    """``results`` {column: {row: value}} as Markdown table lines, rows in the first column's order;
    ``fmt(row, value)`` writes a cell, ``corner`` heads the row names."""
    lines = [f"| {corner} | " + " | ".join(results) + " |", "| --- |" + " ---: |" * len(results)]
    for key in next(iter(results.values())):
        lines.append(f"| {key} | " + " | ".join(fmt(key, r[key]) for r in results.values()) + " |")
    return lines
