"""A grid's early stopping within each cell (hydra.sweeper.halving): the rule, and a real sweep that
keeps every cell, continues its survivors exactly, reports what it saved and resumes."""

import math
import signal
import sqlite3
from types import SimpleNamespace

import pandas as pd
import pytest

from helpers import FAST, jobs_of, mlflow_runs, new_sqlite_store, run_pipeline, start_pipeline, stop
from pipeline.errors import InputError
from pipeline.sweep.grid import job_overrides, sweep_axes
from pipeline.sweep.halving import Cell, CellHalving, rank

# ---- the rule ----


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"rungs": 2}, "must be a list of epochs"),
        ({"rungs": [3, 1]}, "increasing epochs >= 1"),
        ({"rungs": [0, 2]}, "increasing epochs >= 1"),
        ({"rungs": [1], "reduction_factor": 1}, "must be a number > 1"),
        ({"rungs": [1], "compete": ["train.seed"]}, "seeds are pooled"),
        ({"rungs": [1], "compete": []}, "must name the swept keys"),
        ({"rungs": [1], "rung": [2]}, "unknown setting 'rung'"),
    ],
)
def test_bad_settings_are_one_line(settings, message):
    with pytest.raises(InputError, match=message):
        CellHalving.from_sweeper(settings)


def test_no_rungs_is_off_and_the_defaults_compete_on_lr():
    assert CellHalving.from_sweeper({"rungs": []}) is None and CellHalving.from_sweeper(None) is None
    halving = CellHalving.from_sweeper({"rungs": [1, 3]})
    assert halving.compete == ("optimizer.lr",) and halving.reduction_factor == 2
    assert [halving.kept(n) for n in (1, 2, 3, 6)] == [1, 1, 2, 3]
    assert CellHalving((1,), reduction_factor=3).kept(6) == 2


def test_cells_pool_seeds_and_index_the_grid_in_its_order():
    params = {"model.activation": "relu,tanh", "model.hidden_neurons": "32,64"}
    command = ["optimizer.lr=0.01,0.1,1.0", "train.seed=0,1", "dataset=digits"]
    axes, jobs = sweep_axes(params, command), job_overrides(params, command)
    cells = CellHalving((1,)).cells(axes)
    assert len(cells) == 4 and cells[0].name == "model.activation=relu model.hidden_neurons=32"
    for cell in cells:
        assert list(cell.competitors) == ["optimizer.lr=0.01", "optimizer.lr=0.1", "optimizer.lr=1.0"]
        for competitor, members in cell.competitors.items():
            assert len(members) == 2  # its two seeds
            for job in members:  # the indices are job_overrides' own
                assert competitor in jobs[job] and all(part in jobs[job] for part in cell.name.split())
    assert sorted(j for c in cells for m in c.competitors.values() for j in m) == list(range(len(jobs)))


def test_ranking_means_the_seeds_puts_failures_last_and_breaks_ties_by_grid_order():
    cell = Cell("c", {"a": [0, 1], "b": [2, 3], "c": [4, 5], "d": [6, 7]})
    scores = {0: 0.25, 1: 0.75, 2: 0.5, 3: 0.5, 4: 0.375, 5: 0.625, 6: 0.99, 7: math.nan}
    ranked = rank(cell, ["a", "b", "c", "d"], scores, maximize=True, kept=2)
    assert [r.competitor for r in ranked] == ["a", "b", "c", "d"]  # a, b, c tie at 0.5; d failed once
    assert [r.goes_on for r in ranked] == [True, True, False, False] and math.isnan(ranked[-1].score)
    lowest = rank(cell, ["a", "b", "c"], {**scores, 1: 0.125}, maximize=False, kept=1)
    assert lowest[0].competitor == "a" and lowest[0].score == pytest.approx(0.1875)
    assert rank(cell, ["b", "c"], scores, maximize=True, kept=1)[0].place == 1


def test_pre_flight_checks_the_settings_against_the_grid():
    halving = CellHalving((1, 3))
    axes = {
        "model.activation": ["model.activation=relu", "model.activation=tanh"],
        "optimizer.lr": ["optimizer.lr=0.1"],
    }

    def job(**train):
        return SimpleNamespace(
            train=SimpleNamespace(**{"val_fraction": 0.1, "early_stopping_patience": None, "epochs": 5, **train})
        )

    with pytest.raises(InputError, match="optimizer.lr is not swept"):
        halving.check(axes, [job()])
    axes["optimizer.lr"] = ["optimizer.lr=0.1", "optimizer.lr=0.3"]
    halving.check(axes, [job()])
    for train, message in (
        ({"val_fraction": 0}, "val_fraction must be above 0"),
        ({"early_stopping_patience": 2}, "cannot be combined"),
        ({"epochs": 3}, "below train.epochs"),
    ):
        with pytest.raises(InputError, match=message):
            halving.check(axes, [job(), job(**train)])


