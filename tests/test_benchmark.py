"""The benchmark command runs and writes its table (timings themselves are not asserted)."""

import re
import subprocess
import sys

import pytest

from benchmarks.scale import PHASE_NAMES
from helpers import REPO, command_environment, run_pipeline

pytestmark = pytest.mark.slow  # the real benchmark command


@pytest.mark.readme("python -m benchmarks.epoch")
def test_benchmark_writes_a_row_per_config(tmp_path, mnist_dir):
    out = tmp_path / "benchmark.md"
    result = run_pipeline(
        tmp_path,
        "--epochs",
        "1",
        "--repeats",
        "1",
        "--hidden",
        "8",
        "16",
        "--activations",
        "relu",
        "tanh",
        "--no-torch",
        "--data-dir",
        str(mnist_dir),
        "--out",
        str(out),
        module="benchmarks.epoch",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith(("| relu", "| tanh"))]
    assert len(rows) == 4
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        ours, sklearn, ratio = float(cells[2]), float(cells[3]), float(cells[4].rstrip("x"))
        assert ours > 0 and abs(ratio - sklearn / ours) < 0.03 * ratio
        one_thread, share, outside_us = float(cells[-3]), float(cells[-2].rstrip("%")), float(cells[-1])
        assert one_thread > 0 and 0 < share <= 150 and outside_us >= -50  # timing noise only, both ways
    assert f"IDX files in {mnist_dir}" in out.read_text()
    assert not (REPO / "benchmark.md").exists()


def test_benchmark_without_data_is_one_line(tmp_path):
    result = run_pipeline(tmp_path, "--data-dir", str(tmp_path), module="benchmarks.epoch")
    assert result.returncode == 2 and result.stderr.startswith("error: dataset.dir=")


