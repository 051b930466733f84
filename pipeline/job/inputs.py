"""A job's data, loaded once per process, and the rules between its settings and that data."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config import ConfigError
from pipeline.data import load_dataset
from pipeline.runtime import machine

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.data.dataset import Dataset

# Jobs run one after another in one process (basic launcher, reused workers): keep the last dataset.
_datasets: dict = {}


def dataset_key(settings: Config) -> tuple:
    """What a job's data depends on: the dataset config (test_fraction included), val_fraction, seed."""
    return repr(settings.dataset), settings.train.val_fraction, settings.train.seed


def dataset_for(settings: Config) -> Dataset:
    """The dataset a job's settings name, split; checks that a batch fits in its training set."""
    key = dataset_key(settings)
    if key not in _datasets:
        _datasets.clear()  # keep one dataset in memory at a time
        _datasets[key] = load_dataset(vars(settings.dataset), settings.train.val_fraction, settings.train.seed)
    check_fits(settings, _datasets[key])
    return _datasets[key]


def check_fits(settings: Config, data: Dataset) -> None:
    """The rules between a job's settings and its data: a mini-batch holds at most every training
    sample (after the validation split), and the network trains in this machine's memory."""
    train_cfg = settings.train
    if train_cfg.batch_size > len(data.X_train):
        raise ConfigError(
            f"train.batch_size={train_cfg.batch_size} is not valid: {data.name} has "
            f"{len(data.X_train)} training samples after the validation split; "
            f"choose at most {len(data.X_train)}{preset_hint(data.name, ' (or ', ')')}"
        )
    need, have = training_bytes(settings, data), machine.memory_bytes()
    if have and need > have:
        model = settings.model
        raise ConfigError(
            f"model.hidden_neurons={model.hidden_neurons} (x{model.hidden_layers} layers) is not valid "
            f"on {data.name}: training needs about {_gib(need)} GiB, this machine has "
            f"{_gib(have)} GiB; choose a smaller width"
        )


def _gib(size):
    """Bytes as GiB for a message: '22,400', or '5.6e+24' past a million."""
    gib = size / 2**30
    return f"{gib:,.0f}" if gib < 1e6 else f"{gib:.1e}"


def training_bytes(settings: Config, data: Dataset) -> int:
    """About how much memory training needs: weights, gradients and optimizer state per parameter
    (Adam keeps two moments), plus one batch's activations and the test set's forward pass."""
    width, depth = settings.model.hidden_neurons, settings.model.hidden_layers
    params = (data.n_features + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * data.n_outputs
    copies = 2 + (2 if settings.optimizer.name == "adam" else 1)
    rows = settings.train.batch_size + max(len(data.X_test), len(data.X_val))
    return (params * copies + 3 * rows * width * depth) * np.dtype(settings.train.dtype).itemsize


def preset_hint(dataset: str, before: str, after: str) -> str:
    """'<before>the dataset's tuned settings: +experiment=NAME<after>' when conf/experiment has one, else ''."""
    if not (resources.files("pipeline.conf") / "experiment" / f"{dataset}.yaml").is_file():
        return ""
    return f"{before}the dataset's tuned settings: +experiment={dataset}{after}"
