"""Config composition and validation: bad values fail before any training or tracking."""

import functools
import math
import os
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import ValidationError

from fnn_core import ACTIVATIONS, OPTIMIZERS
from helpers import REPO, run_pipeline
from pipeline.config import OPTIMIZER_SCHEMAS, SCHEMAS, Checked, ConfigError, register_configs, validate
from pipeline.constraints import Interval

register_configs()
CONF = str(REPO / "conf")
PRESETS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def composed(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_defaults_follow_the_reference_study():
    settings = validate(composed())
    assert settings.dataset.name == "mnist"
    assert (settings.optimizer.name, settings.optimizer.lr) == ("sgd", 0.1)
    assert (settings.model.hidden_layers, settings.model.init) == (1, "auto")


def test_default_sweep_grid_is_declared_in_config():
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert dict(cfg.hydra.sweeper.params) == {
        "model.activation": "sigmoid,relu,tanh",
        "model.hidden_neurons": "256,128,64,32",
    }
    # Widest first, as the outer axis: the longest jobs start first and parallel workers end together.
    assert list(cfg.hydra.sweeper.params)[0] == "model.hidden_neurons"


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "model.activation=swish",
            "model.activation='swish' is not valid; choose one of: " + ", ".join(sorted(ACTIVATIONS)),
        ),
        ("model.hidden_neurons=0", "model.hidden_neurons=0 is not valid: must be >= 1"),
        ("model.hidden_neurons=-5", "model.hidden_neurons=-5 is not valid: must be >= 1"),
        ("model.hidden_layers=0", "model.hidden_layers=0"),
        ("model.init=orthogonal", "model.init='orthogonal' is not valid; choose one of: auto"),
        ("optimizer.lr=0", "optimizer.lr=0.0 is not valid: must be a positive number"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 is not valid"),
        ("optimizer.lr=inf", "optimizer.lr=inf is not valid"),
        ("train.epochs=0", "train.epochs=0 is not valid: must be >= 1"),
        ("train.batch_size=0", "train.batch_size=0"),
        ("train.val_fraction=1.5", "train.val_fraction=1.5"),
        ("dataset.name=cifar", "dataset.name='cifar' is not valid; choose one of: california_housing"),
        # a key added with + that no schema has: OmegaConf keeps it, and nothing would read it
        ("+train.paitence=3", "train.paitence is not a setting (added with +?); train has: epochs, batch_size"),
        ("+model.extra=1", "model.extra is not a setting (added with +?); model has: activation"),
        ("+foo=2", "foo is not a setting (added with +?); the config has: dataset, optimizer"),
    ],
)
def test_bad_values_are_named_with_valid_choices(override, message):
    with pytest.raises(ConfigError) as err:
        validate(composed(override))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "override", ["optimizer.lr=abc", "model.hidden_neurons=wide", "model.activaton=relu", "dataset=cifar"]
)
def test_type_errors_typos_and_unknown_groups_fail_at_composition(override):
    with pytest.raises(HydraException) as err:
        composed(override)
    assert override.split("=")[0].split(".")[-1] in str(err.value)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_validates_and_names_its_whole_grid(preset):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[f"+experiment={preset}"], return_hydra_config=True)
    validate(compose_app_only(cfg))
    # Every axis of the base grid is named, so none is inherited from conf/config.yaml by accident.
    assert {"model.activation", "model.hidden_neurons"} <= set(cfg.hydra.sweeper.params)


def compose_app_only(cfg):
    app = cfg.copy()
    with open_dict(app):
        del app["hydra"]
    return app


def test_one_schema_per_optimizer_in_the_registry():
    assert set(OPTIMIZER_SCHEMAS) == set(OPTIMIZERS)
    for name, schema in OPTIMIZER_SCHEMAS.items():
        settings = validate(composed(f"optimizer={name}"))
        assert type(settings.optimizer) is schema and settings.optimizer.name == name
        assert set(settings.optimizer.options()) == set(vars(settings.optimizer)) - {"name"}


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["optimizer=sgd", "optimizer.beta1=0.5"], "beta1"),
        (["optimizer=momentum", "optimizer.eps=1e-6"], "eps"),
        (["optimizer=adam", "optimizer.momentum=0.9"], "momentum"),
        (["optimizer=adam", "optimizer.nesterov=true"], "nesterov"),
    ],
)
def test_a_setting_of_another_optimizer_fails_at_composition(overrides, key):
    with pytest.raises(HydraException, match=f"Could not override 'optimizer.{key}'"):
        composed(*overrides)


