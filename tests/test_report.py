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
    grid = run_pipeline(home, "-m", "model.activation=tanh,sigmoid,relu", "model.hidden_neurons=128,8,32",
                        "train.seed=0,1", *FAST)
    assert grid.returncode == 0, grid.stderr[-3000:]
    failing = run_pipeline(home, "-m", "model.activation=sigmoid,relu", "model.hidden_neurons=8",
                           "optimizer.lr=0.1,1e4", *FAST)
    assert failing.returncode == 1  # the relu job at lr 1e4 diverges; the sweep still finishes
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["fnn-sweep"])
    sweeps = runs[runs["tags.fnn_sweep.role"] == "sweep"].sort_values("start_time")
    return home, runs, list(sweeps["tags.sweep_id"])


def report(home, out, *args):
    result = run_pipeline(home, f"report.out_dir={out}", *args, module="pipeline.report")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_cells_equal_the_mean_of_matching_runs(store, tmp_path):
    home, runs, (grid_id, _) = store
    out = report(home, tmp_path / "grid", f"report.sweep_id={grid_id}")
    jobs = runs[(runs["tags.sweep_id"] == grid_id) & (runs["tags.fnn_sweep.role"] == "job")]
    assert len(jobs) == 18 and set(jobs["status"]) == {"FINISHED"}
    for stem, metric, scale in (("table1_test_accuracy", "metrics.test_accuracy", 100),
                                ("table2_training_time", "metrics.training_time_s", 1)):
        table = pd.read_csv(out / f"{stem}.csv")
        assert list(table.columns) == ["hidden_neurons", "sigmoid", "relu", "tanh", "sigmoid_std", "sigmoid_n",
                                       "relu_std", "relu_n", "tanh_std", "tanh_n"]
        assert list(table["hidden_neurons"]) == [8, 32, 128]  # as numbers, not strings
        for _, row in table.iterrows():
            for activation in ("sigmoid", "relu", "tanh"):
                cell = jobs[(jobs["params.model.hidden_neurons"] == str(int(row["hidden_neurons"])))
                            & (jobs["params.model.activation"] == activation)][metric] * scale
                assert len(cell) == 2 and row[f"{activation}_n"] == 2
                assert row[activation] == pytest.approx(cell.mean(), abs=1e-5)
                assert row[f"{activation}_std"] == pytest.approx(cell.std(ddof=1), abs=1e-5)
    markdown = (out / "table1_test_accuracy.md").read_text()
    assert "±" in markdown and markdown.count("**") == 2 * 3  # one best cell per row
    assert "hidden neurons | sigmoid | relu | tanh" in (out / "report.md").read_text()
    for figure in ("loss_curves", "accuracy_vs_width", "time_vs_width", "heatmap_test_accuracy",
                   "heatmap_training_time"):
        assert (out / f"{figure}.png").stat().st_size > 5000
    comparison = pd.read_csv(out / "table1_test_accuracy_vs_published.csv")
    assert list(comparison.columns) == ["hidden_neurons", "activation", "ours", "published", "difference"]
    # Published widths 32 and 128 were run here, 64 and 256 were not.
    ran = comparison[comparison["hidden_neurons"].isin([32, 128])]
    assert ran["ours"].notna().all()
    assert np.allclose(ran["difference"], ran["ours"] - ran["published"], atol=0.011)
    assert comparison[comparison["hidden_neurons"] == 64]["ours"].isna().all()


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


@pytest.mark.readme('python -m pipeline.report report.sweep_id=all report.out_dir=reports/all')
def test_all_pools_every_run_of_the_experiment(store, tmp_path):
    home, runs, _ = store
    out = report(home, tmp_path / "all", "report.sweep_id=all")
    table = pd.read_csv(out / "table1_test_accuracy.csv")
    finished = runs[(runs["tags.fnn_sweep.role"] == "job") & (runs["status"] == "FINISHED")]
    assert table.filter(regex=r"_n$").to_numpy().sum() == len(finished)


def test_regenerating_gives_identical_tables(store, tmp_path):
    home, _, (grid_id, _) = store
    first = report(home, tmp_path / "a", f"report.sweep_id={grid_id}")
    second = report(home, tmp_path / "b", f"report.sweep_id={grid_id}")
    for name in ("table1_test_accuracy.csv", "table2_training_time.md", "table1_test_accuracy.tex"):
        assert (first / name).read_text() == (second / name).read_text()


def test_unknown_sweep_and_empty_store_are_one_line_errors(store, tmp_path):
    home, _, _ = store
    result = run_pipeline(home, "report.sweep_id=nope", f"report.out_dir={tmp_path}", module="pipeline.report")
    assert result.returncode == 2 and "no runs for sweep 'nope'" in result.stderr
    empty = run_pipeline(tmp_path, f"report.out_dir={tmp_path}", module="pipeline.report")
    assert empty.returncode == 2 and "python -m pipeline -m" in empty.stderr
    assert "Traceback" not in result.stderr + empty.stderr


def test_regression_sweeps_report_test_mse(tmp_path):
    home = tmp_path / "home"
    sweep = run_pipeline(home, "-m", "dataset=diabetes", "model.activation=relu,tanh", "model.hidden_neurons=8,16",
                         "train.epochs=5", "quiet=true", "mlflow.log_model=false")
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    out = home / "reports"  # written by the sweep itself
    table = pd.read_csv(out / "table1_test_mse.csv")
    assert list(table.columns) == ["hidden_neurons", "relu", "tanh"]
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    jobs = mlflow.search_runs(experiment_names=["fnn-sweep"], filter_string="tags.`fnn_sweep.role` = 'job'")
    cell = jobs[(jobs["params.activation"] == "tanh") & (jobs["params.hidden_neurons"] == "16")]
    assert table.loc[table["hidden_neurons"] == 16, "tanh"].item() == pytest.approx(cell["metrics.test_mse"].item(),
                                                                                  abs=1e-5)
    assert not (out / "table1_test_mse_vs_published.csv").exists()
    assert "test MSE" in (out / "report.md").read_text()
