"""`python -m benchmarks.floor`: how close the default grid can come to its training time, layer by layer.

Runs the default grid (3 activations x 4 widths, widest first, 10 epochs, 2 workers) four ways, each as
a fresh command, interleaved over ``--repeats`` rounds, and writes ``reports/floor_benchmark.md``:

- joblib: ``joblib.Parallel`` over the 12 jobs (``benchmarks.minimal_sweep --joblib``): start-up,
  imports, data and training only;
- Hydra: the same jobs as a Hydra multirun on Hydra's joblib launcher, no tracking;
- Hydra + MLflow: each job also one MLflow run (params, each epoch's metrics, results) in a SQLite store
  made beforehand: the least a tracked Hydra sweep does;
- fnn-sweep: ``python -m pipeline -m``, with its checks, parent run, resume, models and report.

Each contender's ratio is its wall time over its own summed training / workers: what issue 18's
"default grid <= 1.2x" asks of ``python -m pipeline -m``, asked of the layers it is built on.

    python -m benchmarks.floor                 # 2 rounds
    python -m benchmarks.floor --repeats 3 --epochs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from benchmarks.common import count, markdown_columns, output_path, runs_in, write_whole
from benchmarks.minimal_sweep import MinimalJob
from benchmarks.sweep import default_dataset, run_sweep
from pipeline.config import project_home
from pipeline.data import DataError, load_dataset
from pipeline.runtime.machine import machine_summary
from pipeline.tracking import layout

REPOSITORY = Path(__file__).resolve().parent.parent  # benchmarks.minimal_sweep runs from here
WIDTHS, ACTIVATIONS, WORKERS = "256,128,64,32", "sigmoid,relu,tanh", 2
DATASETS = ("fashion_mnist", "mnist", "digits")  # image classification, as the default grid's
Data = tuple[str, Optional[str]]  # (dataset name, dataset.dir or None)


def _timed(command: list[str]) -> float:
    """Run ``command`` in the repository (``benchmarks`` is not installed); its wall seconds. A failure
    ends the benchmark with its last line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPOSITORY, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"error: {' '.join(command[1:4])} failed (exit {result.returncode}): {last}")
    return wall


def _training_files(directory: Path) -> list[float]:
    return [float(f.read_text()) for f in directory.glob("*/training_time_s")]


def _job_settings(data: Data, epochs: int) -> list[str]:
    dataset, directory = data
    return [f"dataset={dataset}", f"epochs={epochs}", *([f"dataset_dir={directory}"] if directory else [])]


def run_joblib(home: Path, data: Data, epochs: int) -> tuple[float, list[float]]:
    out = home / "jobs"
    settings = [*_job_settings(data, epochs), f"hidden={WIDTHS}", f"activation={ACTIVATIONS}"]
    wall = _timed([sys.executable, "-m", "benchmarks.minimal_sweep", "--joblib", str(out), str(WORKERS), *settings])
    return wall, _training_files(out)


def _hydra(home: Path, data: Data, epochs: int, tracked: bool) -> tuple[float, list[float]]:
    overrides = [
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={WORKERS}",
        f"hydra.sweep.dir={home / 'sweep'}",
        *_job_settings(data, epochs),
        f"hidden={WIDTHS}",
        f"activation={ACTIVATIONS}",
    ]
    if tracked:  # the store and experiment exist before the command, as in a user's second sweep
        uri = f"sqlite:///{home / 'mlflow.db'}"
        _timed(
            [sys.executable, "-c", f"import mlflow; mlflow.set_tracking_uri({uri!r}); mlflow.set_experiment('minimal')"]
        )
        overrides.append(f"tracking_uri={uri}")
    wall = _timed([sys.executable, "-m", "benchmarks.minimal_sweep", "-m", *overrides])
    return wall, _training_files(home / "sweep")


def run_fnn_sweep(home: Path, data: Data, epochs: int) -> tuple[float, list[float]]:
    wall, _ = run_sweep(str(home), *data, epochs, [], [])
    _, runs = runs_in(str(home))
    return wall, list(runs[runs["role"] == layout.ROLE_JOB][layout.TRAINING_TIME])


