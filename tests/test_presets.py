"""Every dataset README lists trains with its own defaults: the default config, or its preset's grid."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from helpers import REPO
from pipeline.config import register_configs, validate
from pipeline.data import DataError, load_dataset
from pipeline.job.build import build_network, build_optimizer
from pipeline.sweep.composition import compose_app
from pipeline.sweep.grid import app_overrides, job_overrides

register_configs()
# How README says to run each dataset; MNIST and Fashion-MNIST are the default grid's own setting.
DATASET_COMMANDS = {
    "digits": ["dataset=digits"],
    "iris": ["+experiment=iris"],
    "xor": ["+experiment=xor"],
    "diabetes": ["+experiment=diabetes"],
    "california_housing": ["+experiment=california_housing"],
}
# Better than guessing: accuracy above chance (1 / classes), or MSE below the variance of standardized targets.
LEARNED = {"multiclass": lambda score, data: score > 1.5 / data.n_classes, "regression": lambda score, data: score < 1}


@pytest.mark.slow  # every cell of each grid, trained in this process
@pytest.mark.readme("python -m pipeline -m +experiment=diabetes")  # its grid, composed as the command composes it
@pytest.mark.parametrize("dataset", DATASET_COMMANDS)
def test_every_cell_of_a_datasets_grid_trains_with_its_defaults(dataset):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=DATASET_COMMANDS[dataset], return_hydra_config=True)
        jobs = job_overrides(cfg.hydra.sweeper.params, DATASET_COMMANDS[dataset])
        settings = [validate(job) for job in compose_app("config", map(app_overrides, jobs))]
    data = None
    for job in settings:
        try:
            data = data or load_dataset(vars(job.dataset), job.train.val_fraction, job.train.seed)
        except DataError as exc:  # california_housing: scikit-learn downloads it once
            pytest.skip(f"{dataset} is not on this machine and cannot be downloaded here: {exc}")
        net = build_network(job.model, job.train, data)
        history = net.fit(
            data.X_train,
            data.y_train,
            epochs=job.train.epochs,
            batch_size=job.train.batch_size,
            optimizer=build_optimizer(job.optimizer),
        )
        assert not history.diverged, (dataset, job.model, history.stop_reason)
        score = net.evaluate(data.X_test, data.y_test)
        score = score["accuracy"] if data.task == "multiclass" else score["mse"]
        assert np.isfinite(score) and LEARNED[data.task](score, data), (dataset, job.model, score)


def test_sgds_default_lr_diverges_on_diabetes_which_is_why_it_has_a_preset():
    """The reason for the preset, kept true: if the default ever trains diabetes, README can say so."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        job = validate(compose("config", overrides=["dataset=diabetes", "train.epochs=3"]))
    data = load_dataset(vars(job.dataset), job.train.val_fraction, job.train.seed)
    history = build_network(job.model, job.train, data).fit(
        data.X_train, data.y_train, epochs=3, batch_size=job.train.batch_size, optimizer=build_optimizer(job.optimizer)
    )
    assert history.diverged


def test_a_network_too_big_for_this_machine_is_refused_before_training():
    from pipeline.config import ConfigError
    from pipeline.job.inputs import check_fits, training_bytes
    from pipeline.runtime.machine import memory_bytes

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        fits = validate(compose("config", overrides=["dataset=digits"]))
        huge = validate(
            compose("config", overrides=["dataset=digits", "model.hidden_neurons=1000000", "model.hidden_layers=3"])
        )
    data = load_dataset(vars(fits.dataset), fits.train.val_fraction, fits.train.seed)
    check_fits(fits, data)
    assert training_bytes(fits, data) < 10 * 2**20  # 64-128-10: a few MB
    assert training_bytes(huge, data) > memory_bytes()  # 3 x 10^12 weights
    with pytest.raises(
        ConfigError,
        match=r"model.hidden_neurons=1000000 \(x3 layers\) is not valid on digits: "
        r"training needs about [\d,]+ GiB, this machine has \d+ GiB",
    ):
        check_fits(huge, data)
