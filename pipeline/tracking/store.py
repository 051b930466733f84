"""The tracking store: its URI, the experiment, and how a user browses it."""

import atexit
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from pipeline.credentials import connect_uri, redact, set_by_variable
from pipeline.errors import InputError
from pipeline.runtime import compat
from pipeline.tracking import sqlite_wal, store_template


class StoreError(InputError):
    """The tracking store cannot be reached or used; the message names it and says what to do."""


def absolute_tracking_uri(uri: str) -> str:
    """The URI to connect with: credentials taken from the command line put back
    (``pipeline.credentials``), a sqlite:/// path made absolute so every process and `mlflow ui` find
    the same file. Print it only through ``shown``."""
    uri = connect_uri(uri)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).expanduser().resolve())
    return uri


def shown(uri: str) -> str:
    """A URI as it may be printed, logged or saved: absolute, with no password or token."""
    return redact(absolute_tracking_uri(uri))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI, else None."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


class Store:
    """The tracking store a process works with: the URI it connects with, and its client.

    Opened once per process (``open_store``) and passed to whatever reads or writes runs. Print
    ``shown``, never ``uri``, which may hold a database password.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @cached_property
    def client(self) -> MlflowClient:
        # Made at first use: MLflow's client creates a SQLite store as it is made, and only
        # prepare_experiment may create one (under its lock, so two processes never race).
        return MlflowClient(self.uri)

    @property
    def shown(self) -> str:
        return redact(self.uri)

    def __repr__(self) -> str:
        return f"Store({self.shown!r})"


_open_stores: dict = {}


def open_store(tracking_uri: str) -> Store:
    """The ``Store`` of a configured tracking URI, the same object for every call in a process.

    Creates nothing. MLflow's fluent API, which a job's run, its artifacts and its model are logged
    through, is pointed at it too: this is the only place that sets MLflow's tracking URI.
    """
    uri = absolute_tracking_uri(tracking_uri)
    if uri not in _open_stores:
        if not _open_stores:
            atexit.register(fold_write_ahead_logs)
        _open_stores[uri] = Store(uri)
    # MLflow also exports the URI it is given to MLFLOW_TRACKING_URI, for child processes. The user's
    # variable stays as it was: it is the default of mlflow.tracking_uri for every config composed
    # after this (a sequential launcher's jobs, the report's), and a URI to connect with may hold a
    # password (a database's) that no child process should inherit.
    users = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if users is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = users
    return _open_stores[uri]


def fold_write_ahead_logs() -> None:
    """At the command's exit: each SQLite store it opened back in its rollback journal, the write-ahead
    log folded into the file (``sqlite_wal.end_write_ahead_log``), so that the file alone holds every
    run and opens anywhere. MLflow's idle connections of this process are closed first."""
    for uri in list(_open_stores):
        path = sqlite_path(uri)
        if path is not None:
            compat.close_idle_sql_connections(path)
            sqlite_wal.end_write_ahead_log(path)


def use_store(mlflow_cfg: Any) -> str:
    """``open_store`` for an ``mlflow`` config; returns the absolute URI."""
    return open_store(mlflow_cfg.tracking_uri).uri


