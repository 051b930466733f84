"""Typed config schema: dataclasses registered in Hydra's ConfigStore.

OmegaConf checks types and unknown keys while Hydra composes; ``validate``
(``OmegaConf.to_object``, which runs each ``__post_init__``) checks values
against the fnn_core registries and ranges. Both run before any training or
MLflow run. Valid choices always come from the registries' keys.
"""

import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from fnn_core import ACTIVATIONS, INIT_CHOICES, OPTIMIZERS
from fnn_core.network import DTYPES
from pipeline.data import DATASETS
from pipeline.failure import InputError
import pipeline.parallel  # noqa: F401  (registers the fnn_sweep_workers resolver the launcher config uses)

TARGET_TRANSFORMS = ("none", "log", "standardize")


class ConfigError(InputError, ValueError):
    """A config value is invalid; the message is one line naming the key."""


def project_home():
    """Where the MLflow store, Hydra outputs and reports live: $FNN_SWEEP_HOME, else the project's
    checkout when running from one, else the current directory (an installed copy)."""
    checkout = Path(__file__).resolve().parents[1]
    return os.environ.get("FNN_SWEEP_HOME") or str(checkout if (checkout / "pyproject.toml").is_file() else Path.cwd())


# Cached, so the value resolved in the launching process travels with every job's config.
OmegaConf.register_new_resolver("fnn_sweep_home", project_home, replace=True, use_cache=True)

# A sweep's directory is its identity in the store: a random token keeps two sweeps started in the
# same second apart. Cached, so the launcher's value travels with every job's config.
OmegaConf.register_new_resolver("fnn_sweep_token", lambda: secrets.token_hex(3), replace=True, use_cache=True)

# Config keys that never change a run's result: where things are stored, printed or reported.
RESULT_NEUTRAL_PREFIXES = ("mlflow.", "report.", "hydra.", "compute.", "sweep.")
RESULT_NEUTRAL_KEYS = ("quiet", "verbose")


def result_neutral(key):
    """True for a dotted config key that cannot change what a run computes."""
    return key in RESULT_NEUTRAL_KEYS or key.startswith(RESULT_NEUTRAL_PREFIXES)


def _choice(key, value, choices):
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(sorted(choices))}")


def _at_least(key, value, low):
    if value < low:
        raise ConfigError(f"{key}={value} is not valid: must be >= {low}")


def _positive(key, value):
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{key}={value} is not valid: must be a positive number")


def _fraction(key, value, high_open=True):
    if not (0 <= value < 1 if high_open else 0 < value < 1):
        raise ConfigError(f"{key}={value} is not valid: must be in [0, 1)" if high_open
                          else f"{key}={value} is not valid: must be in (0, 1)")


@dataclass
class DatasetConfig:
    name: str = MISSING
    dir: Optional[str] = None  # read the files from here instead of the cache / download
    test_fraction: float = 0.2  # datasets without a fixed test split
    standardize: bool = False  # z-score features with training-set statistics
    target_transform: str = "none"  # regression targets: none, log, standardize

    def __post_init__(self):
        _choice("dataset.name", self.name, DATASETS)
        _fraction("dataset.test_fraction", self.test_fraction, high_open=False)
        _choice("dataset.target_transform", self.target_transform, TARGET_TRANSFORMS)


@dataclass
class ModelConfig:
    activation: str = "relu"
    hidden_neurons: int = 128  # width of each hidden layer
    hidden_layers: int = 1  # depth
    init: str = "auto"

    def __post_init__(self):
        _choice("model.activation", self.activation, ACTIVATIONS)
        _at_least("model.hidden_neurons", self.hidden_neurons, 1)
        _at_least("model.hidden_layers", self.hidden_layers, 1)
        _choice("model.init", self.init, INIT_CHOICES)


