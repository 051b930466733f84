"""Typed config schema: dataclasses registered in Hydra's ConfigStore.

OmegaConf checks types and unknown keys while Hydra composes; ``validate``
(``OmegaConf.to_object``, which runs each ``__post_init__``) checks values
against each schema's ``constraints`` table (``pipeline.constraints``: a
type and interval, or choices, and a message for every field) and the rules
between fields. Both run before any training or MLflow run. Valid choices
always come from the registries' keys. Rules that need the data (split
sizes, labels) are ``pipeline.data.check``'s, run in a sweep's pre-flight.
"""

import dataclasses
import math
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from fnn_core import ACTIVATIONS, INIT_CHOICES, OPTIMIZERS
from fnn_core.network import DTYPES
from pipeline import credentials
from pipeline.constraints import ConfigError, Flag, Interval, Options, Text, check_fields
from pipeline.data import DATASETS

TARGET_TRANSFORMS = ("none", "log", "standardize")
PROGRESS_STYLES = ("auto", "bar", "lines")


def project_home() -> str:
    """Where the MLflow store, Hydra outputs and reports live: $FNN_SWEEP_HOME, else the project's
    checkout when running from one, else the current directory (an installed copy)."""
    checkout = Path(__file__).resolve().parents[1]
    return os.environ.get("FNN_SWEEP_HOME") or str(checkout if (checkout / "pyproject.toml").is_file() else Path.cwd())


def default_tracking_uri() -> str:
    """``mlflow.tracking_uri`` unless given: MLflow's ``MLFLOW_TRACKING_URI`` when set, as every MLflow
    client takes it (redacted by ``credentials.take_from_environment``), else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_home()}/mlflow.db"


def default_experiment_name() -> str:
    """``mlflow.experiment_name`` unless given: MLflow's ``MLFLOW_EXPERIMENT_NAME`` when set, else fnn-sweep."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or "fnn-sweep"


# Cached, so the value resolved in the launching process travels with every job's config.
OmegaConf.register_new_resolver("fnn_sweep_home", project_home, replace=True, use_cache=True)
OmegaConf.register_new_resolver("fnn_sweep_tracking_uri", default_tracking_uri, replace=True, use_cache=True)
OmegaConf.register_new_resolver("fnn_sweep_experiment", default_experiment_name, replace=True, use_cache=True)

# A sweep's directory is its identity in the store: a random token keeps two sweeps started in the
# same second apart. Cached, so the launcher's value travels with every job's config.
OmegaConf.register_new_resolver("fnn_sweep_token", lambda: secrets.token_hex(3), replace=True, use_cache=True)

# Config keys that never change a run's result: where things are stored, printed or reported.
RESULT_NEUTRAL_PREFIXES = ("mlflow.", "report.", "hydra.", "compute.", "sweep.")
RESULT_NEUTRAL_KEYS = ("quiet", "verbose")


def result_neutral(key: str) -> bool:
    """True for a dotted config key that cannot change what a run computes."""
    return key in RESULT_NEUTRAL_KEYS or key.startswith(RESULT_NEUTRAL_PREFIXES)


# Hydra and MLflow keep names in 256-character columns (a PostgreSQL store enforces it).
MAX_NAME_LENGTH = 256
# A registered model's name: MLflow rejects "/" and ":" and names that are not a plain path segment.
MODEL_NAME_PATTERN = r"(?!\.{1,2}$)[^/:]+"
SEED_MAX = 2**32 - 1  # scikit-learn's random_state and NumPy's legacy seeds stop here


class Checked:
    """A schema whose ``constraints`` table (field -> constraint) is checked when it is built.

    ``check`` holds the rules that relate fields to each other.
    """

    group: ClassVar[str] = ""  # the config group: "train" names its keys "train.seed"
    constraints: ClassVar[dict] = {}

    def __post_init__(self):
        check_fields(self, self.group, type(self).constraints)
        self.check()

    def check(self) -> None:
        pass


@dataclass
class DatasetConfig(Checked):
    name: str = MISSING
    dir: Optional[str] = None  # read the files from here instead of the cache / download
    test_fraction: float = 0.2  # datasets without a fixed test split
    standardize: bool = False  # z-score features with training-set statistics
    target_transform: str = "none"  # regression targets: none, log, standardize

    group: ClassVar[str] = "dataset"
    constraints: ClassVar[dict] = {
        "name": Options(DATASETS),
        "dir": Text(optional=True),
        "test_fraction": Interval(float, 0, 1, closed="neither"),
        "standardize": Flag(),
        "target_transform": Options(TARGET_TRANSFORMS),
    }


@dataclass
class ModelConfig(Checked):
    activation: str = "relu"
    hidden_neurons: int = 128  # width of each hidden layer
    hidden_layers: int = 1  # depth
    init: str = "auto"

    group: ClassVar[str] = "model"
    constraints: ClassVar[dict] = {
        "activation": Options(ACTIVATIONS),
        "hidden_neurons": Interval(int, 1, None, message="must be >= 1"),
        "hidden_layers": Interval(int, 1, None, message="must be >= 1"),
        "init": Options(INIT_CHOICES),
    }


