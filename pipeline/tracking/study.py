"""The Optuna study a search keeps beside the MLflow store: its storage and its pruners.

The sweeper asks and tells in the launching process; each trial's job reports its validation metric
every epoch to the same storage, from whatever process or machine runs it, and asks the pruner
whether to stop (``pipeline.job.pruning``). Optuna is imported at first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import credentials
from pipeline.constraints import ConfigError

if TYPE_CHECKING:
    import optuna

STUDY_FILE = "optuna.db"  # beside a SQLite MLflow store: Optuna's tables cannot share MLflow's database
USER_ATTR_RUN_ID = "mlflow_run_id"  # on each trial: the MLflow run it was trained in
_storages: dict[str, Any] = {}  # url -> RDBStorage: one engine per process


def pruner(name: str, settings: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """Optuna's pruner ``name`` (none: never prune, median, successive_halving, hyperband, wilcoxon) with ``settings``.

    Raises
    ------
    ConfigError
        An unknown name or setting.
    """
    import optuna

    classes = {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "wilcoxon": optuna.pruners.WilcoxonPruner,
    }
    return built("pruner", name, classes, settings)


def built(setting: str, name: str, classes: Mapping[str, Any], kwargs: Mapping[str, Any]) -> Any:
    """``classes[name](**kwargs)`` for ``hydra.sweeper.<setting>=name``.

    Raises
    ------
    ConfigError
        An unknown name, or keyword arguments its class refuses (``<setting>_settings``), as one line.
    """
    if name not in classes:
        raise ConfigError(f"hydra.sweeper.{setting}={name}: must be one of {', '.join(classes)}")
    try:
        return classes[name](**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"hydra.sweeper.{setting}_settings for {name}: {exc}") from None


def storage_url(setting: str | None, tracking_uri: str, home: str) -> str:
    """Where the study lives: ``setting`` (e.g. ``postgresql://...``), else ``optuna.db`` beside a
    SQLite MLflow store, else in ``home`` (an MLflow server's study is local unless set)."""
    if setting:
        return setting
    if tracking_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking_uri[len('sqlite:///') :]).parent / STUDY_FILE}"
    return f"sqlite:///{Path(home) / STUDY_FILE}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage at ``url`` (credentials taken from the command line restored).

    Raises
    ------
    InputError
        The storage does not answer or is not Optuna's.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study loaded: ours say what it did
    connect = credentials.connect_uri(url)
    # Workers report every epoch while the sweeper asks and tells: wait for SQLite's lock, never fail on it.
    engine = {"connect_args": {"timeout": 60}} if connect.startswith("sqlite") else {"pool_pre_ping": True}
    if url in _storages:
        return _storages[url]
    try:
        _storages[url] = optuna.storages.RDBStorage(connect, engine_kwargs=engine)
    except Exception as exc:
        raise ConfigError(
            f"hydra.sweeper.storage={credentials.redact(url)}: {str(exc).splitlines()[0][:300]}"
        ) from None
    return _storages[url]
