"""The tracking store: its URI, the experiment, and how a user browses it."""

from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow.tracking import MlflowClient


def absolute_tracking_uri(uri):
    """Make a sqlite:/// URI absolute, so every process and `mlflow ui` find the same file."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).expanduser().resolve())
    return uri


def sqlite_path(uri):
    """The database file of a sqlite:/// URI, else None."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def use_store(mlflow_cfg):
    """Point MLflow's fluent API at the configured store; returns the absolute URI."""
    uri = absolute_tracking_uri(mlflow_cfg.tracking_uri)
    mlflow.set_tracking_uri(uri)
    return uri


def prepare_experiment(mlflow_cfg):
    """Create (or upgrade) the store and the experiment if needed; return the experiment id.

    The sweep callback calls this in the launching process before any job
    starts: several processes creating one SQLite file at once can corrupt it.
    """
    uri = use_store(mlflow_cfg)
    path = sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(mlflow_cfg.experiment_name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    location = mlflow_cfg.artifact_location
    if location and not urlparse(location).scheme:
        location = Path(location).expanduser().resolve().as_uri()
    return client.create_experiment(mlflow_cfg.experiment_name, artifact_location=location)


def find_experiment(tracking_uri, experiment_name):
    """The id of an existing experiment, or None."""
    experiment = MlflowClient(absolute_tracking_uri(tracking_uri)).get_experiment_by_name(experiment_name)
    return None if experiment is None else experiment.experiment_id


def ui_command(tracking_uri):
    uri = absolute_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"