POSITIVE = Interval(float, 0, None, closed="neither", message="must be a positive number")


@dataclass
class OptimizerConfig(Checked):
    """Options every optimizer has; each optimizer's schema adds only its own."""

    name: str = MISSING
    lr: float = MISSING
    weight_decay: float = 0.0
    clip_norm: Optional[float] = None

    group: ClassVar[str] = "optimizer"
    constraints: ClassVar[dict] = {
        "name": Options(OPTIMIZERS),
        "lr": POSITIVE,
        "weight_decay": Interval(float, 0, None, closed="left", message="must be a finite number >= 0"),
        "clip_norm": Interval(
            float,
            0,
            None,
            closed="neither",
            optional=True,
            message="must be a positive number, or null for no clipping",
        ),
    }

    def check(self) -> None:
        if OPTIMIZER_SCHEMAS.get(self.name, type(self)) is not type(self):
            raise ConfigError(
                f"optimizer.name={self.name!r} does not fit this optimizer's settings; "
                f"choose the optimizer with optimizer={self.name}"
            )

    def options(self) -> dict[str, Any]:
        """Keyword arguments for the fnn_core optimizer named ``name``."""
        return {key: value for key, value in vars(self).items() if key != "name"}


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False

    constraints: ClassVar[dict] = {
        **OptimizerConfig.constraints,
        "momentum": Interval(float, 0, 1, closed="left"),
        "nesterov": Flag(),
    }

    def check(self) -> None:
        super().check()
        if self.nesterov and not self.momentum:
            raise ConfigError("optimizer.nesterov=true needs optimizer.momentum > 0")


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    constraints: ClassVar[dict] = {
        **OptimizerConfig.constraints,
        "beta1": Interval(float, 0, 1, closed="left"),
        "beta2": Interval(float, 0, 1, closed="left"),
        "eps": POSITIVE,
    }


OPTIMIZER_SCHEMAS = {"sgd": SGDConfig, "adam": AdamConfig}  # one per fnn_core optimizer


@dataclass
class TrainConfig(Checked):
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    val_fraction: float = 0.1  # share of the training set held out for validation
    early_stopping_patience: Optional[int] = None  # epochs without val_loss improvement
    dtype: str = "float32"

    group: ClassVar[str] = "train"
    constraints: ClassVar[dict] = {
        "epochs": Interval(int, 1, None, message="must be >= 1"),
        "batch_size": Interval(int, 1, None, message="must be >= 1"),
        "seed": Interval(int, 0, SEED_MAX, message=f"must be an integer in [0, {SEED_MAX}]"),
        "val_fraction": Interval(float, 0, 1, closed="left"),
        "early_stopping_patience": Interval(
            int, 1, None, optional=True, message="must be >= 1, or null for no early stopping"
        ),
        "dtype": Options(DTYPES),
    }

    def check(self) -> None:
        if self.early_stopping_patience is not None and self.val_fraction == 0:
            raise ConfigError("train.early_stopping_patience needs train.val_fraction > 0")


@dataclass
class ComputeConfig(Checked):
    blas_threads: Optional[int] = None  # BLAS threads in each job; None: usable cores / jobs running at once

    group: ClassVar[str] = "compute"
    constraints: ClassVar[dict] = {
        "blas_threads": Interval(int, 1, None, optional=True, message="must be >= 1, or null for cores / jobs at once")
    }


@dataclass
class MlflowConfig(Checked):
    tracking_uri: str = "${fnn_sweep_tracking_uri:}"  # $MLFLOW_TRACKING_URI, else sqlite:///HOME/mlflow.db
    experiment_name: str = "${fnn_sweep_experiment:}"  # $MLFLOW_EXPERIMENT_NAME, else fnn-sweep
    # Where a new experiment keeps artifacts. None: beside a SQLite store (mlartifacts/ next to the file);
    # a tracking server's own artifact store for http(s):// URIs.
    artifact_location: Optional[str] = None
    log_model: bool = True  # the trained model as an MLflow pyfunc model
    # Each run's loss curve and confusion matrix as PNGs (0.2-0.3 s a job). Off: the MLflow UI plots every
    # epoch metric itself, each run keeps its confusion matrix as CSV, and the report draws both.
    log_figures: bool = False
    # A RUNNING run of another host with no heartbeat (epoch metric) for this long is reaped (KILLED).
    # inf: never reap another host's runs.
    stale_after_s: float = 1800.0

    group: ClassVar[str] = "mlflow"

    def __post_init__(self):
        try:
            super().__post_init__()
        except ConfigError as exc:  # a default from MLflow's variables: say so, the user may not know
            note = ""
            if str(exc).startswith("mlflow.tracking_uri="):
                note = credentials.set_by_variable(self.tracking_uri)
            elif str(exc).startswith("mlflow.experiment_name=") and self.experiment_name == os.environ.get(
                "MLFLOW_EXPERIMENT_NAME"
            ):
                note = " (it is $MLFLOW_EXPERIMENT_NAME, the default of mlflow.experiment_name)"
            if not note:
                raise
            raise ConfigError(f"{exc}{note}") from None

    constraints: ClassVar[dict] = {
        "tracking_uri": Text(
            uri=True,
            pattern=r"[A-Za-z][A-Za-z0-9+.-]*:.+",
            message="must be a URI such as sqlite:///PATH/mlflow.db or http://HOST:5000",
        ),
        "experiment_name": Text(max_length=MAX_NAME_LENGTH),
        "artifact_location": Text(optional=True, uri=True),
        "log_model": Flag(),
        "log_figures": Flag(),
        "stale_after_s": Interval(
            float, 0, math.inf, closed="right", message="must be a positive number of seconds, or inf (never)"
        ),
    }