def test_optimizer_name_must_match_its_settings():
    with pytest.raises(ConfigError, match="choose the optimizer with optimizer=adam"):
        validate(composed("optimizer.name=adam"))


def test_published_preset_is_the_reference_setting():
    settings = validate(composed("+experiment=table1_published"))
    assert (settings.model.init, settings.train.batch_size, settings.optimizer.lr) == ("normal", 1, 0.1)


@pytest.mark.slow
# Single values of every kind are in test_resume.py's bad-input matrix; these are sweep lists and another
# optimizer's key.
@pytest.mark.parametrize(
    "args, needle",
    [
        (["-m", "model.hidden_neurons=32,-1"], "model.hidden_neurons=-1 is not valid"),
        (["-m", "optimizer.lr=0.1,0"], "optimizer.lr=0.0 is not valid"),
        (["optimizer.beta1=0.5"], "Key 'beta1' not in 'SGDConfig'; the valid keys: python -m pipeline --cfg job"),
        (["-m", "model.activaton=relu,tanh"], "Key 'activaton' not in 'ModelConfig'"),
        (["-m", "model.hidden_neurons=8,wide"], "Error merging override model.hidden_neurons=wide"),
        (["-m", "model.activation=relu,tanh", "+train.paitence=3"], "train.paitence is not a setting (added with +?)"),
    ],
)
def test_cli_rejects_bad_values_before_any_run(home, args, needle):
    result = run_pipeline(home, *args, *([] if any("dataset=" in a for a in args) else ["dataset=digits"]))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert needle in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (Path(home) / "mlflow.db").exists()  # no store, no run


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["-m", "model.activation=relu,tanh"]], ids=["single", "sweep"])
def test_an_fnn_sweep_home_that_is_a_file_is_named_in_one_line(tmp_path, mode):
    """Set in the shell long ago, the variable is not in the command: the one line names it, not Hydra's settings."""
    home = tmp_path / "a-file"
    home.write_text("")
    result = run_pipeline(home, *mode, "dataset=digits")
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout, result.stderr[-2000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Not a directory" in line
    assert line.endswith(
        f"; FNN_SWEEP_HOME={home} is where the outputs go: it must be a directory this user can write in"
    )


@pytest.mark.slow
def test_a_single_run_with_a_missing_data_dir_stops_before_any_run(home, tmp_path):
    result = run_pipeline(home, "dataset=mnist", f"dataset.dir={tmp_path / 'nowhere'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: dataset.dir={tmp_path / 'nowhere'} lacks "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"
    ]
    assert not (Path(home) / "mlflow.db").exists()


JOB_SETS = [  # (name, jobs): each job's app overrides, as a sweep hands them to compose_app
    (
        "default grid",
        [
            [f"model.hidden_neurons={h}", f"model.activation={a}"]
            for h in (256, 32)
            for a in ("sigmoid", "relu", "tanh")
        ],
    ),
    (
        "groups and values",
        [
            ["dataset=fashion_mnist", "optimizer=adam", "optimizer.lr=0.01"],
            ["dataset=digits", "optimizer=sgd", "optimizer.lr=0.5", "dataset.standardize=false"],
            ["+experiment=lr_study", "optimizer.lr=0.3"],
            ["+experiment=table1", "train.epochs=2"],
        ],
    ),
    (
        "quoted, null and interpolated values",
        [
            ["model.activation='tanh'", "compute.blas_threads=null"],
            ["train.seed=${train.epochs}", "mlflow.experiment_name='a, b'"],
        ],
    ),
]


@pytest.mark.parametrize("name, jobs", JOB_SETS, ids=[name for name, _ in JOB_SETS])
def test_composing_jobs_together_equals_composing_each(name, jobs):
    from omegaconf import OmegaConf

    from pipeline.sweep.composition import compose_app

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        together = [OmegaConf.to_container(c, resolve=True) for c in compose_app("config", jobs)]
        each = [OmegaConf.to_container(compose("config", overrides=job), resolve=True) for job in jobs]
    assert together == each
    assert len({str(c) for c in together}) == len(jobs)  # every job its own config


def test_jobs_that_differ_in_values_are_composed_once_per_structure(monkeypatch):
    """A group and values inside it (``optimizer=adam optimizer.lr=...``) share one composition."""
    import hydra

    from pipeline.sweep.composition import compose_app

    composed = []
    real = hydra.compose
    monkeypatch.setattr(hydra, "compose", lambda *args, **kwargs: composed.append(args) or real(*args, **kwargs))
    jobs = [
        ["optimizer=adam", f"optimizer.lr={lr}", f"model.activation={a}"]
        for lr in (0.1, 0.01)
        for a in ("relu", "tanh")
    ]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        configs = list(compose_app("config", jobs))
    assert len(composed) == 1
    assert [(c.optimizer.name, c.optimizer.lr, c.model.activation) for c in configs] == [
        ("adam", lr, a) for lr in (0.1, 0.01) for a in ("relu", "tanh")
    ]


@pytest.mark.parametrize("job", [["model.hidden_neurons=wide"], ["model.activaton=relu"], ["model=big"]])
def test_composing_jobs_together_fails_as_hydra_does(job):
    from pipeline.sweep.composition import compose_app

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        with pytest.raises(HydraException) as together:
            list(compose_app("config", [["model.activation=relu"], job]))
        with pytest.raises(HydraException) as each:
            compose("config", overrides=job)
    assert str(together.value) == str(each.value)


SWEEP_JOB_SETS = [  # (Hydra overrides of the command, each job's overrides as a sweeper hands them over, how
    # many compositions Hydra makes for them twice over: one per structure, and each job a shared one cannot give)
    (
        [],
        [[f"model.activation={a}", f"model.hidden_neurons={h}"] for a in ("relu", "tanh") for h in (32, 64)],
        1,
    ),
    (
        ["hydra.job.config.override_dirname.exclude_keys=[train.seed]", "hydra.verbose=true"],
        [
            ["dataset=digits", "optimizer=adam", "optimizer.lr=0.01", "train.seed=1"],
            ["dataset=digits", "optimizer=adam", "optimizer.lr=0.1", "train.seed=2"],
            ["optimizer=sgd", "optimizer.lr=0.5", "dataset.standardize=false"],
            ["+experiment=lr_study", "optimizer.lr=0.3", "sweep.pause_at=1"],
            ["+experiment=lr_study", "optimizer.lr=0.03", "sweep.pause_at=1"],
        ],
        3,
    ),
    (  # order-sensitive edits of the same key, Hydra's own settings in a job, quoted and null values
        [],
        [
            ["++train.epochs=3", "train.epochs=2"],
            ["train.epochs=2", "++train.epochs=3"],
            ["hydra.job.chdir=true", "model.activation='tanh'", "compute.blas_threads=null"],
            ["train.seed=${train.epochs}", "mlflow.experiment_name='a, b'"],
        ],
        5,  # the first two jobs are Hydra's: the structure of both, then each one; the others share 2
    ),
]


@pytest.mark.parametrize("command, jobs, compositions", SWEEP_JOB_SETS)
def test_a_job_composed_from_a_shared_composition_is_the_config_hydra_composes(command, jobs, compositions):
    """Every job's whole config, Hydra's node included (overrides, override_dirname, choices), and its flags."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from pipeline.sweep.composition import ReusedComposition

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        hydras = GlobalHydra.instance().config_loader()
        master = hydras.load_configuration("config", command, RunMode.MULTIRUN)
        asked = []

        class Counted(ReusedComposition):  # Hydra's loader, counting what it composes
            def load_configuration(self, *args, **kwargs):
                asked.append(args)
                return self.loader.load_configuration(*args, **kwargs)

            def load_sweep_config(self, master_config, sweep_overrides):
                asked.append(sweep_overrides)
                return self.loader.load_sweep_config(master_config, sweep_overrides)

        reused = ReusedComposition(Counted(hydras))
        # every job after the first of its structure comes from the shared composition
        for job in jobs:
            ours, theirs = reused.load_sweep_config(master, job), hydras.load_sweep_config(master, job)
            assert OmegaConf.to_container(ours) == OmegaConf.to_container(theirs), job
            app = [key for key in theirs if key != "hydra"]  # hydra's own resolve in the job (its number)
            assert OmegaConf.to_container(OmegaConf.masked_copy(ours, app), resolve=True) == OmegaConf.to_container(
                OmegaConf.masked_copy(theirs, app), resolve=True
            )
            assert (OmegaConf.is_struct(ours), OmegaConf.is_readonly(ours.hydra)) == (
                OmegaConf.is_struct(theirs),
                OmegaConf.is_readonly(theirs.hydra),
            )
    assert len(asked) == compositions


@pytest.mark.parametrize("job", [["model.hidden_neurons=wide"], ["model.activaton=relu"]])
def test_a_job_composed_from_a_shared_composition_fails_as_hydra_does(job):
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from pipeline.sweep.composition import ReusedComposition

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        hydras = GlobalHydra.instance().config_loader()
        master = hydras.load_configuration("config", [], RunMode.MULTIRUN)
        reused = ReusedComposition(hydras)
        reused.load_sweep_config(master, ["model.activation=relu"])
        with pytest.raises(HydraException) as ours:
            reused.load_sweep_config(master, job)
        with pytest.raises(HydraException) as theirs:
            hydras.load_sweep_config(master, job)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: schema.__name__)
def test_every_schema_field_has_a_constraint(schema):
    """A new field without an entry in its schema's constraints table fails here."""
    assert issubclass(schema, Checked)
    own = {f.name for f in fields(schema) if not is_dataclass(f.type)}  # groups check their own fields
    assert own == set(schema.constraints), f"{schema.__name__}: fields and constraints differ"


# Each schema's fields as config keys: (overrides that select the schema, the key's group).
SCHEMA_KEYS = {
    "DatasetConfig": ([], "dataset"),
    "ModelConfig": ([], "model"),
    "SGDConfig": ([], "optimizer"),
    "AdamConfig": (["optimizer=adam"], "optimizer"),
    "TrainConfig": ([], "train"),
    "ComputeConfig": ([], "compute"),
    "MlflowConfig": ([], "mlflow"),
    "ReportConfig": ([], "report"),
}
NUMERIC_FIELDS = [
    (name, group, select, field_name, constraint)
    for schema in SCHEMAS
    if schema.__name__ in SCHEMA_KEYS
    for name, (select, group) in [(schema.__name__, SCHEMA_KEYS[schema.__name__])]
    for field_name, constraint in schema.constraints.items()
    if isinstance(constraint, Interval)
]


@pytest.mark.parametrize(
    "schema, group, select, name, constraint", NUMERIC_FIELDS, ids=[f"{g}.{n}-{s}" for s, g, _, n, _ in NUMERIC_FIELDS]
)
def test_every_numeric_field_rejects_nan_and_values_outside_its_interval(schema, group, select, name, constraint):
    key = f"{group}.{name}"
    bad = ["-1", *(["nan"] if constraint.type is float else [])]
    if constraint.high != math.inf:
        bad.append("inf" if constraint.type is float else "1e400")
    if constraint.high not in (None, math.inf):
        bad.append(str(constraint.high + (1 if constraint.type is int else 0)))
    for value in bad:
        cfg = _base_config(tuple(select)).copy()
        try:
            OmegaConf.update(cfg, key, value)
        except ValidationError:  # the type already rejects it (an int key given 1e400)
            continue
        with pytest.raises(ConfigError) as err:
            validate(cfg)
        line = str(err.value)
        assert line.startswith(f"{key}=") and " is not valid" in line and "\n" not in line, line


@functools.cache
def _base_config(select):
    return composed(*select)


def test_infinity_is_accepted_only_where_it_means_something():
    assert validate(composed("mlflow.stale_after_s=inf")).mlflow.stale_after_s == math.inf  # never reap
    for override in ("optimizer.lr=inf", "optimizer.weight_decay=inf", "optimizer.clip_norm=inf"):
        with pytest.raises(ConfigError, match="is not valid"):
            validate(composed(override))


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.seed=-1", "train.seed=-1 is not valid: must be an integer in [0, 4294967295]"),
        ("train.seed=4294967296", "train.seed=4294967296 is not valid"),
        ("optimizer.weight_decay=nan", "optimizer.weight_decay=nan is not valid: must be a finite number >= 0"),
        ("mlflow.stale_after_s=0", "mlflow.stale_after_s=0.0 is not valid: must be a positive number of seconds"),
        ("mlflow.experiment_name=" + "x" * 5000, "is 5000 characters long; at most 256 are allowed"),
        ("mlflow.experiment_name=' '", "mlflow.experiment_name=' ' is not valid: must not be empty"),
        ("mlflow.tracking_uri=mlflow.db", "must be a URI such as sqlite:///PATH/mlflow.db"),
        ("report.register_best=a/b", "report.register_best='a/b' is not valid: a model name cannot contain"),
        ("report.register_best=..", "report.register_best='..' is not valid"),
        ("compute.blas_threads=0", "compute.blas_threads=0 is not valid: must be >= 1"),
    ],
)
def test_values_the_schema_once_missed_are_rejected_in_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        validate(composed(override))
    assert message in str(err.value) and "\n" not in str(err.value) and len(str(err.value)) < 400