# ---- a real sweep ----

# README's command, narrowed: per cell (activation x width 32) a hopeless, a slow and a good lr, two
# seeds each; 4 epochs with rungs at 1 and 2 keep 2 of 3 lrs, then 1 of 2.
GRID = (
    "-m",
    "+experiment=lr_study",
    "train.seed=0,1",
    "hydra.sweeper.halving.rungs=[1,2]",
    "dataset=digits",
    *FAST,
    "train.epochs=4",
    "model.activation=relu,sigmoid",
    "model.hidden_neurons=32",
    "optimizer.lr=0.0001,0.03,0.3",
)


def _history(home, run_id, metric="val_accuracy"):
    with sqlite3.connect(home / "mlflow.db") as db:
        return db.execute(
            "select step, value from metrics where key=? and run_uuid=? order by step", (metric, run_id)
        ).fetchall()


@pytest.mark.slow
@pytest.mark.readme("python -m pipeline -m +experiment=lr_study train.seed=0,1,2 'hydra.sweeper.halving.rungs=[1,3]'")
def test_early_stopping_keeps_every_cell_resumes_and_continues_exactly(tmp_path):
    by_hand = run_pipeline(tmp_path, "dataset=digits", "sweep.pause_at=2")  # the sweeper's key, not the user's
    assert by_hand.returncode == 2 and by_hand.stderr.strip().splitlines()[-1].startswith("error: sweep.pause_at is")
    assert not (tmp_path / "mlflow.db").exists()

    # Stopped once the first rung's comparison is made: the paused runs wait, none is left RUNNING.
    command, seen = start_pipeline(tmp_path, *GRID), []
    try:
        for line in command.stdout:
            seen.append(line)
            if "Early stopping at epoch 1" in line:
                command.send_signal(signal.SIGTERM)  # the round that continues the survivors is starting
                break
        command.wait(timeout=120)
    finally:
        stop(command)
    assert "8 runs go on, 4 stopped" in seen[-1], "".join(seen[-20:])
    first = jobs_of(mlflow_runs(tmp_path))
    assert "RUNNING" not in set(first["status"]) and (first["tags.pruned"] == "1").sum() == 4
    paused = set(first.loc[first["status"] == "SCHEDULED", "run_id"])
    assert paused

    # The same command: the stopped runs count as done, the paused ones are compared as they are and
    # continued from their checkpoints (a run stopped while being continued trains again).
    result = run_pipeline(tmp_path, *GRID)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("skipped: finished") == 4
    assert "Early stopping at epoch 1: 2 cells compared on val accuracy; 8 runs go on, 0 stopped" in result.stdout
    assert "Early stopping at epoch 2: 2 cells compared on val accuracy; 4 runs go on, 4 stopped" in result.stdout
    runs = mlflow_runs(tmp_path)
    jobs = jobs_of(runs)
    assert "params.sweep.pause_at" not in jobs and not ({"SCHEDULED", "RUNNING"} & set(jobs["status"]))
    jobs = jobs[jobs["status"] == "FINISHED"]
    assert len(jobs) == 12 == jobs["tags.fnn_sweep.config_hash"].nunique()  # one finished run per config
    jobs = jobs.assign(
        lr=jobs["params.optimizer.lr"].astype(float),
        activation=jobs["params.model.activation"],
        pruned=jobs["tags.pruned"],
    )
    latest = runs.loc[runs["tags.fnn_sweep.role"] == "sweep"].sort_values("start_time")["run_id"].iloc[-1]
    for _, cell in jobs.groupby("activation"):  # every cell keeps one lr, with both its seeds, to the end
        finished = cell[cell["pruned"].isna()]
        assert len(finished) == 2 and finished["lr"].nunique() == 1 and set(finished["metrics.epochs_run"]) == {4}
        assert set(finished["tags.mlflow.parentRunId"]) == {latest}  # nested under the sweep that finished them
        first_rung = cell[cell["pruned"] == "1"]  # stopped at the first rung: the lowest mean val accuracy there
        assert first_rung["lr"].nunique() == 1 and len(first_rung) == 2
        at_rung = {lr: sum(_history(tmp_path, r)[0][1] for r in g["run_id"]) / 2 for lr, g in cell.groupby("lr")}
        assert at_rung[first_rung["lr"].iloc[0]] == min(at_rung.values())
        assert "ranked 3 of 3 in its cell (model.activation=" in first_rung["tags.stop_reason"].iloc[0]
    for _, run in jobs.iterrows():  # a stopped run keeps each epoch it ran, and its test score
        epochs = 4 if pd.isna(run["pruned"]) else int(run["pruned"])
        assert [step for step, _ in _history(tmp_path, run["run_id"])] == list(range(epochs))
        assert run["metrics.test_accuracy"] > 0 and run["metrics.epochs_run"] == epochs

    # A run paused by one command and continued by the next trained exactly as an uninterrupted one.
    continued = jobs[jobs["pruned"].isna() & jobs["run_id"].isin(paused)]
    assert len(continued), "a paused run was continued"
    best = continued.iloc[0]
    alone = tmp_path / "alone"
    single = run_pipeline(
        alone,
        *GRID[1:2],
        "dataset=digits",
        *FAST,
        "train.epochs=4",
        f"model.activation={best['activation']}",
        "model.hidden_neurons=32",
        f"optimizer.lr={best['params.optimizer.lr']}",
        f"train.seed={best['params.train.seed']}",
    )
    assert single.returncode == 0, single.stderr[-2000:]
    [(alone_id,)] = sqlite3.connect(alone / "mlflow.db").execute("select run_uuid from runs").fetchall()
    assert _history(alone, alone_id) == _history(tmp_path, best["run_id"])
    assert _history(alone, alone_id, "train_loss") == _history(tmp_path, best["run_id"], "train_loss")

    # The report: tables of the runs that trained to the end, no cell called missing, what was saved.
    report = (tmp_path / "reports" / "latest" / "report.md").read_text()
    assert "## Missing cells (no finished run): 0" in report
    assert "at the best learning rate per cell" in report
    stopped = pd.read_csv(tmp_path / "reports" / "latest" / "pruned_runs.csv")
    assert sorted(stopped["stopped_after_epoch"]) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert "## Early stopping: 8 of 12 runs stopped within their cells" in report
    assert "28 of 48 epochs trained (42% not trained)" in report

    # sweep.rerun=true trains every job again, and its survivors are continued, never started over.
    rerun = run_pipeline(tmp_path, *GRID, "sweep.rerun=true")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    jobs = jobs_of(mlflow_runs(tmp_path))
    last = jobs[~jobs["tags.mlflow.parentRunId"].isin(set(runs["run_id"]))]
    assert len(last) == 12 == last["tags.fnn_sweep.config_hash"].nunique()
    assert sorted(last["tags.pruned"].fillna("4")) == ["1"] * 4 + ["2"] * 4 + ["4"] * 4


