"""What the benchmarks share: a timed `python -m pipeline -m` in its own home, the runs it left, and their
Markdown tables."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
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
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"error: the sweep failed (exit {result.returncode}): {last}")
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


def count(minimum: int = 1) -> Callable[[str], int]:
    """An argparse ``type``: a whole number >= ``minimum``, else argparse's one-line error naming the option."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def output_path(parser: argparse.ArgumentParser, out: str) -> Path:
    """``--out``, checked before the first run (a benchmark's minutes are not lost to a path found bad at
    its end): its directory made and writable, else one line and exit 2."""
    path = Path(out)
    try:
        if path.is_dir():
            raise IsADirectoryError(f"{out} is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}."):
            pass
    except FileExistsError:  # a file where a directory of the path should be
        parser.exit(2, f"error: --out={out} cannot be written: a part of its directory is a file\n")
    except OSError as exc:
        parser.exit(2, f"error: --out={out} cannot be written: {exc.strerror or exc}\n")
    return path


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a file beside it, renamed over it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)
