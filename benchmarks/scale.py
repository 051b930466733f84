"""`python -m benchmarks.scale`: what a job costs beyond its training, in studies of many small models.

    python -m benchmarks.scale                      # 96 jobs -> reports/scale_benchmark.md
    python -m benchmarks.scale --studies 96 1000    # and 1,000 (about 5 minutes here)

Each study is a real `python -m pipeline -m` sweep (parallel default, tracking, models and report
included) into a fresh store. Overhead per job is (wall x workers - summed training) / jobs: every
second a worker spent on anything but training, start-up and report included. The breakdown comes
from the phase timings every job logs (``layout.PHASE_METRICS``); what no phase covers (Hydra's job
set-up, loky's dispatch, the run's end) is the rest. Run it on a quiet machine: with anything else
running, the figures are worthless.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import cast

from benchmarks.common import count, markdown_columns, output_path, runs_in, timed_sweep, write_whole
from pipeline.config import project_home
from pipeline.runtime.machine import machine_summary
from pipeline.runtime.workers import usable_cores
from pipeline.tracking import layout

STUDIES = {
    # activation x width x lr x seed; 4 is a smoke size for the tests, not a measurement
    4: [
        "dataset=digits",
        "train.epochs=1",
        "model.activation=relu,tanh",
        "model.hidden_neurons=8",
        "optimizer.lr=0.1",
        "train.seed=0,1",
    ],
    96: [
        "dataset=digits",
        "train.epochs=2",
        "model.activation=relu,tanh,sigmoid",
        "model.hidden_neurons=8,16,32,64",
        "optimizer.lr=0.01,0.03,0.1,0.3",
        "train.seed=0,1",
    ],
    1000: [
        "dataset=digits",
        "train.epochs=1",
        "model.activation=relu,tanh,sigmoid,leaky_relu,elu",
        "model.hidden_neurons=8,16,32,64,128",
        "optimizer.lr=0.01,0.03,0.1,0.3",
        "train.seed=0,1,2,3,4,5,6,7,8,9",
    ],
}
EARLIER = "sweep-earlier-"  # the sweep ids prefill gives its runs
PHASE_NAMES = {
    "lookups": "store look-ups (experiment, parent run, resume)",
    "run": "run created with its params and tags",
    "data": "dataset loaded",
    "inputs": "config artifact and dataset input",
    "epochs": "epoch metrics",
    "artifacts": "confusion matrix (and figures)",
    "model": "model",
}


def prefill(home: str, runs: int, per_sweep: int = 100) -> float:
    """Fill ``home``'s store with ``runs`` FINISHED job runs of earlier sweeps, as the pipeline writes them
    (tags, 40-odd params, epoch and test metrics; no artifacts); returns the seconds it took."""
    import mlflow
    from hydra import compose, initialize_config_module
    from mlflow.entities import Metric, Param, RunTag
    from omegaconf import OmegaConf

    from pipeline.config import register_configs

    register_configs()
    with initialize_config_module("pipeline.conf", version_base="1.3"):
        config = cast(dict, OmegaConf.to_container(compose("config", overrides=["dataset=digits"]), resolve=False))
    params = {k: v for k, v in layout.job_params(config).items() if "${" not in str(v)}
    client = mlflow.MlflowClient(f"sqlite:///{home}/mlflow.db")
    experiment_id = client.create_experiment("fnn-sweep", artifact_location=f"{home}/mlartifacts")
    start, now = time.perf_counter(), int(time.time() * 1000)
    for first in range(0, runs, per_sweep):
        sweep_id = f"{EARLIER}{first // per_sweep:04d}"
        parent = client.create_run(
            experiment_id, run_name=sweep_id, tags={layout.TAG_ROLE: layout.ROLE_SWEEP, layout.TAG_SWEEP_ID: sweep_id}
        ).info.run_id
        client.set_terminated(parent, "FINISHED")
        for i in range(first, min(first + per_sweep, runs)):
            run = client.create_run(
                experiment_id,
                run_name=f"relu-{i}",
                tags={
                    layout.TAG_ROLE: layout.ROLE_JOB,
                    layout.TAG_PARENT: parent,
                    layout.TAG_SWEEP_ID: sweep_id,
                    layout.TAG_CONFIG_HASH: f"{i:016x}",
                },
            ).info.run_id
            metrics = [Metric(name, 0.5, now, step) for name in layout.EPOCH_METRICS.values() for step in range(2)] + [
                Metric(layout.TEST_ACCURACY, 0.9, now, 0),
                Metric(layout.TRAINING_TIME, 0.01, now, 0),
            ]
            client.log_batch(
                run,
                metrics=metrics,
                params=[Param(k, str(v)) for k, v in params.items()],
                tags=[RunTag("seed", str(i))],
            )
            client.set_terminated(run, "FINISHED")
    return time.perf_counter() - start


def measure(home: str, wall: float, started: float, epochs: int) -> dict[str, float]:
    """The study's figures, from the runs it left in ``home``'s store (not ``prefill``'s); checks nothing
    was lost: every job FINISHED and nested, every epoch metric point stored."""
    tracking, runs = runs_in(home)
    runs = runs[~runs["sweep_id"].fillna("").str.startswith(EARLIER)]  # not prefill's
    jobs = runs[runs["role"] == layout.ROLE_JOB]
    [parent] = runs[runs["role"] == layout.ROLE_SWEEP].itertuples()
    n = len(jobs)
    workers = len(set(zip(jobs["hostname"], jobs["pid"])))
    starts, ends = (jobs[column].map(lambda t: t.timestamp()) for column in ("start_time", "end_time"))
    training = float(jobs[layout.TRAINING_TIME].sum())
    epoch_metrics = [m for m in layout.EPOCH_METRICS.values() if m in jobs and jobs[m].notna().any()]
    points = sum(
        len(tracking.client.get_metric_history(run_id, metric)) for run_id in jobs["run_id"] for metric in epoch_metrics
    )
    start_up, after = starts.min() - started, started + wall - ends.max()
    overhead = (wall * workers - training) / n
    phases = {
        name: float(jobs[metric].fillna(0).sum()) / n if metric in jobs else 0.0
        for name, metric in layout.PHASE_METRICS.items()
    }
    # Start-up and the end are spent once; spread over the jobs like everything else.
    once = (start_up + after) * workers / n
    result = {
        "jobs": n,
        "FINISHED": int((jobs["status"] == "FINISHED").sum()),
        "nested under the parent run": int((jobs["parent_run_id"] == parent.run_id).sum()),
        "epoch metric points (expected)": n * epochs * len(epoch_metrics),
        "epoch metric points (stored)": points,
        "workers": workers,
        "wall (s)": wall,
        "summed training (s)": training,
        "overhead per job (s)": overhead,
        "  start-up and end, spread over the jobs": once,
        "    start-up: command start to the first job's run (s)": start_up,
        "    end: the last job's end to the command's exit (s)": after,
        **{f"  {PHASE_NAMES[name]}": seconds for name, seconds in phases.items()},
        "  the rest: Hydra's job set-up, dispatch, the run's end": overhead - once - sum(phases.values()),
        "report (s)": float(getattr(parent, layout.SWEEP_REPORT_TIME, float("nan"))),
    }
    return result


def _cell(key: str, value: float) -> str:
    """Counts as integers; seconds with three decimals."""
    return (
        f"{value:.0f}" if float(value).is_integer() and "(s)" not in key and not key.startswith(" ") else f"{value:.3f}"
    )


def markdown(results: dict[str, dict[str, float]], studies: Sequence[int]) -> str:
    lines = [
        "# Scale benchmark: what a job costs beyond its training",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m benchmarks.scale`. "
        f"Machine: {machine_summary()}, {usable_cores()} usable cores. Parallel default launcher, tracking, "
        "models and report included; each study in a fresh store.",
        "",
        *(f"- {n} jobs: `python -m pipeline -m quiet=true {' '.join(STUDIES[n])}`" for n in studies),
        "",
    ]
    lines += markdown_columns(results, _cell)
    lines += [
        "",
        "Overhead per job = (wall x workers - summed training) / jobs. The indented rows split it: seconds a job",
        "spent in each phase (mean over jobs), and the rest, which no phase times.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="+", type=int, default=[96], choices=sorted(STUDIES))
    parser.add_argument(
        "--store-runs",
        type=count(0),
        default=0,
        help="also run each study against a store already holding this many runs",
    )
    parser.add_argument("--out", default=str(Path(project_home()) / "reports" / "scale_benchmark.md"))
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every study")
    args = parser.parse_args(argv)
    out = output_path(parser, args.out)
    results = {}
    # The earlier runs are written once and the file copied into each study's store: filling 10,000
    # runs takes 4-5 minutes here. Their experiment keeps its artifacts in ``earlier_home``.
    with tempfile.TemporaryDirectory(prefix="fnn-sweep-scale-earlier-") as earlier_home:
        if args.store_runs:
            filled = prefill(earlier_home, args.store_runs)
            print(f"a store of {args.store_runs:,} earlier runs filled in {filled:.0f} s", flush=True)
        for n in args.studies:
            overrides = [*STUDIES[n], *args.overrides]
            epochs = int(next(o for o in overrides[::-1] if o.startswith("train.epochs=")).split("=")[1])
            for earlier in sorted({0, args.store_runs}):
                with tempfile.TemporaryDirectory(prefix="fnn-sweep-scale-") as home:
                    if earlier:
                        shutil.copyfile(Path(earlier_home) / "mlflow.db", Path(home) / "mlflow.db")
                    # Whatever the set-up wrote (10,000 earlier runs: 140 MB, and its copy) on disk before
                    # the clock starts, as a user's store is: else its write-back lands in the study (SQLite's
                    # commits wait for it: on 12-07, 1.2 s more start-up, and 1.25x the empty store's wall at
                    # 1,000 jobs in a store of 10,000 runs, 1.06x once synced).
                    os.sync()
                    wall, started = timed_sweep(home, ["quiet=true", *overrides])
                    name = f"{n} jobs" + (f", store of {earlier:,} runs" if earlier else "")
                    results[name] = measure(home, wall, started, epochs)
                overhead = results[name]["overhead per job (s)"]
                print(f"{name}: {wall:.1f} s wall, {overhead:.3f} s per job beyond training", flush=True)
    write_whole(out, markdown(results, args.studies))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