def test_a_sweep_job_whose_config_is_bad_is_its_failed_run_not_a_traceback(tmp_path, monkeypatch):
    """The job's own validation (what a sampling sweeper or another machine's job may meet) records a
    FAILED run, the early stopping's lookups included: no attribute of a config that never validated."""
    import mlflow
    from hydra import compose, initialize_config_dir

    from helpers import REPO
    from pipeline.config import register_configs
    from pipeline.job.context import JobContext
    from pipeline.job.task import _sweep_job

    register_configs()
    monkeypatch.setenv("FNN_SWEEP_HOME", str(tmp_path))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["dataset=digits", "model.hidden_neurons=0", "sweep.pause_at=1", f"mlflow.tracking_uri={uri}"],
        )
    result = _sweep_job(cfg, JobContext(sweep_dir=str(tmp_path / "sweep"), number=0))
    assert math.isnan(result)
    [run] = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("fnn-sweep").experiment_id]
    )
    assert run.info.status == "FAILED" and "hidden_neurons" in run.data.tags["failure_reason"]


def test_progress_counts_the_runs_paused_at_a_rung_until_they_end(tmp_path):
    """The sweep line and the bar say how many runs wait at a rung; a paused run is not done until it
    is continued to its end or stopped."""
    import mlflow

    from pipeline.sweep.progress import SweepProgress, sweep_line
    from pipeline.tracking import layout as run_layout
    from pipeline.tracking import runs as tracked
    from pipeline.tracking import store

    uri = new_sqlite_store(tmp_path / "mlflow.db")
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("fnn-sweep")
    tracking = store.open_store(uri)
    parent = tracked.start_sweep(tracking, experiment_id, "sweep-x", str(tmp_path), 3, 2, "3 jobs")
    tags = {run_layout.TAG_PARENT: parent, run_layout.TAG_ROLE: run_layout.ROLE_JOB}
    paused = [client.create_run(experiment_id, tags=tags).info.run_id for _ in range(2)]
    for run_id in paused:
        client.set_terminated(run_id, run_layout.PAUSED)
    client.create_run(experiment_id, tags=tags)  # running
    progress = SweepProgress(tracking, parent, 3)
    assert progress.poll() == (0, 0, 1, 2)
    tracked.prune_paused(tracking, paused[0], 1, "stopped after epoch 1")
    assert progress.poll() == (1, 0, 1, 1)
    assert (
        sweep_line(1, 0, 1, 1, 3, 10.0)
        == "sweep: 1/3 done, 1 paused at a rung, 1 running, 10 s elapsed, about 20 s left"
    )
