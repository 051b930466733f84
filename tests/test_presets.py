"""Every dataset README lists trains with its own defaults: the default config, or its preset's grid."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from helpers import REPO
from pipeline.build import build_network, build_optimizer
from pipeline.config import register_configs, validate
from pipeline.data import DataError, load_dataset
from pipeline.grid import app_overrides, compose_jobs, job_overrides

register_configs()
# How README says to run each dataset; MNIST and Fashion-MNIST are the default grid's own setting.
DATASET_COMMANDS = {"digits": ["dataset=digits"], "iris": ["+experiment=iris"], "xor": ["+experiment=xor"],
                    "diabetes": ["+experiment=diabetes"], "california_housing": ["+experiment=california_housing"]}
# Better than guessing: accuracy above chance (1 / classes), or MSE below the variance of standardized targets.
LEARNED = {"multiclass": lambda score, data: score > 1.5 / data.n_classes, "regression": lambda score, data: score < 1}


@pytest.mark.slow  # every cell of each grid, trained in this process
@pytest.mark.parametrize("dataset", DATASET_COMMANDS)
def test_every_cell_of_a_datasets_grid_trains_with_its_defaults(dataset):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=DATASET_COMMANDS[dataset], return_hydra_config=True)
        jobs = job_overrides(cfg.hydra.sweeper.params, DATASET_COMMANDS[dataset])
        settings = [validate(job) for job in compose_jobs("config", map(app_overrides, jobs))]
    data = None
    for job in settings:
        try:
            data = data or load_dataset(vars(job.dataset), job.train.val_fraction, job.train.seed)
        except DataError as exc:  # california_housing: scikit-learn downloads it once
            pytest.skip(f"{dataset} is not on this machine and cannot be downloaded here: {exc}")
        net = build_network(job.model, job.train, data)
        history = net.fit(data.X_train, data.y_train, epochs=job.train.epochs, batch_size=job.train.batch_size,
                          optimizer=build_optimizer(job.optimizer))
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
        data.X_train, data.y_train, epochs=3, batch_size=job.train.batch_size, optimizer=build_optimizer(job.optimizer))
    assert history.diverged
