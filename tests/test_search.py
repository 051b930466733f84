"""hydra/sweeper=optuna: the search space, bad settings, a real TPE study, its continuation, pruning."""

import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import urllib.request

import pytest

from helpers import FAST, REPO, free_port, jobs_of, mlflow_runs, run_pipeline, start_pipeline, stop, wait_for_http
from pipeline.constraints import ConfigError
from pipeline.data import DATASETS
from pipeline.data.registry import task_of
from pipeline.sweep import search
from pipeline.tracking import study

optuna = pytest.importorskip("optuna")

DIGITS = ("dataset=digits", "hydra/sweeper=optuna", *FAST)


# ---- the space, in Hydra's sweep syntax ----


def test_each_sweep_form_becomes_its_distribution():
    space = search.parse_space(
        {"model.activation": "relu,tanh"},
        [
            "optimizer.lr=tag(log, interval(1e-3, 1))",
            "model.hidden_neurons=interval(16, 512)",
            "train.val_fraction=interval(0.1, 0.3)",
            "model.hidden_layers=range(1,4)",
            "train.batch_size=range(128, 16, -16)",
            "optimizer=choice(sgd,adam)",
            "train.epochs=3",
        ],
    )
    d = {dim.key: dim.distribution for dim in space.dimensions}
    assert d["optimizer.lr"] == optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)
    assert d["model.hidden_neurons"] == optuna.distributions.IntDistribution(16, 512)  # integers stay integers
    assert d["train.val_fraction"] == optuna.distributions.FloatDistribution(0.1, 0.3)
    assert d["model.hidden_layers"] == optuna.distributions.IntDistribution(1, 3)  # Hydra's stop is exclusive
    assert d["train.batch_size"] == optuna.distributions.IntDistribution(32, 128, step=16)
    assert d["optimizer"].choices == ("sgd", "adam") and d["model.activation"].choices == ("relu", "tanh")
    assert space.fixed == ("train.epochs=3",)
    overrides = space.trial_overrides(
        {
            "model.activation": "tanh",
            "optimizer.lr": 0.0123,
            "model.hidden_neurons": 17,
            "train.val_fraction": 0.2,
            "model.hidden_layers": 2,
            "train.batch_size": 48,
            "optimizer": "adam",
        }
    )
    assert overrides[0] == "train.epochs=3"
    assert {"model.activation=tanh", "optimizer.lr=0.0123", "model.hidden_neurons=17", "optimizer=adam"} <= set(
        overrides
    )


def test_the_command_line_replaces_a_configured_dimension_and_a_plain_value_fixes_it():
    space = search.parse_space(
        {"model.activation": "relu,tanh", "optimizer.lr": "interval(0.01, 0.1)"}, ["model.activation=relu"]
    )
    assert [d.key for d in space.dimensions] == ["optimizer.lr"] and space.fixed == ("model.activation=relu",)