CONTENDERS: dict[str, Callable[[Path, Data, int], tuple[float, list[float]]]] = {
    "joblib": run_joblib,
    "Hydra": lambda home, data, epochs: _hydra(home, data, epochs, tracked=False),
    "Hydra + MLflow": lambda home, data, epochs: _hydra(home, data, epochs, tracked=True),
    "fnn-sweep": run_fnn_sweep,
}


def summary(rounds: list[tuple[float, list[float]]]) -> dict[str, float]:
    """One contender's rounds as (wall, its jobs' training seconds): the medians, and the best ratio."""
    walls = [wall for wall, _ in rounds]
    per_worker = [sum(times) / WORKERS for _, times in rounds]
    ratios = [wall / training for wall, training in zip(walls, per_worker)]
    return {
        "jobs": len(rounds[0][1]),
        "wall (s), median": statistics.median(walls),
        "summed training / workers (s), median": statistics.median(per_worker),
        "beyond training (s), median": statistics.median(w - p for w, p in zip(walls, per_worker)),
        "wall / (training / workers), median": statistics.median(ratios),
        "wall / (training / workers), best": min(ratios),
    }


def markdown(results: dict[str, dict[str, float]], dataset: str, epochs: int, repeats: int, load: float) -> str:
    cell = lambda key, value: f"{value:.0f}" if key == "jobs" else f"{value:.2f}"  # noqa: E731
    lines = [
        "# Floor benchmark: the default grid, layer by layer",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m benchmarks.floor`, "
        f"{repeats} interleaved rounds. Dataset {dataset}, {epochs} epochs, 12 jobs (3 activations x 4 widths, "
        f"widest first), {WORKERS} workers, one BLAS thread each. Machine: {machine_summary()}; load average "
        f"{load:.2f} before the first round.",
        "",
        *markdown_columns(results, cell),
        "",
        "Each ratio is the command's wall time over its own jobs' summed training time / workers. joblib: the",
        "jobs alone; Hydra: a multirun on Hydra's joblib launcher; Hydra + MLflow: each job one MLflow run",
        "(params, epoch metrics, results) in an existing SQLite store; fnn-sweep: `python -m pipeline -m`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, choices=DATASETS, help="fashion_mnist when installed, else mnist")
    parser.add_argument("--data-dir", default=None, help="dataset.dir for every contender")
    parser.add_argument("--epochs", type=count(), default=10)
    parser.add_argument("--repeats", type=count(), default=2)
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    parser.add_argument("--out", default=str(Path(project_home()) / "reports" / "floor_benchmark.md"))
    args = parser.parse_args(argv)
    dataset = args.dataset or default_dataset()
    out = output_path(parser, args.out)
    try:  # the data the jobs will load, checked, and decoded into the cache before any clock starts
        load_dataset({"name": dataset, "dir": args.data_dir}, 0.1, MinimalJob.seed)
    except DataError as exc:
        parser.exit(2, f"error: {exc}\n")
    rounds: dict[str, list] = {name: [] for name in args.contenders}
    load = os.getloadavg()[0]  # over the last minute: anything else running shows here
    for round_ in range(args.repeats):
        for name in args.contenders:
            with tempfile.TemporaryDirectory(prefix="fnn-sweep-floor-") as home:
                wall, times = CONTENDERS[name](Path(home), (dataset, args.data_dir), args.epochs)
            rounds[name].append((wall, times))
            ratio = wall / (sum(times) / WORKERS)
            print(
                f"round {round_ + 1} {name}: {wall:.2f} s wall, {sum(times):.2f} s training, {ratio:.2f}x", flush=True
            )
    text = markdown({name: summary(r) for name, r in rounds.items()}, dataset, args.epochs, args.repeats, load)
    write_whole(out, text)
    print(text)


if __name__ == "__main__":
    main()
