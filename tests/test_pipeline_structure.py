"""The architecture's promises: one module names MLflow keys, no sweep state in the environment,
public APIs only, one failure policy deciding exit statuses."""

import re
import sys

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from mlflow import MlflowClient

from helpers import REPO, new_sqlite_store
from pipeline.config import ConfigError, register_configs
from pipeline.data import DataError
from pipeline.runtime import failure, lifecycle
from pipeline.tracking import layout
from pipeline.tracking.store import open_store

register_configs()
SOURCES = sorted((REPO / "pipeline").rglob("*.py"))
LAYOUT = REPO / "pipeline" / "tracking" / "layout.py"
# Settings a user gives, never sweep state; HYDRA_FULL_ERROR makes Hydra raise composition errors to us.
ALLOWED_ENVIRONMENT = {
    "FNN_SWEEP_HOME",
    "FNN_SWEEP_DATA_DIR",
    "XDG_CACHE_HOME",
    "HYDRA_FULL_ERROR",
    # MLflow's own output settings (pipeline/runtime/lifecycle.py)
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
    # Credentials, never in the config (pipeline/credentials.py): the environment is their place.
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "FNN_SWEEP_TRACKING_URIS",
    # MLflow's own, the defaults of mlflow.tracking_uri and mlflow.experiment_name (pipeline/config.py).
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
}


def _mlflow_names():
    """Names only an MLflow run has: tags, artifacts, metrics that are not also fnn_core history keys."""
    names = {
        value for key, value in vars(layout).items() if key.startswith(("TAG_", "ARTIFACT_")) and isinstance(value, str)
    }
    names |= {metric for key, metric in layout.EPOCH_METRICS.items() if metric != key}
    names |= {
        layout.TRAINING_TIME,
        layout.EPOCHS_RUN,
        layout.TEST_ACCURACY,
        layout.TEST_MSE,
        layout.SWEEP_PLANNED,
        layout.CHOICE_TAG_PREFIX,
    }
    names -= set(layout.TAG_COLUMNS)  # the tidy frame's column names: how readers name what they read
    return {name for name in names if "_" in name or "." in name}  # "dataset", "model": too plain to be only MLflow's


def test_only_the_layout_module_spells_mlflow_keys():
    quoted = re.compile(r"""["'](%s)["'`]""" % "|".join(map(re.escape, _mlflow_names())))
    prefixed = re.compile(r"""["'`](params|metrics|tags|attributes)\.""")
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in SOURCES
        if path != LAYOUT
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if quoted.search(line) or prefixed.search(line)
    ]
    assert offenders == []


def test_no_sweep_state_in_the_environment_and_no_hydra_internals():
    environment = re.compile(r"os\.environ(?:\.get|\.setdefault|\.pop)?\(?\[?\s*[\"']([A-Z_]+)[\"']")
    for path in SOURCES:
        text = path.read_text()
        assert "_internal" not in text, path
        used = set(environment.findall(text))
        assert used <= ALLOWED_ENVIRONMENT, (path, used - ALLOWED_ENVIRONMENT)
        copies = text.count("{**os.environ")  # the environment handed to a child process, as it is
        assert text.count("os.environ") == len(environment.findall(text)) + copies, f"{path}: a computed key"


COMPAT = REPO / "pipeline" / "runtime" / "compat.py"
DEPENDENCIES = (
    r"(?:mlflow|joblib|loky|hydra|omegaconf|sqlalchemy|alembic|sklearn|pandas|numpy|matplotlib|pooch|"
    r"multiprocessing|forkserver|threadpoolctl|submitit)"
)
PRIVATE_USES = [
    re.compile(rf"from {DEPENDENCIES}[\w.]* import .*\b_[A-Za-z]"),  # from dep.x import _private
    re.compile(rf"\b{DEPENDENCIES}(?:\.\w+)*\._[A-Za-z]\w*"),  # dep.x._private
    re.compile(r"(?:from|import) mlflow\.(?:utils|store)\b"),  # MLflow's internals, public or not
    re.compile(r"(?:from|import) joblib\.externals\b"),  # joblib's vendored loky
]


