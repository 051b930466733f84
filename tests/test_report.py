"""The reporting stage on real sweeps: every cell must equal the mean of its MLflow runs."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from helpers import run_pipeline

pytestmark = pytest.mark.slow  # real sweeps and report commands

FAST = ["dataset=digits", "train.epochs=2", "quiet=true", "mlflow.log_model=false", "report.after_sweep=false"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two real sweeps in one store: a seeded grid, then one where relu diverges at lr 1e4."""
    home = tmp_path_factory.mktemp("home")
    # Axis values given out of order on purpose: the report must sort them.
    grid = run_pipeline(
        home, "-m", "model.activation=tanh,sigmoid,relu", "model.hidden_neurons=128,8,32", "train.seed=0,1", *FAST
    )
    assert grid.returncode == 0, grid.stderr[-3000:]
    failing = run_pipeline(
        home, "-m", "model.activation=sigmoid,relu", "model.hidden_neurons=8", "optimizer.lr=0.1,1e4", *FAST
    )
    assert failing.returncode == 1  # the relu job at lr 1e4 diverges; the sweep still finishes
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["fnn-sweep"])
    sweeps = runs[runs["tags.fnn_sweep.role"] == "sweep"].sort_values("start_time")
    return home, runs, list(sweeps["tags.sweep_id"])


def report(home, out, *args):
    result = run_pipeline(home, f"report.out_dir={out}", *args, module="pipeline.report")
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "latest"


def test_cells_equal_the_mean_of_matching_runs(store, tmp_path):
    home, runs, (grid_id, _) = store
    out = report(home, tmp_path / "grid", f"report.sweep_id={grid_id}")
    jobs = runs[(runs["tags.sweep_id"] == grid_id) & (runs["tags.fnn_sweep.role"] == "job")]
    assert len(jobs) == 18 and set(jobs["status"]) == {"FINISHED"}
    for stem, metric, scale in (
        ("table1_test_accuracy", "metrics.test_accuracy", 100),
        ("table2_training_time", "metrics.training_time_s", 1),
    ):
        table = pd.read_csv(out / f"{stem}.csv")
        assert list(table.columns) == [
            "hidden_neurons",
            "sigmoid",
            "relu",
            "tanh",
            "sigmoid_std",
            "sigmoid_n",
            "relu_std",
            "relu_n",
            "tanh_std",
            "tanh_n",
        ]
        assert list(table["hidden_neurons"]) == [8, 32, 128]  # as numbers, not strings
        for _, row in table.iterrows():
            for activation in ("sigmoid", "relu", "tanh"):
                cell = (
                    jobs[
                        (jobs["params.model.hidden_neurons"] == str(int(row["hidden_neurons"])))
                        & (jobs["params.model.activation"] == activation)
                    ][metric]
                    * scale
                )
                assert len(cell) == 2 and row[f"{activation}_n"] == 2
                assert row[activation] == pytest.approx(cell.mean(), abs=1e-5)
                assert row[f"{activation}_std"] == pytest.approx(cell.std(ddof=1), abs=1e-5)
    markdown = (out / "table1_test_accuracy.md").read_text()
    assert "±" in markdown and markdown.count("**") == 2 * 3  # one best cell per row
    assert "hidden neurons | sigmoid | relu | tanh" in (out / "report.md").read_text()
    for figure in (
        "loss_curves",
        "accuracy_vs_width",
        "time_vs_width",
        "heatmap_test_accuracy",
        "heatmap_training_time",
    ):
        assert (out / f"{figure}.png").stat().st_size > 5000
    # The published tables are MNIST's: digits runs get no comparison (the MNIST default grid test has it).
    assert not list(out.glob("*_vs_published.csv")) and "published study" not in (out / "report.md").read_text()


def test_failed_runs_are_counted_and_cells_left_missing(store, tmp_path):
    home, runs, (_, failing_id) = store
    out = report(home, tmp_path / "latest")  # the default: the latest sweep
    table = pd.read_csv(out / "table1_test_accuracy.csv")
    # The sweep varied optimizer.lr too: the table gains that column, one row per value.
    assert list(table.columns) == ["hidden_neurons", "optimizer.lr", "sigmoid", "relu"]
    assert list(table["optimizer.lr"]) == [0.1, 10000]
    assert np.isnan(table.loc[table["optimizer.lr"] == 10000, "relu"]).all()
    assert table["sigmoid"].notna().all()
    index = (out / "report.md").read_text()
    assert f"sweep {failing_id}" in index
    assert "Failed or unfinished runs: 1" in index and "relu-8" in index and "diverged" in index
    assert "Missing cells (no finished run): 1" in index and "optimizer.lr" in index
    assert "—" in (out / "table1_test_accuracy.md").read_text()