def test_pre_flight_validates_every_extreme_of_every_dimension():
    space = search.parse_space(None, ["optimizer.lr=interval(0.01, 0.5)", "model.activation=relu,tanh,sigmoid"])
    jobs = {tuple(sorted(job)) for job in space.check_jobs()}
    values = {value for job in jobs for value in job}
    assert {"optimizer.lr=0.01", "optimizer.lr=0.5", "model.activation=tanh", "model.activation=sigmoid"} <= values
    assert len(jobs) == 4  # the first corner, then each other extreme once: not the product


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optimizer.lr=interval(0.5, 0.1)"], "low end 0.5 is above its high end 0.1"),
        (["model.hidden_layers=range(3,3)"], "is empty"),
        (["optimizer.lr=tag(log, interval(0.0, 1.0))"], "log"),
        (["optimizer.lr=interval(0.1,"], "optimizer.lr=interval(0.1,"),
        (["optimizer.lr=0.1"], "the search space is empty"),
    ],
)
def test_a_bad_space_is_one_line(overrides, message):
    with pytest.raises(ConfigError, match=".*") as caught:
        search.parse_space(None, overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_samplers_pruners_and_settings_are_one_line():
    space = search.parse_space(None, ["optimizer.lr=interval(0.01, 0.1)"])
    with pytest.raises(ConfigError, match="sampler=annealing: must be one of tpe"):
        search.sampler("annealing", None, {}, space)
    with pytest.raises(ConfigError, match="sampler_settings for tpe"):
        search.sampler("tpe", None, {"n_startup": 3}, space)
    with pytest.raises(ConfigError, match="grid needs finite choices"):
        search.sampler("grid", None, {}, space)
    with pytest.raises(ConfigError, match="pruner=asha: must be one of none"):
        study.pruner("asha", {})
    assert isinstance(study.pruner("median", {"n_warmup_steps": 2}), optuna.pruners.MedianPruner)


def test_the_plan_checks_every_setting(tmp_path):
    from types import SimpleNamespace

    app = SimpleNamespace(
        mlflow=SimpleNamespace(experiment_name="exp", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"),
        dataset=SimpleNamespace(name="diabetes"),
        train=SimpleNamespace(val_fraction=0.1),
    )
    space = search.parse_space(None, ["optimizer.lr=interval(0.01, 0.1)"])
    good = {"sampler": "tpe", "n_trials": 5, "seed": 3, "pruner": "median"}
    plan = search.plan(good, app, space)
    assert (plan.direction, plan.n_trials, plan.storage) == ("minimize", 5, f"sqlite:///{tmp_path}/optuna.db")
    for bad, message in [
        ({"n_trials": 0}, "n_trials=0: must be an integer >= 1"),
        ({"n_trials": 2.5}, "n_trials=2.5"),
        ({"n_jobs": 0}, "n_jobs=0"),
        ({"seed": -1}, "seed=-1"),
        ({"sampler": "annealing"}, "sampler=annealing: must be one of tpe"),
        ({"direction": "up"}, "direction=up: must be one of auto"),
        ({"pruner_settings": {"warmup": 1}}, "pruner_settings for median"),
        # from a config file: the command line's credentials are taken out, a file's would be stored
        (
            {"storage": "postgresql://fnn:hunter2@127.0.0.1/optuna"},
            "storage=postgresql://fnn:***@127.0.0.1/optuna: holds",
        ),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            search.plan({**good, **bad}, app, space)
    assert not (tmp_path / "optuna.db").exists()  # planning creates nothing
    # A study keeps the direction it was made with: a search of the other direction is refused.
    assert search.open_study(plan).direction.name == "MINIMIZE"
    classifying = SimpleNamespace(**{**vars(app), "dataset": SimpleNamespace(name="digits")})
    with pytest.raises(ConfigError, match="was made to minimize, this search would maximize"):
        search.open_study(search.plan(good, classifying, space))


def test_the_study_is_named_by_its_space_and_stored_beside_mlflow(tmp_path):
    a = search.parse_space(None, ["optimizer.lr=interval(0.01, 0.1)", "train.epochs=2"])
    b = search.parse_space(None, ["optimizer.lr=interval(0.01, 0.2)", "train.epochs=2"])
    assert search.study_name(None, "exp", a) == search.study_name(None, "exp", a) != search.study_name(None, "exp", b)
    assert search.study_name("mine", "exp", a) == "exp:mine"
    assert study.storage_url(None, f"sqlite:///{tmp_path}/mlflow.db", "/x") == f"sqlite:///{tmp_path}/optuna.db"
    assert study.storage_url(None, "http://127.0.0.1:5000", str(tmp_path)) == f"sqlite:///{tmp_path}/optuna.db"


def test_the_direction_follows_the_task_the_registry_knows_without_loading():
    assert search.direction("auto", task_of("digits")) == "maximize"
    assert search.direction("auto", task_of("diabetes")) == "minimize"
    loaded = {name: DATASETS[name]({}, 0, None)[0] for name in ("digits", "iris", "xor", "diabetes")}
    assert all(task_of(name) == task for name, task in loaded.items())


# ---- the command ----


@pytest.mark.slow
def test_bad_search_input_is_one_line_and_exit_2_before_any_run(tmp_path):
    cases = [
        (["model.hidden_neurons=interval(0, 64)"], "model.hidden_neurons"),  # a sampled width of 0
        (["optimizer.lr=interval(0.01, 0.1)", "hydra.sweeper.pruner=median", "train.val_fraction=0"], "val_fraction"),
    ]  # the other settings: test_the_plan_checks_every_setting
    for overrides, message in cases:
        result = run_pipeline(tmp_path, "-m", *DIGITS, "model.activation=relu", "model.hidden_neurons=8", *overrides)
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert result.returncode == 2, (overrides, result.stderr[-2000:])
        assert message in lines[-1] and "Traceback" not in result.stderr, (overrides, lines[-3:])
    assert not (tmp_path / "mlflow.db").exists()  # nothing recorded


def _trials(home, name=None):
    storage = f"sqlite:///{home}/optuna.db"
    [summary] = [s for s in optuna.get_all_study_summaries(storage) if name is None or s.study_name == name]
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


@pytest.mark.slow
def test_a_tpe_study_on_two_workers_is_continued_by_the_same_command(tmp_path):
    command = (
        "-m",
        *DIGITS,
        "train.epochs=2",
        "model.activation=relu",
        "optimizer.lr=tag(log, interval(0.01, 0.5))",
        "model.hidden_neurons=interval(8, 48)",
        "hydra.sweeper.seed=0",
    )
    first = run_pipeline(tmp_path, *command, "hydra.sweeper.n_trials=4")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Best trial" in first.stdout
    trials = _trials(tmp_path)
    jobs = jobs_of(mlflow_runs(tmp_path)).set_index("run_id")
    assert len(trials) == 4 == len(jobs) and {t.state.name for t in trials} == {"COMPLETE"}
    assert jobs["tags.mlflow.parentRunId"].nunique() == 1 and len(set(jobs["tags.pid"])) == 2  # two workers
    for trial in trials:  # one child run per trial; Optuna and MLflow agree on its params and value
        run = jobs.loc[trial.user_attrs["mlflow_run_id"]]
        assert run["tags.fnn_sweep.trial"] == str(trial.number) and run["tags.fnn_sweep.study"].startswith("fnn-sweep:")
        assert int(run["params.model.hidden_neurons"]) == trial.params["model.hidden_neurons"]
        assert isinstance(trial.params["model.hidden_neurons"], int) and 8 <= trial.params["model.hidden_neurons"] <= 48
        assert math.isclose(float(run["params.optimizer.lr"]), trial.params["optimizer.lr"], rel_tol=1e-12)
        assert math.isclose(run["metrics.val_accuracy"], trial.value, rel_tol=1e-12)
    assert "params.sweep.trial" not in jobs  # the trial's identity is a tag, not a param

    again = run_pipeline(tmp_path, *command, "hydra.sweeper.n_trials=6")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 of 6 trials done, 2 to run" in again.stdout
    trials = _trials(tmp_path)
    assert [t.number for t in trials] == list(range(6)) and all(t.state.name == "COMPLETE" for t in trials)
    # The sampler's seed moved on: the continuation asked for new points, not the first ones again.
    assert {tuple(t.params.items()) for t in trials[4:]}.isdisjoint({tuple(t.params.items()) for t in trials[:4]})

    done = run_pipeline(tmp_path, *command, "hydra.sweeper.n_trials=6")
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Nothing to run" in output and "report not written" not in output
    assert len(_trials(tmp_path)) == 6


@pytest.mark.slow
@pytest.mark.readme('pip install -e ".[dashboard]" && optuna-dashboard sqlite:///optuna.db')
def test_hopeless_trials_are_pruned_from_the_workers_and_the_best_never(tmp_path):
    # Three learning rates that cannot learn digits in a few epochs and one that can, two seeds each.
    # Once two trials completed, the median pruner stops a trial below their median at its second
    # epoch: a hopeless one whenever a good one completed; a good one never, since at most one other
    # good trial can have completed before it.
    result = run_pipeline(
        tmp_path,
        "-m",
        *DIGITS,
        "train.epochs=6",
        "model.activation=relu",
        "model.hidden_neurons=32",
        "optimizer.lr=choice(0.00001,0.00002,0.00003,0.3)",
        "train.seed=range(0,2)",
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.seed=0",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.pruner=median",
        "+hydra.sweeper.pruner_settings={n_startup_trials:2,n_warmup_steps:1}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = _trials(tmp_path)
    jobs = jobs_of(mlflow_runs(tmp_path)).set_index("run_id")
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned and all(t.params["optimizer.lr"] < 1e-4 for t in pruned)
    assert all(t.state.name == "COMPLETE" for t in trials if t.params["optimizer.lr"] > 0.1)
    for trial in pruned:  # reported by the job's process, told pruned there, its run FINISHED with its curve
        run = jobs.loc[trial.user_attrs["mlflow_run_id"]]
        assert trial.intermediate_values and run["status"] == "FINISHED"
        assert int(run["tags.pruned"]) == len(trial.intermediate_values) < 6 == int(run["params.train.epochs"])
        assert run["tags.pid"] != str(os.getpid())
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # the pruned run kept each epoch it ran
        [(points,)] = db.execute(
            "select count(*) from metrics where key='val_accuracy' and run_uuid=?",
            (pruned[0].user_attrs["mlflow_run_id"],),
        ).fetchall()
    assert points == len(pruned[0].intermediate_values)
    assert "pruned after epoch" in result.stdout
    # The report: table cells leave the pruned runs out; its search section lists them and what they saved.
    report = (tmp_path / "reports" / "latest" / "report.md").read_text()
    assert f"runs MLflow holds ({len(trials) - len(pruned)} runs" in report
    saved = sum(6 - len(t.intermediate_values) for t in pruned)
    assert f"## Search: {len(trials)} trials of " in report
    assert f"### Pruned trials: {len(pruned)}, {saved} epochs not trained" in report
    assert (tmp_path / "reports" / "latest" / "optimization_history.png").is_file()
    assert (tmp_path / "reports" / "latest" / "param_importances.png").is_file()

    # The optional viewer (the test extra installs it): README's command, on a free port of 127.0.0.1.
    dashboard = shutil.which("optuna-dashboard")
    if dashboard is None:
        pytest.skip("optuna-dashboard is not installed: pip install -e '.[dashboard]'")
    port = free_port()
    server = subprocess.Popen(
        [dashboard, "sqlite:///optuna.db", "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/studies", server, seconds=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as response:
            [summary] = json.load(response)["study_summaries"]
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", timeout=10
        ) as response:
            shown = json.load(response)["trials"]
        assert summary["study_name"].startswith("fnn-sweep:search-") and len(shown) == len(trials)
        assert sum(t["state"] == "Pruned" for t in shown) == len(pruned)
    finally:
        stop(server)


def test_the_sweeper_is_registered_where_hydra_looks():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    from pipeline.__main__ import register_sweeper

    register_sweeper()
    names = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Sweeper)}
    assert "hydra_plugins.fnn_sweep.optuna_sweeper.OptunaSweeper" in names
    assert (REPO / "conf" / "hydra" / "sweeper" / "optuna.yaml").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_search_fails_its_running_round_and_the_next_command_makes_it_up(tmp_path, stop):
    space = ("-m", *DIGITS, "model.activation=relu", "model.hidden_neurons=16", "optimizer.lr=interval(0.05, 0.5)")
    named = ("hydra.sweeper.study_name=stopped", "hydra.sweeper.n_trials=2", "verbose=true")
    process = start_pipeline(tmp_path, *space, *named, "train.epochs=1000000")
    try:
        training = set()
        for line in process.stdout:  # both trials of the round are training
            if "epoch 2/" in line:
                training.add(line.split("]")[0])
            if len(training) == 2:
                break
        os.killpg(process.pid, stop)  # SIGKILL: the whole group, workers too, with no chance to tidy up
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode in (128 + stop, -stop)
    if stop == signal.SIGTERM:  # the command failed its round and ended its runs KILLED
        assert [t.state.name for t in _trials(tmp_path)] == ["FAIL", "FAIL"]
        assert set(jobs_of(mlflow_runs(tmp_path))["status"]) == {"KILLED"}
    else:  # left RUNNING on both sides, for the next command to find
        assert [t.state.name for t in _trials(tmp_path)] == ["RUNNING", "RUNNING"]
        assert set(jobs_of(mlflow_runs(tmp_path))["status"]) == {"RUNNING"}

    again = run_pipeline(tmp_path, *space, *named, "train.epochs=2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 of 2 trials done, 2 to run" in again.stdout
    assert [t.state.name for t in _trials(tmp_path)] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    jobs = jobs_of(mlflow_runs(tmp_path))
    assert sorted(jobs["status"]) == ["FINISHED", "FINISHED", "KILLED", "KILLED"]  # the reaper ended the dead ones