@pytest.mark.parametrize(
    "override, shown",
    [
        ("mlflow.tracking_uri=postgresql://fnn:hunter2@127.0.0.1/mlflow", "postgresql://fnn:***@127.0.0.1/mlflow"),
        ("mlflow.tracking_uri=http://fnn:hunter2@127.0.0.1:5000", "http://fnn:***@127.0.0.1:5000"),
        ("mlflow.artifact_location='s3://bucket/runs?X-Amz-Signature=hunter2'", "X-Amz-Signature=***"),
        ("sweep.study_storage=postgresql://fnn:hunter2@127.0.0.1/optuna", "postgresql://fnn:***@127.0.0.1/optuna"),
    ],
)
def test_a_uri_with_credentials_in_the_config_is_refused_without_showing_them(override, shown):
    """Composed from a file (here: an override that did not go through the command line's
    ``credentials.take_from_argv``), a password would be a param of every run: one line, masked."""
    with pytest.raises(ConfigError) as err:
        validate(composed(override))
    message = str(err.value)
    assert shown in message and "hunter2" not in message and "\n" not in message
    assert "command line" in message and "MLFLOW_TRACKING_PASSWORD" in message


def test_a_masked_uri_from_the_command_line_is_valid():
    """What ``take_from_argv`` leaves in the config (the real URI is in the environment) passes."""
    validate(composed("mlflow.tracking_uri=http://fnn:***@127.0.0.1:5000"))


