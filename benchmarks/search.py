"""`python -m benchmarks.search`: TPE against random search at the same budget, and what rounds cost.

Runs the real command, ``python -m pipeline -m hydra/sweeper=optuna``, over the issue's space (lr
log 1e-3..1, width 16..512, activation, depth 1..3, batch size) for each arm and seed, each in a
fresh store, and writes ``reports/search_benchmark.md`` and ``reports/search_benchmark.png``: the
best validation accuracy reached after n trials (mean over seeds), the wall time, and the share of
worker time left idle while a round waits for its slowest trial (Hydra's launchers return a whole
round at once):

    python -m benchmarks.search                                   # 40 trials, 3 seeds, 10 epochs
    python -m benchmarks.search --trials 20 --seeds 2 --epochs 2  # a quicker look

It uses the full Fashion-MNIST when Debian's ``dataset-fashion-mnist`` is installed, else MNIST.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.common import count, markdown_columns, output_path, runs_in, timed_sweep, write_whole
from benchmarks.sweep import default_dataset
from pipeline.config import project_home
from pipeline.runtime.machine import machine_summary
from pipeline.runtime.workers import usable_cores
from pipeline.tracking import layout

SPACE = (
    "optimizer.lr=tag(log, interval(1e-3, 1))",
    "model.hidden_neurons=interval(16, 512)",
    "model.activation=choice(relu,tanh,sigmoid)",
    "model.hidden_layers=range(1,4)",
    "train.batch_size=choice(32,64,128,256)",
)
ARMS = {
    "tpe": ["hydra.sweeper.sampler=tpe"],
    "random": ["hydra.sweeper.sampler=random"],
    "tpe + median pruner": ["hydra.sweeper.sampler=tpe", "hydra.sweeper.pruner=median"],
}


def run_study(home: str, arm: Sequence[str], seed: int, trials: int, epochs: int, dataset: str) -> dict:
    """One study of ``trials`` trials in ``home``; returns its wall time and per-trial figures."""
    overrides = [
        "hydra/sweeper=optuna",
        *arm,
        f"hydra.sweeper.seed={seed}",
        f"hydra.sweeper.n_trials={trials}",
        f"dataset={dataset}",
        f"train.epochs={epochs}",
        *SPACE,
        "quiet=true",
        "mlflow.log_model=false",
        "report.after_sweep=false",
    ]
    wall, _ = timed_sweep(home, overrides, failed_jobs_ok=True)  # a diverged trial is a FAIL trial
    _, runs = runs_in(home)
    jobs = runs[runs["role"] == layout.ROLE_JOB].copy()
    jobs["trial"] = jobs["trial"].astype(int)
    jobs = jobs.sort_values("trial")
    score = jobs[layout.VALIDATION_METRIC["max"]].where(jobs["pruned"].isna()) if "pruned" in jobs else None
    score = jobs[layout.VALIDATION_METRIC["max"]] if score is None else score
    workers = len(set(zip(jobs["hostname"], jobs["pid"])))
    return {
        "wall": wall,
        "best_after": score.fillna(-np.inf).cummax().to_numpy(),
        "training": float(jobs[layout.TRAINING_TIME].sum()),
        "idle": _idle_share(jobs, workers),
        "pruned": int(jobs["pruned"].notna().sum()) if "pruned" in jobs else 0,
        "failed": int((jobs["status"] != "FINISHED").sum()),
    }


def _idle_share(jobs, workers):
    """Worker time idle inside rounds: each round of ``workers`` trials ends with its last one."""
    ends = jobs["end_time"].map(lambda t: t.timestamp()).to_numpy()
    starts = jobs["start_time"].map(lambda t: t.timestamp()).to_numpy()
    idle = busy = 0.0
    for first in range(0, len(jobs), workers):
        round_end = ends[first : first + workers].max()
        idle += float((round_end - ends[first : first + workers]).sum())
        busy += float((ends[first : first + workers] - starts[first : first + workers]).sum())
    return idle / (idle + busy) if idle + busy else 0.0


def markdown(results: Mapping[str, list[dict]], dataset: str, trials: int, epochs: int, seeds: int) -> str:
    checkpoints = sorted({n for n in (5, 10, 20, 40, trials) if n <= trials})
    table = {
        arm: {
            **{
                f"best val accuracy after {n} trials": float(np.mean([s["best_after"][n - 1] for s in studies]))
                for n in checkpoints
            },
            "wall per study (s)": float(np.mean([s["wall"] for s in studies])),
            "summed training per study (s)": float(np.mean([s["training"] for s in studies])),
            "worker time idle in rounds (%)": 100 * float(np.mean([s["idle"] for s in studies])),
            "pruned trials per study": float(np.mean([s["pruned"] for s in studies])),
            "failed trials per study (diverged)": float(np.mean([s["failed"] for s in studies])),
        }
        for arm, studies in results.items()
    }
    lines = [
        "# Search benchmark: TPE against random search at the same budget",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m benchmarks.search "
        f"--trials {trials} --seeds {seeds} --epochs {epochs}`.",
        f"Dataset {dataset}, {epochs} epochs, {trials} trials a study, {seeds} seeds an arm (mean over seeds). "
        f"Machine: {machine_summary()}, {usable_cores()} usable cores; parallel launcher, rounds of its workers.",
        "",
        "Space: " + ", ".join(f"`{s}`" for s in SPACE) + ".",
        "",
    ]
    lines += markdown_columns(table, _cell)
    lines += [
        "",
        "![best validation accuracy after n trials](search_benchmark.png)",
        "",
        "Idle: within each round, the time a worker waits from its trial's end to the round's end, as a share",
        "of all worker time in rounds. A pruned trial ends early, so pruning raises it.",
        "",
    ]
    return "\n".join(lines)


def _cell(key, value):
    if "accuracy" in key:
        return f"{value:.4f}"
    return f"{value:.3f}" if "(s)" in key else f"{value:.1f}"  # seconds to the millisecond: short studies too


def plot(results: Mapping[str, list[dict]], path: Path) -> None:
    from pipeline.report.figures import save_figure
    from pipeline.tracking.artifacts import pyplot

    fig, ax = pyplot().subplots(figsize=(6, 4))
    for arm, studies in results.items():
        curves = np.array([s["best_after"] for s in studies])
        n = np.arange(1, curves.shape[1] + 1)
        ax.plot(n, curves.mean(axis=0), label=f"{arm} (mean of {len(studies)})")
        ax.fill_between(n, curves.min(axis=0), curves.max(axis=0), alpha=0.15)
    ax.set(xlabel="trials", ylabel="best validation accuracy so far", title="Search: best after n trials")
    ax.legend()
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, help="fashion_mnist when installed, else mnist")
    parser.add_argument("--trials", type=count(), default=40)
    parser.add_argument("--seeds", type=count(), default=3)
    parser.add_argument("--epochs", type=count(), default=10)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", default=str(Path(project_home()) / "reports" / "search_benchmark.md"))
    args = parser.parse_args(argv)
    out = output_path(parser, args.out)
    dataset = args.dataset or default_dataset()
    results: dict[str, list[dict]] = {}
    for arm in args.arms:
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory(prefix="fnn-sweep-search-") as home:
                study = run_study(home, ARMS[arm], seed, args.trials, args.epochs, dataset)
            results.setdefault(arm, []).append(study)
            print(f"{arm}, seed {seed}: {study['wall']:.1f} s, best {study['best_after'][-1]:.4f}", flush=True)
    plot(results, out.with_suffix(".png"))
    write_whole(out, markdown(results, dataset, args.trials, args.epochs, args.seeds))
    print(out.read_text())


if __name__ == "__main__":
    main()
