"""The best learning rate per cell: chosen on validation, never on test; ties to the smaller lr."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from helpers import REPO, jobs_of, run_pipeline
from pipeline.config import register_configs, validate
from pipeline.report.best_lr import best_lr_table, lr_cells
from pipeline.report.tables import ACCURACY_TABLE
from pipeline.tracking import layout

register_configs()
STUDY_LRS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]


def runs(*rows):
    """A ``layout.read_runs``-shaped frame from (width, activation, lr, seed, val_accuracy, test_accuracy, status)."""
    return pd.DataFrame(
        rows,
        columns=[
            layout.HIDDEN_NEURONS,
            layout.ACTIVATION,
            layout.LR,
            layout.SEED,
            "val_accuracy",
            layout.TEST_ACCURACY,
            "status",
        ],
    )


def test_the_lr_is_chosen_on_validation_even_where_test_would_choose_another():
    jobs = runs(  # relu-8: lr 0.01 is best on validation, lr 0.1 on test
        (8, "relu", 0.01, 0, 0.90, 0.80, "FINISHED"),
        (8, "relu", 0.01, 1, 0.92, 0.82, "FINISHED"),
        (8, "relu", 0.1, 0, 0.85, 0.95, "FINISHED"),
        (8, "relu", 0.1, 1, 0.87, 0.97, "FINISHED"),
        # tanh-8: a tie on validation goes to the smaller lr; a FAILED run counts for nothing
        (8, "tanh", 0.01, 0, 0.70, 0.60, "FINISHED"),
        (8, "tanh", 0.1, 0, 0.70, 0.90, "FINISHED"),
        (8, "tanh", 0.3, 0, 0.99, 0.99, "FAILED"),
    )
    table, activations = best_lr_table(lr_cells(jobs, [layout.LR], ACCURACY_TABLE), [], ACCURACY_TABLE)
    assert activations == ["relu", "tanh"]
    row = table.iloc[0]
    assert (row["relu_lr"], row["relu"]) == (0.01, pytest.approx(81.0))  # not lr 0.1's 96.0
    assert (row["tanh_lr"], row["tanh"]) == (0.01, pytest.approx(60.0))


def test_a_cell_without_validation_scores_is_missing_not_chosen_on_test():
    jobs = runs(
        (8, "relu", 0.01, 0, np.nan, 0.8, "FINISHED"),
        (8, "relu", 0.1, 0, np.nan, 0.9, "FINISHED"),
        (8, "tanh", 0.1, 0, 0.5, 0.6, "FINISHED"),
    )
    table, _ = best_lr_table(lr_cells(jobs, [layout.LR], ACCURACY_TABLE), [], ACCURACY_TABLE)
    assert np.isnan(table.loc[0, "relu"]) and np.isnan(table.loc[0, "relu_lr"]) and table.loc[0, "tanh_lr"] == 0.1


@pytest.mark.parametrize("preset, init, batch_size", [("lr_study", "auto", 64), ("lr_study_published", "normal", 1)])
def test_the_lr_study_presets_sweep_six_learning_rates(preset, init, batch_size):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        params = compose("config", overrides=[f"+experiment={preset}"], return_hydra_config=True).hydra.sweeper.params
        settings = validate(compose("config", overrides=[f"+experiment={preset}"]))
    assert [float(v) for v in params["optimizer.lr"].split(",")] == STUDY_LRS
    assert params["model.activation"] == "sigmoid,relu,tanh" and params["model.hidden_neurons"] == "256,128,64,32"
    assert (settings.model.init, settings.train.batch_size, settings.optimizer.name) == (init, batch_size, "sgd")


@pytest.mark.slow
@pytest.mark.readme("python -m pipeline -m +experiment=lr_study train.seed=0,1,2")
def test_a_real_lr_sweep_reports_the_validation_best_lr_per_cell(home):
    result = run_pipeline(  # README's learning-rate study, narrowed
        home,
        "-m",
        "+experiment=lr_study",
        "dataset=digits",
        "model.activation=relu,tanh",
        "model.hidden_neurons=8,16",
        "optimizer.lr=0.03,0.3",
        "train.seed=0,1",
        "train.epochs=2",
        "quiet=true",
        "mlflow.log_model=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    jobs = jobs_of(mlflow.search_runs(experiment_names=["fnn-sweep"]))
    assert len(jobs) == 16
    table = pd.read_csv(home / "reports" / "latest" / "table1_best_lr.csv")
    assert list(table.columns) == ["hidden_neurons", "relu", "relu_lr", "tanh", "tanh_lr"]
    for _, row in table.iterrows():
        for activation in ("relu", "tanh"):
            cell = jobs[
                (jobs["params.hidden_neurons"] == str(int(row["hidden_neurons"])))
                & (jobs["params.activation"] == activation)
            ]
            per_lr = (
                cell.assign(lr=cell["params.lr"].astype(float))
                .groupby("lr")[["metrics.val_accuracy", "metrics.test_accuracy"]]
                .mean()
            )
            best = per_lr["metrics.val_accuracy"].max()
            expected_lr = min(per_lr.index[per_lr["metrics.val_accuracy"] == best])
            assert row[f"{activation}_lr"] == expected_lr
            assert row[activation] == pytest.approx(100 * per_lr.loc[expected_lr, "metrics.test_accuracy"], abs=1e-4)
    markdown = (home / "reports" / "latest" / "table1_best_lr.md").read_text()
    assert "highest mean final validation accuracy over seeds (ties: the smaller lr)" in markdown
    assert (home / "reports" / "latest" / "val_vs_lr.png").stat().st_size > 10_000
    tex = (home / "reports" / "latest" / "table1_best_lr.tex").read_text()
    assert r"test accuracy (\%)" in tex and "(lr " in tex  # an unescaped % would comment out the caption
    # The existing tables keep lr as extra columns: one row per (lr, width).
    table1 = pd.read_csv(home / "reports" / "latest" / "table1_test_accuracy.csv")
    assert len(table1) == 4 and layout.LR in table1.columns
    assert "at the best learning rate per cell" in (home / "reports" / "latest" / "report.md").read_text()