def prepare_experiment(mlflow_cfg: Any) -> str:
    """Create (or upgrade) the store and the experiment if needed; return the experiment id.

    Processes creating one SQLite file at once can corrupt it, so for SQLite
    this holds a lock file beside the database while it works. A SQLite file on this machine's
    disk is put in write-ahead-log mode (``sqlite_wal``).

    Raises
    ------
    StoreError
        The store cannot be created or read (a directory that cannot be written, not a database).
    """
    uri = use_store(mlflow_cfg)
    path = sqlite_path(uri)
    with store_errors(uri):
        if path is None:
            return _experiment(uri, mlflow_cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            new = not path.exists()
            store_template.seed_new_store(path)
            try:
                experiment_id = _experiment(uri, mlflow_cfg)  # made or upgraded the store if it had to
                compat.index_tag_values(path)
                sqlite_wal.use_write_ahead_log(path)
                return experiment_id
            except BaseException:
                if new:  # a store made only for an experiment that could not be made: leave nothing
                    path.unlink(missing_ok=True)
                raise


@contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Errors of a store that cannot be created or read become one ``StoreError`` line naming it."""
    try:
        yield
    except (OSError, MlflowException, SQLAlchemyError) as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        # The directory hint only where the file is the problem, not for a value MLflow refused.
        hint = (
            "; check that its directory can be written and the file is an MLflow SQLite store"
            if sqlite_path(uri) is not None and not isinstance(exc, MlflowException)
            else ""
        )
        detail = redact((lines or [type(exc).__name__])[0][:300])
        raise StoreError(f"cannot use the tracking store {shown(uri)}: {detail}{hint}") from None


def _experiment(uri: str, mlflow_cfg: Any) -> str:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(mlflow_cfg.experiment_name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return client.create_experiment(
        mlflow_cfg.experiment_name, artifact_location=artifact_location(uri, mlflow_cfg.artifact_location)
    )


def artifact_location(tracking_uri: str, configured: str | None) -> str | None:
    """Where a new experiment's artifacts go: ``configured``; else beside a SQLite file; else None,
    so that a tracking server uses its own artifact store and no client writes to its own disk."""
    if configured:
        configured = connect_uri(configured)
        return configured if urlparse(configured).scheme else Path(configured).expanduser().resolve().as_uri()
    path = sqlite_path(tracking_uri)
    return (path.parent / "mlartifacts").as_uri() if path is not None else None


def existing_experiment(mlflow_cfg: Any) -> str | None:
    """The experiment's id if the store and the experiment exist (creating nothing), else None."""
    experiment_id = find_experiment(mlflow_cfg.tracking_uri, mlflow_cfg.experiment_name)
    if experiment_id is not None:
        use_store(mlflow_cfg)
    return experiment_id


def find_experiment(tracking_uri: str, experiment_name: str) -> str | None:
    """The id of an existing experiment, or None. Never creates a store (MLflow creates a SQLite file
    on first contact) or an experiment: only ``prepare_experiment`` does."""
    uri = absolute_tracking_uri(tracking_uri)
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        return None
    with store_errors(uri):
        experiment = MlflowClient(uri).get_experiment_by_name(experiment_name)
    return None if experiment is None else experiment.experiment_id


UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default


def ui_command(tracking_uri: str) -> str:
    uri = shown(tracking_uri)
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def _ui_base(tracking_uri: str) -> str:
    uri = shown(tracking_uri)
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_ADDRESS


def models_page(tracking_uri: str, model_name: str) -> str:
    """The UI address of a registered model."""
    return f"{_ui_base(tracking_uri)}/#/models/{model_name}"


def runs_page(tracking_uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """The UI address of an experiment's runs table (the bare experiment page shows a GenAI overview)
    or, with ``run_id``, of one run."""
    base = _ui_base(tracking_uri)
    if run_id:
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


PROBE_SECONDS = 5  # one try, no retries: MLflow's own retries take minutes on a dead server


def probe(tracking_uri: str) -> None:
    """Fail fast, in one line, when a tracking server does not answer or refuses our credentials.

    Credentials come from MLflow's own sources (MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD, or ~/.mlflow/credentials), never from the config.
    """
    uri = absolute_tracking_uri(tracking_uri)
    if not uri.startswith(("http://", "https://")):
        return
    with _single_quick_request():
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        except MlflowException as exc:
            raise StoreError(_server_problem(uri, str(exc))) from None


@contextmanager
def _single_quick_request() -> Iterator[None]:
    """MLflow's HTTP settings for this process: one try, a short timeout; restored afterwards."""
    settings = {MLFLOW_HTTP_REQUEST_MAX_RETRIES: 0, MLFLOW_HTTP_REQUEST_TIMEOUT: PROBE_SECONDS}
    saved = {variable: variable.get_raw() for variable in settings}
    for variable, value in settings.items():
        variable.set(value)
    try:
        yield
    finally:
        for variable, value in saved.items():
            variable.unset() if value is None else variable.set(value)


def _server_problem(uri: str, message: str) -> str:
    note = set_by_variable(uri)
    uri = shown(uri)
    if "401" in message:
        return (
            f"the tracking server {uri} refused the credentials (HTTP 401): set MLFLOW_TRACKING_USERNAME "
            f"and MLFLOW_TRACKING_PASSWORD, or put them in ~/.mlflow/credentials{note}"
        )
    if "403" in message:
        return f"the tracking server {uri} does not let this user write (HTTP 403): ask its admin for EDIT rights{note}"
    return f"no tracking server answers at {uri} within {PROBE_SECONDS} s: start it, or fix mlflow.tracking_uri{note}"