@pytest.mark.readme("python -m pipeline.report report.sweep_id=all")
def test_all_pools_every_run_of_the_experiment(store, tmp_path):
    home, runs, _ = store
    out = report(home, tmp_path / "all", "report.sweep_id=all")
    assert out.resolve() == (tmp_path / "all" / "all").resolve()
    table = pd.read_csv(out / "table1_test_accuracy.csv")
    finished = runs[(runs["tags.fnn_sweep.role"] == "job") & (runs["status"] == "FINISHED")]
    assert table.filter(regex=r"_n$").to_numpy().sum() == len(finished)


def test_regenerating_gives_identical_tables(store, tmp_path):
    home, _, (grid_id, _) = store
    first = report(home, tmp_path / "a", f"report.sweep_id={grid_id}")
    second = report(home, tmp_path / "b", f"report.sweep_id={grid_id}")
    for name in ("table1_test_accuracy.csv", "table2_training_time.md", "table1_test_accuracy.tex"):
        assert (first / name).read_text() == (second / name).read_text()


def test_a_sweeps_own_report_from_the_runs_it_read_equals_one_read_from_the_store(store, tmp_path, monkeypatch):
    """The sweep's end hands its job runs (as its summary read them) to the report, which then does not
    read them again: every file is the same as a report that reads them (a FAILED job included)."""
    from pipeline.report import select, write_report
    from pipeline.tracking import layout
    from pipeline.tracking import runs as tracked
    from pipeline.tracking.store import open_store

    home, runs, (_, failing_id) = store
    tracking = open_store(f"sqlite:///{home}/mlflow.db")
    parent = runs[(runs["tags.sweep_id"] == failing_id) & (runs["tags.fnn_sweep.role"] == "sweep")]["run_id"].item()
    jobs = tracked.sweep_jobs(tracking, parent)
    filters, read_runs = [], layout.read_runs
    monkeypatch.setattr(select.layout, "read_runs", lambda t, ids, f="": filters.append(f) or read_runs(t, ids, f))
    given = write_report(tracking, "fnn-sweep", failing_id, tmp_path / "given", jobs)
    assert filters and not any("sweep_id" in f for f in filters)  # only the parents were read
    read = write_report(tracking, "fnn-sweep", failing_id, tmp_path / "read")
    assert any("sweep_id" in f for f in filters)
    files = sorted(p.name for p in given.iterdir() if p.suffix != ".png")
    assert files == sorted(p.name for p in read.iterdir() if p.suffix != ".png") and "report.md" in files
    for name in files:
        text, expected = ((folder / name).read_text().splitlines() for folder in (given, read))
        assert [t for t in text if not t.startswith("Generated")] == [
            e for e in expected if not e.startswith("Generated")
        ]
    assert "FAILED" in (given / "report.md").read_text()


def test_unknown_sweep_and_empty_store_are_one_line_errors(store, tmp_path):
    home, _, _ = store
    result = run_pipeline(home, "report.sweep_id=nope", f"report.out_dir={tmp_path}", module="pipeline.report")
    assert result.returncode == 2 and "no runs for sweep 'nope'" in result.stderr
    empty = run_pipeline(tmp_path, f"report.out_dir={tmp_path}", module="pipeline.report")
    assert empty.returncode == 2 and "python -m pipeline -m" in empty.stderr
    assert "Traceback" not in result.stderr + empty.stderr