def test_the_store_is_one_explicit_handle():
    """MLflow's process-global URI is set in one place; every reader and writer gets the Store handle."""
    global_uri = re.compile(r"mlflow\.set_tracking_uri\(|MlflowClient\(\)")  # the latter reads the global URI
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in SOURCES
        if path != REPO / "pipeline" / "tracking" / "store.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if global_uri.search(line)
    ]
    assert offenders == []


def test_private_apis_of_dependencies_are_used_only_in_compat():
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in SOURCES
        if path != COMPAT
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if not line.lstrip().startswith("#") and any(p.search(line) for p in PRIVATE_USES)
    ]
    assert offenders == [], "use pipeline/runtime/compat.py for these"


def test_read_runs_gives_a_typed_tidy_frame(tmp_path):
    uri = new_sqlite_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    experiment = client.create_experiment("e")
    parent = client.create_run(experiment, tags={layout.TAG_ROLE: layout.ROLE_SWEEP, layout.TAG_SWEEP_ID: "s1"})
    for width, lr in ((32, 0.1), (256, 0.01)):
        run = client.create_run(
            experiment,
            run_name=f"relu-{width}",
            tags={layout.TAG_ROLE: layout.ROLE_JOB, layout.TAG_PARENT: parent.info.run_id, layout.TAG_SWEEP_ID: "s1"},
        )
        config = {
            "model": {"activation": "relu", "hidden_neurons": width},
            "optimizer": {"lr": lr},
            "train": {"early_stopping_patience": None},
            "quiet": True,
        }
        for key, value in layout.job_params(config).items():
            client.log_param(run.info.run_id, key, value)
        client.log_metric(run.info.run_id, layout.TEST_ACCURACY, 0.9)
        client.set_terminated(run.info.run_id)
    runs = layout.read_runs(open_store(uri), [experiment])

    assert list(runs["role"]) == ["sweep", "job", "job"]  # oldest first
    jobs = runs[runs["role"] == layout.ROLE_JOB]
    assert list(jobs["run_name"]) == ["relu-32", "relu-256"]
    assert set(jobs["parent_run_id"]) == {parent.info.run_id} and runs["parent_run_id"].iloc[0] is None
    assert list(jobs[layout.HIDDEN_NEURONS]) == [32, 256] and pd.api.types.is_integer_dtype(runs[layout.HIDDEN_NEURONS])
    assert list(jobs[layout.LR]) == [0.1, 0.01] and runs[layout.LR].dtype == float
    assert list(jobs[layout.ACTIVATION]) == ["relu", "relu"]
    assert jobs["train.early_stopping_patience"].isna().all()  # "None" is missing, not a string
    assert list(jobs["quiet"]) == ["True", "True"]  # booleans are not numbers
    assert list(jobs[layout.TEST_ACCURACY]) == [0.9, 0.9]
    assert not set(layout.PARAM_ALIASES) & set(runs.columns)  # aliases are for the UI only
    assert "model.activation" in layout.param_columns(runs) and layout.TEST_ACCURACY not in layout.param_columns(runs)


def _composition_error(*overrides):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        with pytest.raises(HydraException) as err:
            compose("config", overrides=list(overrides))
    return err.value


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["optimizer.beta1=0.5"], "Key 'beta1' not in 'SGDConfig'; the valid keys: python -m pipeline --cfg job"),
        (["optimizer=adam", "optimizer.momentum=0.9"], "Key 'momentum' not in 'AdamConfig'"),
        (["model.activaton=relu"], "Key 'activaton' not in 'ModelConfig'"),
        (["dataset=cifar"], "Could not find 'dataset/cifar'; choose one of: california_housing, diabetes, digits,"),
    ],
)
def test_composition_errors_become_one_line_with_what_to_fix(overrides, needle):
    error = _composition_error(*overrides)
    line = failure.error_line(error)
    assert needle in line and "\n" not in line and "schema" not in line
    assert failure.exit_status(error) == failure.EXIT_INPUT