def test_a_password_from_the_environment_through_an_interpolation_is_refused(monkeypatch):
    monkeypatch.setenv("SECRET_URI", "http://fnn:hunter2@127.0.0.1:1")
    with pytest.raises(ConfigError) as err:
        validate(composed("mlflow.tracking_uri=${oc.env:SECRET_URI}"))
    assert "mlflow.tracking_uri='http://fnn:***@127.0.0.1:1'" in str(err.value) and "hunter2" not in str(err.value)


@pytest.mark.slow  # a real `python -m pipeline -m`
def test_a_password_from_a_config_file_stops_the_sweep_before_anything(home, tmp_path_factory):
    """A preset file holding a password: exit 2 before any run, store or Hydra file, and the password
    is not printed."""
    user_conf = tmp_path_factory.mktemp("user_conf")  # outside ``home``, which must hold no password
    (user_conf / "experiment").mkdir()
    (user_conf / "experiment" / "server.yaml").write_text(
        "# @package _global_\nmlflow:\n  tracking_uri: postgresql://fnn:hunter2@127.0.0.1:1/mlflow\n"
    )
    result = run_pipeline(
        home, "-m", f"--config-dir={user_conf}", "+experiment=server", "dataset=digits", "model.activation=relu,tanh"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert "mlflow.tracking_uri='postgresql://fnn:***@127.0.0.1:1/mlflow'" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    files = [p for p in Path(home).rglob("*") if p.is_file()]
    assert not [p for p in files if b"hunter2" in p.read_bytes()] and not (Path(home) / "mlflow.db").exists()


def test_a_quoted_uri_on_the_command_line_keeps_its_quotes_and_loses_its_secret(monkeypatch):
    """Hydra needs quotes around a value holding "=" (a token in the query): the secret inside them is
    taken out, the quotes stay, and the config's (unquoted) URI maps back to the one to connect with."""
    from pipeline import credentials

    monkeypatch.delenv("FNN_SWEEP_TRACKING_URIS", raising=False)
    argv = ["mlflow.artifact_location='s3://b/x?token=hunter2'", 'hydra.sweeper.storage="postgresql://u:hunter2@h/db"']
    taken = credentials.take_from_argv([*argv, "model.activation='relu'"])
    assert taken == [
        "mlflow.artifact_location='s3://b/x?token=***'",
        'hydra.sweeper.storage="postgresql://u:***@h/db"',
        "model.activation='relu'",
    ]
    assert credentials.connect_uri("s3://b/x?token=***") == "s3://b/x?token=hunter2"
    assert credentials.connect_uri("postgresql://u:***@h/db") == "postgresql://u:hunter2@h/db"
    validate(composed(taken[0]))  # what Hydra then composes is valid: the secret is not in it


def test_mlflows_own_variables_are_the_defaults_of_the_store_and_experiment(monkeypatch, tmp_path):
    """As every MLflow client takes them; the command line's values win; unset, the project's store."""
    monkeypatch.setenv("FNN_SWEEP_HOME", str(tmp_path))
    default = validate(composed()).mlflow
    assert (default.tracking_uri, default.experiment_name) == (f"sqlite:///{tmp_path}/mlflow.db", "fnn-sweep")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "widths")
    from_variables = validate(composed()).mlflow
    assert (from_variables.tracking_uri, from_variables.experiment_name) == ("http://127.0.0.1:5000", "widths")
    given = validate(composed("mlflow.tracking_uri=sqlite:///x.db", "mlflow.experiment_name=other")).mlflow
    assert (given.tracking_uri, given.experiment_name) == ("sqlite:///x.db", "other")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # set but empty: unset, as MLflow takes it
    assert validate(composed()).mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("MLFLOW_TRACKING_URI", "mlruns", "mlflow.tracking_uri='mlruns' is not valid: must be a URI"),
        ("MLFLOW_EXPERIMENT_NAME", "x" * 300, "mlflow.experiment_name='xxx"),
    ],
)
def test_a_bad_value_from_mlflows_variables_names_the_variable(monkeypatch, variable, value, message):
    """A variable left set in the shell is not what the user typed: the one line says where it came from."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as err:
        validate(composed())
    assert str(err.value).startswith(message) and str(err.value).endswith(
        f"(it is ${variable}, the default of {message.split('=')[0]})"
    )


def test_a_password_in_mlflow_tracking_uri_is_taken_out_like_the_command_lines(monkeypatch):
    """The variable keeps the redacted URI (the config's default, and what workers inherit); MLflow
    connects with the user and password in its own variables."""
    from pipeline import credentials

    for name in ("FNN_SWEEP_TRACKING_URIS", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "")  # recorded, so that what take_from_environment sets is undone
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:hunter2@127.0.0.1:5000")
    credentials.take_from_environment()
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://alice:***@127.0.0.1:5000"
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("alice", "hunter2")
    assert credentials.connect_uri("http://alice:***@127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert validate(composed()).mlflow.tracking_uri == "http://alice:***@127.0.0.1:5000"
    credentials.take_from_environment()  # again (every entry point calls it): nothing changes
    assert credentials.connect_uri(os.environ["MLFLOW_TRACKING_URI"]) == "http://127.0.0.1:5000"


@functools.cache
def _sweep_config():
    """The default config with Hydra's node, composed once for the tests that change it."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", return_hydra_config=True)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "hydra.sweeper.max_batch_size=0",
            "hydra.sweeper.max_batch_size=0 is not valid: must be a number of jobs >= 1",
        ),
        ("hydra.job_logging.root.level=debug", "hydra.job_logging.root.level=debug is not valid: not a logging level"),
        ("hydra.job_logging.handlers.console.class=logging.Nope", "hydra.job_logging.handlers.console: class logging"),
        ("hydra.job_logging.handlers.file.filename=/proc/no/x.log", "hydra.job_logging.handlers.file.filename=/proc/"),
        ("hydra.sweep.dir=/proc/no/sweep", "hydra.sweep.dir=/proc/no/sweep cannot be made: No such file or directory"),
    ],
)
def test_hydras_own_settings_a_sweep_applies_late_are_checked_first(override, message, tmp_path):
    """Settings Hydra applies only in each job, or once the sweeper starts, after the parent run exists."""
    import yaml

    from pipeline.sweep.preflight import check_hydra_settings

    good = _sweep_config().copy()
    good.hydra.sweep.dir = str(tmp_path / "a" / "b")
    bad = good.copy()
    key, value = override.split("=", 1)
    OmegaConf.update(bad, key, yaml.safe_load(value), merge=True)  # as Hydra merges the override
    check_hydra_settings(good.hydra)
    assert not (tmp_path / "a").exists()  # probed, and left as it was
    with pytest.raises(ConfigError) as raised:
        check_hydra_settings(bad.hydra)
    assert str(raised.value).startswith(message)