@dataclass
class SweepConfig(Checked):
    rerun: bool = False  # run every job, even one whose identical config already FINISHED
    # auto: a live progress bar when the console is a terminal, else one line per finished job;
    # bar or lines: either, whatever the console.
    progress: str = "auto"
    # Set by hydra/sweeper=optuna on each trial's job (tags of its run, not params): the study, the trial,
    # and where the study is stored (the job reports its validation metric there every epoch to prune).
    study: Optional[str] = None
    trial: Optional[int] = None
    study_storage: Optional[str] = None
    # Set by the grid sweeper's early stopping (hydra.sweeper.halving) on a job to train only up to this
    # epoch (a rung) and pause there, its run SCHEDULED, until its cell's runs are compared.
    pause_at: Optional[int] = None

    group: ClassVar[str] = "sweep"
    constraints: ClassVar[dict] = {
        "rerun": Flag(),
        "progress": Options(PROGRESS_STYLES),
        "study": Text(optional=True, max_length=MAX_NAME_LENGTH),
        "trial": Interval(int, 0, None, optional=True, message="must be a trial number >= 0"),
        "study_storage": Text(optional=True, uri=True),
        "pause_at": Interval(int, 1, None, optional=True, message="must be an epoch >= 1"),
    }


PAUSE_AT_BY_HAND = (
    "sweep.pause_at is set on each job by the grid's early stopping; "
    "to stop runs early, give hydra.sweeper.halving.rungs (e.g. [1,3]) in a sweep (-m)"
)


@dataclass
class ReportConfig(Checked):
    out_dir: str = "${fnn_sweep_home:}/reports"
    sweep_id: Optional[str] = None  # None: the latest sweep; "all": every finished run
    after_sweep: bool = True  # write the report at the end of every multirun
    register_best: Optional[str] = None  # a model name: register the selection's best model under it

    group: ClassVar[str] = "report"
    constraints: ClassVar[dict] = {
        "out_dir": Text(),
        "sweep_id": Text(optional=True, max_length=MAX_NAME_LENGTH),
        "after_sweep": Flag(),
        "register_best": Text(
            optional=True,
            max_length=MAX_NAME_LENGTH,
            pattern=MODEL_NAME_PATTERN,
            message="a model name cannot contain '/' or ':' nor be '.' or '..'",
        ),
    }


@dataclass
class Config(Checked):
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

    constraints: ClassVar[dict] = {"quiet": Flag(), "verbose": Flag()}  # the groups check their own fields


@dataclass
class ReportAppConfig(Checked):
    """``python -m pipeline.report``: where the runs are and where the report goes."""

    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    constraints: ClassVar[dict] = {}  # the groups check their own fields


SCHEMAS = (
    DatasetConfig,
    ModelConfig,
    SGDConfig,
    AdamConfig,
    TrainConfig,
    ComputeConfig,
    MlflowConfig,
    SweepConfig,
    ReportConfig,
    Config,
    ReportAppConfig,
)


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(name="schema", node=Config)
    store.store(name="report_schema", node=ReportAppConfig)
    store.store(group="dataset", name="schema", node=DatasetConfig)
    for name, schema in OPTIMIZER_SCHEMAS.items():
        store.store(group="optimizer", name=f"{name}_schema", node=schema)


def _unknown_keys(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, list[str]]]:
    """(dotted key, its schema's keys) for each key of ``node`` that its schema has no field for."""
    schema = OmegaConf.get_type(node)
    known = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else None
    for key, value in node.items_ex(resolve=False):
        name = f"{prefix}{key!s}"
        if known is not None and key not in known:
            yield name, known
        elif isinstance(value, DictConfig):
            yield from _unknown_keys(value, f"{name}.")


def validate(cfg: DictConfig) -> Any:
    """Check every value of a composed config; returns the typed ``Config``.

    Raises
    ------
    ConfigError
        One line naming the key, the bad value and the valid choices or range.
    """
    unknown = next(_unknown_keys(cfg), None)
    if unknown is not None:  # +train.paitence=3 adds a key OmegaConf keeps and no job reads
        key, known = unknown
        raise ConfigError(
            f"{key} is not a setting (added with +?); {key.rpartition('.')[0] or 'the config'} has: {', '.join(known)}"
        )
    try:
        return OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # OmegaConf wraps errors raised in __post_init__
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(str(exc).splitlines()[0]) from None