def _exit_of(main, capsys):
    with pytest.raises(SystemExit) as exit_info:
        lifecycle.run(main)
    return exit_info.value.code, capsys.readouterr().err


def _raise(error):
    def main():
        try:
            raise error
        except Exception as exc:
            failure.abort(exc)

    return main


def test_the_entry_point_decides_every_exit_status(capsys):
    assert _exit_of(lambda: None, capsys) == (0, "")
    for error in (ConfigError("model.hidden_neurons=0 is not valid"), DataError("dataset.dir=/x lacks a file")):
        assert _exit_of(_raise(error), capsys) == (2, f"error: {error}\n")
    assert _exit_of(_raise(failure.JobsFailed(2, 12)), capsys) == (
        1,
        "error: 2 of 12 jobs failed (reasons above and in MLflow)\n",
    )
    code, stderr = _exit_of(_raise(KeyError("bug")), capsys)  # a bug: its traceback, then one line
    assert code == 1 and stderr.startswith("Traceback") and stderr.endswith("error: KeyError: 'bug'\n")

    def hydra_fails():
        compose_error = _composition_error("model.activaton=relu")
        raise compose_error

    code, stderr = _exit_of(hydra_fails, capsys)
    assert code == 2 and stderr.count("\n") == 1 and "activaton" in stderr


def test_an_error_of_hydras_own_set_up_is_one_line_and_one_of_ours_a_traceback(capsys, monkeypatch):
    """Before the command's own code runs, Hydra applies its settings (the run's directory, logging):
    their errors are bad input. After it, the same types are ours: a traceback."""
    monkeypatch.setattr(lifecycle, "_app_started", False)

    def logging_fails():
        raise ValueError("Unable to configure root logger") from ValueError("Unknown level: 'BOGUS'")

    def directory_fails():
        raise FileNotFoundError(2, "No such file or directory")

    assert _exit_of(logging_fails, capsys) == (
        2,
        "error: Hydra could not set up the command: ValueError: Unable to configure root logger: "
        "Unknown level: 'BOGUS'; check the hydra.* overrides\n",
    )
    code, stderr = _exit_of(directory_fails, capsys)
    assert code == 2 and stderr.count("\n") == 1 and "FileNotFoundError" in stderr
    for fails in (logging_fails, directory_fails):

        def ours_fails(fails=fails):
            lifecycle.app_started()
            fails()

        with pytest.raises((ValueError, OSError)):  # out of the entry point: Python's traceback, exit 1
            lifecycle.run(ours_fails)


def test_every_entry_point_says_when_its_own_code_starts():
    """Each Hydra app run through ``lifecycle.run`` marks the end of Hydra's set-up first thing."""
    import ast

    entry_points = [p for p in (REPO / "pipeline").rglob("*.py") if "lifecycle.run(" in p.read_text()]
    assert len(entry_points) == 3  # the training command, the report, the reaper
    for path in entry_points:
        [app] = [
            n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef) and n.name == "hydra_app"
        ]
        assert ast.unparse(app.body[0]) == "lifecycle.app_started()", path


def test_signals_pass_through_the_entry_point():
    with pytest.raises(SystemExit) as exit_info:
        lifecycle.run(lambda: sys.exit(143))
    assert exit_info.value.code == 143


def test_a_directory_is_probed_by_making_it_and_nothing_is_left(tmp_path):
    from pipeline.runtime.folders import unmakeable

    (tmp_path / "file").write_text("")
    assert unmakeable(tmp_path / "file") == "it is a file"
    assert unmakeable(tmp_path / "file" / "below") is not None
    assert unmakeable("/proc/no-such-dir/x") == "No such file or directory"  # os.access says yes to root
    assert unmakeable(tmp_path / "a" / "b") is None and not (tmp_path / "a").exists()
    assert unmakeable(tmp_path) is None and sorted(p.name for p in tmp_path.iterdir()) == ["file"]
