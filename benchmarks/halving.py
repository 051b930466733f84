"""`python -m benchmarks.halving`: the learning-rate study with the grid's early stopping against without.

Runs the real command twice, each in a fresh store: ``python -m pipeline -m +experiment=lr_study
train.seed=0,1,2`` (activation x width x 6 SGD learning rates x 3 seeds, 10 epochs), then the same
with ``hydra.sweeper.halving.rungs=[1,3]``. Writes ``reports/halving_benchmark.md``: the summed
training time of each, and for each cell (activation x width) the learning rate chosen on validation
(the best-lr table's rule) and its test accuracy, with the full grid's seed standard deviation
there. The issue's targets: at least 2x less training, the same lr in at least 10 of 12 cells, each
cell's accuracy within its seed standard deviation.

    python -m benchmarks.halving                          # the study's dataset (MNIST)
    python -m benchmarks.halving --dataset-dir ../shared/data/mnist-offline --rungs 1 2 4
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from benchmarks.common import count, output_path, runs_in, timed_sweep, write_whole
from pipeline.config import project_home
from pipeline.runtime.machine import machine_summary
from pipeline.runtime.workers import usable_cores
from pipeline.tracking import layout

STUDY = ("+experiment=lr_study", "quiet=true", "mlflow.log_model=false", "report.after_sweep=false")
CELL = [layout.ACTIVATION, layout.HIDDEN_NEURONS]


def run_arm(home: str, overrides: Sequence[str]) -> tuple[float, pd.DataFrame]:
    """The study with ``overrides`` in a fresh store ``home``: (wall seconds, its job runs)."""
    wall, _ = timed_sweep(home, [*STUDY, *overrides], failed_jobs_ok=True)  # a diverged lr is a failed job
    _, runs = runs_in(home)
    return wall, runs[runs["role"] == layout.ROLE_JOB].reset_index(drop=True)


def chosen(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the lr with the highest mean final validation accuracy over seeds (ties: the smaller
    lr), among the runs that trained to the end; its mean and seed std of test accuracy."""
    pruned = jobs["pruned"].notna() if "pruned" in jobs else pd.Series(False, index=jobs.index)
    done = jobs[(jobs["status"] == "FINISHED") & ~pruned]
    val, test = layout.VALIDATION_METRIC["max"], layout.TEST_ACCURACY
    by_lr = done.groupby([*CELL, layout.LR]).agg(val=(val, "mean"), test=(test, "mean"), std=(test, "std"))
    by_lr = by_lr.reset_index()
    by_lr = by_lr.sort_values([*CELL, "val", layout.LR], ascending=[True, True, False, True], kind="stable")
    return by_lr.groupby(CELL, sort=False).head(1).set_index(CELL)


Arm = tuple[float, pd.DataFrame]  # (wall seconds, job runs), as run_arm returns it


def markdown(full: Arm, early: Arm, rungs: Sequence[int], factor: float, dataset: str, extra: Sequence[str]) -> str:
    """The report: training and wall of both arms, and each cell's chosen lr and accuracy."""
    (full_wall, full_jobs), (early_wall, early_jobs) = full, early
    a, b = chosen(full_jobs), chosen(early_jobs)
    cells = a.add_suffix("_full").join(b.add_suffix("_early"), how="outer")
    same = int((cells["optimizer.lr_full"] == cells["optimizer.lr_early"]).sum())
    within = (cells["test_early"] - cells["test_full"]).abs() <= cells["std_full"].fillna(0)
    train_full = float(full_jobs[layout.TRAINING_TIME].sum())
    train_early = float(early_jobs[layout.TRAINING_TIME].sum())
    pruned = int(early_jobs["pruned"].notna().sum()) if "pruned" in early_jobs else 0
    epochs_full, epochs_early = int(full_jobs[layout.EPOCHS_RUN].sum()), int(early_jobs[layout.EPOCHS_RUN].sum())
    narrowed = f" (with {' '.join(extra[1:])})" if extra[1:] else ""
    lines = [
        "# Early stopping within cells: the learning-rate study with and without",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m benchmarks.halving "
        f"--rungs {' '.join(map(str, rungs))} --factor {factor:g}`{narrowed}.",
        f"`python -m pipeline -m {STUDY[0]} {' '.join(extra)}` on {dataset}, {len(full_jobs)} jobs, "
        "each in a fresh store; "
        f"early stopping: `hydra.sweeper.halving.rungs=[{','.join(map(str, rungs))}]` "
        f"`hydra.sweeper.halving.reduction_factor={factor:g}`. "
        f"Machine: {machine_summary()}, {usable_cores()} usable cores, parallel launcher.",
        "",
        "| | full grid | early stopping | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| summed training (s) | {train_full:.3f} | {train_early:.3f} | {train_full / train_early:.2f}x |",
        f"| wall (s) | {full_wall:.3f} | {early_wall:.3f} | {full_wall / early_wall:.2f}x |",
        f"| epochs trained | {epochs_full} | {epochs_early} | {epochs_full / epochs_early:.2f}x |",
        f"| runs stopped early | 0 | {pruned} | |",
        f"| cells with the same validation-best lr | | {same} of {len(cells)} | |",
        f"| cells within the full grid's seed std | | {int(within.sum())} of {len(cells)} | |",
        "",
        "Per cell: the lr chosen on validation and the mean test accuracy there (± the full grid's seed std).",
        "",
        "| activation | width | lr (full) | test (full) | lr (early stopping) | test (early stopping) | within std |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for (activation, width), r in cells.iterrows():
        lines.append(
            f"| {activation} | {width} | {r['optimizer.lr_full']:g} | {100 * r['test_full']:.2f} ± "
            f"{100 * r['std_full']:.2f} | {r['optimizer.lr_early']:g} | {100 * r['test_early']:.2f} | "
            f"{'yes' if within[(activation, width)] else 'no'} |"
        )
    return "\n".join([*lines, ""])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", help="the study's own: mnist")
    parser.add_argument("--dataset-dir", default=None, help="where its files are (dataset.dir), e.g. an offline copy")
    parser.add_argument("--rungs", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--factor", type=float, default=2)
    parser.add_argument("--seeds", type=count(), default=3)
    parser.add_argument("--overrides", nargs="*", default=[], help="more overrides for both arms (a smaller grid)")
    parser.add_argument("--out", default=str(Path(project_home()) / "reports" / "halving_benchmark.md"))
    args = parser.parse_args(argv)
    out = output_path(parser, args.out)
    seeds = f"train.seed={','.join(map(str, range(args.seeds)))}"
    extra = [seeds, *args.overrides]
    data = [f"dataset={args.dataset}", *([f"dataset.dir={args.dataset_dir}"] if args.dataset_dir else []), *extra]
    arms = {
        "full grid": data,
        "early stopping": [
            *data,
            f"hydra.sweeper.halving.rungs=[{','.join(map(str, args.rungs))}]",
            f"hydra.sweeper.halving.reduction_factor={args.factor:g}",
        ],
    }
    results = []
    for name, overrides in arms.items():
        with tempfile.TemporaryDirectory(prefix="fnn-sweep-halving-") as home:
            wall, jobs = run_arm(home, overrides)
        results.append((wall, jobs))
        print(f"{name}: {wall:.1f} s wall, {jobs[layout.TRAINING_TIME].sum():.1f} s training", flush=True)
    dataset = args.dataset + (f" ({args.dataset_dir})" if args.dataset_dir else "")
    write_whole(out, markdown(results[0], results[1], args.rungs, args.factor, dataset, extra))
    print(out.read_text())


if __name__ == "__main__":
    main()