@pytest.mark.readme("python -m benchmarks.sweep")
def test_sweep_benchmark_accounts_for_the_wall_time(tmp_path):
    out = tmp_path / "sweep_benchmark.md"
    result = run_pipeline(
        tmp_path,
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--launchers",
        "parallel",
        "--out",
        str(out),
        "mlflow.log_model=false",
        module="benchmarks.sweep",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _first_column(out.read_text(), "| seconds")
    assert rows["jobs"] == 12 and 1 <= rows["workers"] <= 2
    assert 0 <= rows["training max"] <= rows["training sum"] < rows["wall"]
    # The parts it names fit inside the wall time, and start-up is real time before the first run.
    assert 0 < rows["start-up (command start to first job's run)"] < rows["wall"]
    assert 0 <= rows["after the last job (summary, report, exit)"] < rows["wall"]
    assert rows["model logging (sum)"] == 0  # mlflow.log_model=false was passed through to the sweep


@pytest.mark.readme("python -m benchmarks.floor")
def test_floor_benchmark_runs_each_layer_on_the_same_jobs(tmp_path, mnist_dir):
    out = tmp_path / "floor.md"
    result = run_pipeline(
        tmp_path,
        *("--dataset", "mnist", "--data-dir", str(mnist_dir), "--epochs", "1", "--repeats", "1"),
        *("--contenders", "joblib", "Hydra + MLflow", "--out", str(out)),
        module="benchmarks.floor",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {name: [float(c) for c in cells] for name, cells in _table_rows(out.read_text(), "|  |").items()}
    assert rows["jobs"] == [12, 12]  # every job of the grid trained and timed, by both contenders
    for column in (0, 1):
        wall, per_worker = rows["wall (s), median"][column], rows["summed training / workers (s), median"][column]
        assert 0 < per_worker < wall
        # The table's two decimals, not the ratio's: a 1-epoch job trains for a fraction of a second.
        lowest, highest = (wall - 0.005) / (per_worker + 0.005), (wall + 0.005) / (per_worker - 0.005)
        assert lowest - 0.005 <= rows["wall / (training / workers), median"][column] <= highest + 0.005
    # Tracking is work: the tracked Hydra sweep costs more beyond its training than joblib alone.
    assert rows["beyond training (s), median"][1] > rows["beyond training (s), median"][0]


def test_floor_benchmark_without_data_is_one_line_before_any_command(tmp_path):
    result = run_pipeline(tmp_path, "--dataset", "mnist", "--data-dir", str(tmp_path), module="benchmarks.floor")
    assert result.returncode == 2 and result.stderr.startswith("error: dataset.dir=")
    assert len(result.stderr.splitlines()) == 1 and not list(tmp_path.glob("reports/*"))


BENCHMARKS = ["epoch", "sweep", "floor", "scale", "search", "halving"]


def test_every_benchmark_checks_its_out_path_and_its_counts_before_it_runs(tmp_path):
    """A bad --out or a count below 1 is one line and exit 2 at once, not a traceback after minutes of runs."""
    (tmp_path / "a-file").write_text("")
    commands = {f"{name} --out": ["--out", str(tmp_path / "a-file" / "report.md")] for name in BENCHMARKS} | {
        "sweep --epochs": ["--epochs", "0"],
        "scale --store-runs": ["--store-runs", "-1"],
        "search --trials": ["--trials", "zero"],
    }
    env = command_environment(tmp_path)
    started = {
        what: subprocess.Popen(
            [sys.executable, "-m", f"benchmarks.{what.split()[0]}", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for what, args in commands.items()
    }
    for what, process in started.items():
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 2, (what, stderr[-2000:])
        if what.endswith("--out"):
            bad = tmp_path / "a-file" / "report.md"
            assert stderr == f"error: --out={bad} cannot be written: a part of its directory is a file\n", what
        else:
            assert f"argument {what.split()[1]}: must be" in stderr.splitlines()[-1], (what, stderr)
    assert not list(tmp_path.glob("*/reports/*")) and not list(tmp_path.glob("reports/*"))


@pytest.mark.readme("python -m benchmarks.scale", "python -m benchmarks.scale --studies 96 1000 --store-runs 10000")
def test_scale_benchmark_splits_the_overhead_and_counts_every_record(tmp_path):
    out = tmp_path / "scale.md"
    result = run_pipeline(
        tmp_path,
        "--studies",
        "4",
        "--store-runs",
        "50",
        "--out",
        str(out),
        "mlflow.log_model=false",
        module="benchmarks.scale",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = out.read_text().splitlines()
    assert "|  | 4 jobs | 4 jobs, store of 50 runs |" in lines
    rows = {name: [float(c) for c in cells] for name, cells in _table_rows(out.read_text()).items() if name}
    for column in (0, 1):  # the study's own runs only, in both stores
        assert rows["jobs"][column] == rows["FINISHED"][column] == rows["nested under the parent run"][column] == 4
        assert rows["epoch metric points (stored)"][column] == rows["epoch metric points (expected)"][column] == 4 * 5
        assert rows["overhead per job (s)"][column] > 0
        phases = [rows[name][column] for name in PHASE_NAMES.values()]
        assert all(value >= 0 for value in phases) and rows["model"][column] == 0  # log_model=false passed on
        split = sum(phases) + rows["start-up and end, spread over the jobs"][column]
        split += rows["the rest: Hydra's job set-up, dispatch, the run's end"][column]
        assert split == pytest.approx(rows["overhead per job (s)"][column], abs=0.01)  # the rows add up


@pytest.mark.readme("python -m benchmarks.search", "python -m benchmarks.search --trials 20 --seeds 2 --epochs 2")
def test_search_benchmark_compares_samplers_at_the_same_budget(tmp_path):
    out = tmp_path / "search_benchmark.md"
    result = run_pipeline(
        tmp_path,
        *("--dataset", "digits", "--trials", "3", "--seeds", "1", "--epochs", "1", "--arms", "random"),
        *("--out", str(out)),
        module="benchmarks.search",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _first_column(out.read_text(), "|  |")
    assert 0 < rows["best val accuracy after 3 trials"] <= 1
    assert 0 < rows["summed training per study (s)"] < rows["wall per study (s)"]
    assert 0 <= rows["worker time idle in rounds (%)"] < 100 and rows["pruned trials per study"] == 0
    assert (tmp_path / "search_benchmark.png").is_file()


@pytest.mark.readme(
    "python -m benchmarks.halving",
    "python -m benchmarks.halving --dataset fashion_mnist --out reports/halving_benchmark_fashion_mnist.md",
)
def test_halving_benchmark_compares_the_study_with_and_without_early_stopping(tmp_path):
    out = tmp_path / "halving_benchmark.md"
    result = run_pipeline(
        tmp_path,
        *("--dataset", "digits", "--seeds", "1", "--rungs", "1", "--out", str(out)),
        *("--overrides", "model.activation=relu", "model.hidden_neurons=32", "train.epochs=3", "optimizer.lr=0.03,0.3"),
        module="benchmarks.halving",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _table_rows(out.read_text())
    assert float(rows["summed training (s)"][0]) > 0 and float(rows["summed training (s)"][1]) > 0
    assert rows["epochs trained"][:2] == ["6", "4"]  # 2 lrs x 3 epochs; 2 x 1 and the better one 2 more
    assert rows["runs stopped early"][:2] == ["0", "1"]
    assert re.fullmatch(r"[01] of 1", rows["cells with the same validation-best lr"][1])
    assert rows["relu"][0] == "32"  # the one cell, with its chosen lr on both sides


def _table_rows(markdown, header=None):
    """{first cell: the other cells} of every Markdown table row (header lines starting with ``header``
    and rule lines left out)."""
    return {
        cells[0]: cells[1:]
        for cells in (
            [c.strip() for c in line.strip("|").split("|")]
            for line in markdown.splitlines()
            if line.startswith("| ") and not line.startswith((header or "| ---", "| ---"))
        )
    }


def _first_column(markdown, header):
    """{row name: first value column} of the Markdown table whose header line starts with ``header``."""
    return {name: float(cells[0]) for name, cells in _table_rows(markdown, header).items()}