@dataclass
class OptimizerConfig:
    """Options every optimizer has; each optimizer's schema adds only its own."""

    name: str = MISSING
    lr: float = MISSING
    weight_decay: float = 0.0
    clip_norm: Optional[float] = None

    def __post_init__(self):
        _choice("optimizer.name", self.name, OPTIMIZERS)
        if OPTIMIZER_SCHEMAS.get(self.name, type(self)) is not type(self):
            raise ConfigError(f"optimizer.name={self.name!r} does not fit this optimizer's settings; "
                              f"choose the optimizer with optimizer={self.name}")
        _positive("optimizer.lr", self.lr)
        _at_least("optimizer.weight_decay", self.weight_decay, 0)
        if self.clip_norm is not None:
            _positive("optimizer.clip_norm", self.clip_norm)

    def options(self):
        """Keyword arguments for the fnn_core optimizer named ``name``."""
        return {key: value for key, value in vars(self).items() if key != "name"}


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self):
        super().__post_init__()
        _fraction("optimizer.momentum", self.momentum)
        if self.nesterov and not self.momentum:
            raise ConfigError("optimizer.nesterov=true needs optimizer.momentum > 0")


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        super().__post_init__()
        _fraction("optimizer.beta1", self.beta1)
        _fraction("optimizer.beta2", self.beta2)
        _positive("optimizer.eps", self.eps)


OPTIMIZER_SCHEMAS = {"sgd": SGDConfig, "adam": AdamConfig}  # one per fnn_core optimizer


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    val_fraction: float = 0.1  # share of the training set held out for validation
    early_stopping_patience: Optional[int] = None  # epochs without val_loss improvement
    dtype: str = "float32"

    def __post_init__(self):
        _at_least("train.epochs", self.epochs, 1)
        _at_least("train.batch_size", self.batch_size, 1)
        _fraction("train.val_fraction", self.val_fraction)
        if self.early_stopping_patience is not None:
            _at_least("train.early_stopping_patience", self.early_stopping_patience, 1)
            if self.val_fraction == 0:
                raise ConfigError("train.early_stopping_patience needs train.val_fraction > 0")
        _choice("train.dtype", self.dtype, DTYPES)


@dataclass
class ComputeConfig:
    blas_threads: Optional[int] = None  # BLAS threads in each job; None: usable cores / jobs running at once

    def __post_init__(self):
        if self.blas_threads is not None:
            _at_least("compute.blas_threads", self.blas_threads, 1)


@dataclass
class MlflowConfig:
    tracking_uri: str = "sqlite:///${fnn_sweep_home:}/mlflow.db"
    experiment_name: str = "fnn-sweep"
    # Where a new experiment keeps artifacts. None: beside a SQLite store (mlartifacts/ next to the file);
    # a tracking server's own artifact store for http(s):// URIs.
    artifact_location: Optional[str] = None
    log_model: bool = True  # the trained model as an MLflow pyfunc model
    # A RUNNING run of another host with no heartbeat (epoch metric) for this long is reaped (KILLED).
    stale_after_s: float = 1800.0


@dataclass
class SweepConfig:
    rerun: bool = False  # run every job, even one whose identical config already FINISHED


@dataclass
class ReportConfig:
    out_dir: str = "${fnn_sweep_home:}/reports"
    sweep_id: Optional[str] = None  # None: the latest sweep; "all": every finished run
    after_sweep: bool = True  # write the report at the end of every multirun
    register_best: Optional[str] = None  # a model name: register the selection's best model under it


@dataclass
class Config:
    dataset: DatasetConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    quiet: bool = False  # no per-epoch status lines in a single run
    verbose: bool = False  # per-epoch status lines in sweeps too


@dataclass
class ReportAppConfig:
    """``python -m pipeline.report``: where the runs are and where the report goes."""

    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def register_configs():
    store = ConfigStore.instance()
    store.store(name="schema", node=Config)
    store.store(name="report_schema", node=ReportAppConfig)
    store.store(group="dataset", name="schema", node=DatasetConfig)
    for name, schema in OPTIMIZER_SCHEMAS.items():
        store.store(group="optimizer", name=f"{name}_schema", node=schema)


def validate(cfg):
    """Check every value of a composed config; returns the typed ``Config``.

    Raises
    ------
    ConfigError
        One line naming the key, the bad value and the valid choices or range.
    """
    try:
        return OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # OmegaConf wraps errors raised in __post_init__
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(str(exc).splitlines()[0]) from None
