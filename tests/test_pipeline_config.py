"""Config composition and validation: bad values fail before any training or tracking."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from conftest import REPO, run_pipeline
from fnn_core import ACTIVATIONS
from pipeline.config import ConfigError, register_configs, validate

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
    assert dict(cfg.hydra.sweeper.params) == {"model.activation": "sigmoid,relu,tanh",
                                              "model.hidden_neurons": "32,64,128,256"}


@pytest.mark.parametrize("override, message", [
    ("model.activation=swish", "model.activation='swish' is not valid; choose one of: " + ", ".join(sorted(ACTIVATIONS))),
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
])
def test_bad_values_are_named_with_valid_choices(override, message):
    with pytest.raises(ConfigError) as err:
        validate(composed(override))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override", ["optimizer.lr=abc", "model.hidden_neurons=wide", "model.activaton=relu",
                                      "dataset=cifar"])
def test_type_errors_typos_and_unknown_groups_fail_at_composition(override):
    with pytest.raises(Exception) as err:
        composed(override)
    assert override.split("=")[0].split(".")[-1] in str(err.value)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_and_validates(preset):
    settings = validate(composed(f"+experiment={preset}"))
    assert settings.train.epochs >= 1


def test_published_preset_is_the_reference_setting():
    settings = validate(composed("+experiment=table1_published"))
    assert (settings.model.init, settings.train.batch_size, settings.optimizer.lr) == ("normal", 1, 0.1)


@pytest.mark.parametrize("args, needle", [
    (["model.activation=swish"], "model.activation='swish' is not valid; choose one of:"),
    (["-m", "model.hidden_neurons=32,-1"], "model.hidden_neurons=-1 is not valid"),
    (["-m", "optimizer.lr=0.1,0"], "optimizer.lr=0.0 is not valid"),
    (["-m", "train.epochs=0"], "train.epochs=0 is not valid"),
])
def test_cli_rejects_bad_values_before_any_run(home, args, needle):
    result = run_pipeline(home, *args, "dataset=digits")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert needle in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (Path(home) / "mlflow.db").exists()  # no store, no run
