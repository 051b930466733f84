"""`python -m benchmarks.sweep`: the default grid end to end, and where its wall time goes.

Runs the real command, ``python -m pipeline -m`` (3 activations x 4 widths,
10 epochs, tracking, models and report included), into a fresh store for
each launcher asked for, reads the runs back and writes
``reports/sweep_benchmark.md``:

    python -m benchmarks.sweep                        # parallel (default) and sequential
    python -m benchmarks.sweep --launchers parallel --epochs 2

It uses the full Fashion-MNIST when Debian's ``dataset-fashion-mnist`` is
installed, else MNIST (``--dataset``, ``--data-dir``).
"""

import argparse
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import count, markdown_columns, output_path, runs_in, timed_sweep, write_whole
from pipeline.config import project_home
from pipeline.data.download import IDX_SOURCES
from pipeline.data.idx import IDX_FILES
from pipeline.runtime.machine import machine_summary
from pipeline.runtime.workers import usable_cores
from pipeline.tracking import layout

LAUNCHERS = {"parallel": [], "sequential": ["hydra/launcher=basic"]}


def default_dataset() -> str:
    installed = any(
        all((Path(d) / f).is_file() for f in IDX_FILES.values()) for d in IDX_SOURCES["fashion_mnist"].system_dirs
    )
    return "fashion_mnist" if installed else "mnist"


def run_sweep(
    home: str, dataset: str, data_dir: str | None, epochs: int, launcher_overrides: Sequence[str], extra: Sequence[str]
) -> tuple[float, float]:
    """Run the sweep in ``home``; returns (wall seconds, command start as epoch seconds)."""
    overrides = [f"dataset={dataset}", f"train.epochs={epochs}", *([f"dataset.dir={data_dir}"] if data_dir else [])]
    return timed_sweep(home, [*overrides, *launcher_overrides, *extra])


def breakdown(home: str, wall: float, started: float) -> dict[str, float]:
    """Where the wall time went, from the runs the sweep left in ``home``'s store."""
    _, runs = runs_in(home)
    jobs = runs[runs["role"] == layout.ROLE_JOB]
    parent = runs[runs["role"] == layout.ROLE_SWEEP].iloc[0]
    seconds = lambda column: jobs[column].fillna(0).sum() if column in jobs else 0.0  # noqa: E731
    starts, ends = (jobs[column].map(lambda t: t.timestamp()) for column in ("start_time", "end_time"))
    spans = ends - starts
    training = jobs[layout.TRAINING_TIME]
    phases = {phase: seconds(metric) for phase, metric in layout.PHASE_METRICS.items()}
    workers = len(set(zip(jobs["hostname"], jobs["pid"])))  # processes that ran jobs
    return {
        "wall": wall,
        "jobs": len(jobs),
        "workers": workers,
        "training sum": training.sum(),
        "training max": training.max(),
        "start-up (command start to first job's run)": starts.min() - started,
        "data loading in jobs (sum)": phases["data"],
        "tracking in jobs: run, params, epoch metrics, results (sum)": (spans - training).sum()
        - phases["artifacts"]
        - phases["model"],
        "figures and confusion matrix (sum)": phases["artifacts"],
        "model logging (sum)": phases["model"],
        "report": float(parent.get(layout.SWEEP_REPORT_TIME, float("nan"))),
        "after the last job (summary, report, exit)": started + wall - ends.max(),
    }


def _cell(key: str, value: float) -> str:
    return f"{value:.0f}" if key in ("jobs", "workers") else f"{value:.2f}"


def markdown(results: Mapping[str, dict], dataset: str, epochs: int) -> str:
    lines = [
        "# Sweep benchmark: the default grid end to end",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m benchmarks.sweep`.",
        f"Dataset {dataset}, {epochs} epochs, 12 jobs (activation x width), tracking, models and report "
        f"included. Machine: {machine_summary()}, {usable_cores()} usable cores.",
        "",
    ]
    lines += markdown_columns(results, _cell, corner="seconds")
    lines += [
        "",
        "Sums add up over jobs that ran at once; with W workers the critical path is about sum / W.",
        "The machine's load during the run changes every figure: compare rows within one run of this command.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, help="fashion_mnist when installed, else mnist")
    parser.add_argument("--data-dir", default=None, help="dataset.dir for the sweep")
    parser.add_argument("--epochs", type=count(), default=10)
    parser.add_argument("--launchers", nargs="+", default=list(LAUNCHERS), choices=list(LAUNCHERS))
    parser.add_argument("--out", default=str(Path(project_home()) / "reports" / "sweep_benchmark.md"))
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every sweep")
    args = parser.parse_args(argv)
    out = output_path(parser, args.out)
    dataset = args.dataset or default_dataset()
    results = {}
    for name in args.launchers:
        with tempfile.TemporaryDirectory(prefix="fnn-sweep-benchmark-") as home:
            wall, started = run_sweep(home, dataset, args.data_dir, args.epochs, LAUNCHERS[name], args.overrides)
            results[name] = breakdown(home, wall, started)
        print(f"{name}: {wall:.1f} s wall, training {results[name]['training sum']:.1f} s summed", flush=True)
    text = markdown(results, dataset, args.epochs)
    write_whole(out, text)
    print(text)


if __name__ == "__main__":
    main()