def test_regression_sweeps_report_test_mse(tmp_path):
    home = tmp_path / "home"
    sweep = run_pipeline(
        home,
        "-m",
        "dataset=diabetes",
        "model.activation=relu,tanh",
        "model.hidden_neurons=8,16",
        "train.epochs=5",
        "quiet=true",
        "mlflow.log_model=false",
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    out = home / "reports" / "latest"  # written by the sweep itself
    table = pd.read_csv(out / "table1_test_mse.csv")
    assert list(table.columns) == ["hidden_neurons", "relu", "tanh"]
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    jobs = mlflow.search_runs(experiment_names=["fnn-sweep"], filter_string="tags.`fnn_sweep.role` = 'job'")
    cell = jobs[(jobs["params.activation"] == "tanh") & (jobs["params.hidden_neurons"] == "16")]
    assert table.loc[table["hidden_neurons"] == 16, "tanh"].item() == pytest.approx(
        cell["metrics.test_mse"].item(), abs=1e-5
    )
    assert not (out / "table1_test_mse_vs_published.csv").exists()
    assert "test MSE" in (out / "report.md").read_text()


def test_a_report_is_published_whole_and_leaves_the_rest_of_out_dir_alone(store, tmp_path, monkeypatch):
    from pipeline.report import figures, write_report
    from pipeline.tracking.store import open_store

    home, _, (grid_id, failing_id) = store
    uri, out = f"sqlite:///{home}/mlflow.db", tmp_path / "reports"
    (out / "study").mkdir(parents=True)
    (out / "README.md").write_text("committed\n")
    (out / "study" / "table.csv").write_text("a,b\n")
    first = write_report(open_store(uri), "fnn-sweep", grid_id, out)
    before = {p.name: p.read_bytes() for p in first.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(figures, "plot_heatmap", disk_full)  # a fault half-way through writing the files
    for sweep_id in (grid_id, failing_id):
        with pytest.raises(OSError, match="No space left"):
            write_report(open_store(uri), "fnn-sweep", sweep_id, out)
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before  # the previous report, intact
    assert {p.name for p in out.iterdir()} == {"README.md", "latest", grid_id, "study"}  # no half report
    assert (out / "latest").resolve() == first.resolve()
    assert (out / "README.md").read_text() == "committed\n" and (out / "study" / "table.csv").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["report.out_dir=FILE"], "report.out_dir=FILE is a file, not a directory; choose a directory"),
        (["report.register_best=bad/name"], "report.register_best='bad/name' is not valid: a model name cannot"),
        (["mlflow.stale_after_s=nan"], "mlflow.stale_after_s=nan is not valid"),
        (["mlflow.tracking_uri=sqlite:///TMP/typo.db"], "error: no experiment 'fnn-sweep' in sqlite:///TMP/typo.db"),
        (["mlflow.experiment_name=typo"], "error: no experiment 'typo' in"),
    ],
)
@pytest.mark.parametrize("module", ["pipeline.report", "pipeline.reap"])
def test_bad_report_input_is_one_line_and_creates_nothing(store, tmp_path, args, message, module):
    home, _, _ = store
    if module == "pipeline.reap" and "report." in args[0]:
        return  # the reaper has no report to write
    (tmp_path / "FILE").write_text("")
    args = [a.replace("FILE", str(tmp_path / "FILE")).replace("TMP", str(tmp_path)) for a in args]
    message = message.replace("FILE", str(tmp_path / "FILE")).replace("TMP", str(tmp_path))
    experiments = len(mlflow.search_experiments())
    result = run_pipeline(home, f"report.out_dir={tmp_path / 'out'}", *args, module=module)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]  # no store, no report folder
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    assert len(mlflow.search_experiments()) == experiments  # no experiment either


def test_a_sweep_whose_every_job_failed_ends_its_parent_and_reports_nothing(tmp_path):
    """Huge legal values (lr 1e308, stale_after_s 1e20) in every job: the runs read back, the parent ends."""
    home = tmp_path / "home"
    sweep = run_pipeline(
        home,
        "-m",
        "dataset=digits",
        "model.activation=relu,tanh",
        "model.hidden_neurons=8",
        "optimizer.lr=1e308",
        "mlflow.stale_after_s=1e20",
        "train.epochs=1",
        "quiet=true",
        "mlflow.log_model=false",
    )
    assert sweep.returncode == 1 and "Traceback" not in sweep.stderr + sweep.stdout, sweep.stderr[-3000:]
    assert "report not written: sweep sweep-" in sweep.stdout and "has no finished run to report" in sweep.stdout
    runs = (
        mlflow.search_runs(experiment_names=["fnn-sweep"])
        if mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db") is None
        else None
    )
    assert sorted(zip(runs["tags.fnn_sweep.role"], runs["status"])) == [
        ("job", "FAILED"),
        ("job", "FAILED"),
        ("sweep", "FAILED"),
    ]
    assert runs["tags.failure_reason"].str.contains("try a smaller optimizer.lr").sum() == 2
    again = run_pipeline(home, module="pipeline.report")
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        f"error: sweep {runs['tags.sweep_id'].dropna().iloc[0]} has no finished run to report (2 FAILED); "
        "nothing written"
    ]
    assert not (home / "reports").exists() or not any((home / "reports").iterdir())


def test_figures_drawn_on_two_cores_are_the_files_drawn_on_one(store, tmp_path, monkeypatch):
    """The report's figures are shared with a forked child (``forked_share``): every file, figures
    byte for byte, is the one a report drawn in one process writes."""
    import os

    from pipeline.report import write_report
    from pipeline.runtime import forked_share
    from pipeline.tracking.store import open_store

    home, _, (grid_id, _) = store
    tracking = open_store(f"sqlite:///{home}/mlflow.db")
    forks, fork = [], os.fork
    monkeypatch.setattr(forked_share.os, "fork", lambda: forks.append(1) or fork())
    shared = write_report(tracking, "fnn-sweep", grid_id, tmp_path / "shared")
    assert forks == [1]  # one child drew a share of the figures
    monkeypatch.setattr(forked_share, "can_fork", lambda: False)
    alone = write_report(tracking, "fnn-sweep", grid_id, tmp_path / "alone")
    assert forks == [1]
    names = sorted(p.name for p in shared.iterdir())
    assert names == sorted(p.name for p in alone.iterdir()) and "loss_curves.png" in names
    for name in names:
        if name != "report.md":  # its "Generated" minute may differ
            assert (shared / name).read_bytes() == (alone / name).read_bytes(), name
