"""The MLflow run layout: the only module that names params, metrics, tags and artifacts.

A sweep is one parent run (tag ``sweep_id``, ``fnn_sweep.role=sweep``) with
one nested run per job; a single run has no parent.
"""

import os
import platform
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from pipeline.machine import blas_info, cpu_model

# Params logged at top level as well as under their dotted config keys, for filtering in the UI.
TOP_LEVEL_PARAMS = {
    "activation": "model.activation",
    "hidden_neurons": "model.hidden_neurons",
    "hidden_layers": "model.hidden_layers",
    "lr": "optimizer.lr",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "seed": "train.seed",
    "dataset": "dataset.name",
}
EPOCH_METRICS = {  # fnn_core history key -> MLflow metric name
    "loss": "train_loss",
    "accuracy": "train_accuracy",
    "val_loss": "val_loss",
    "val_accuracy": "val_accuracy",
    "val_mse": "val_mse",
    "val_rmse": "val_rmse",
    "epoch_time_s": "epoch_time_s",
}
TAG_SWEEP_ID = "sweep_id"
TAG_ROLE = "fnn_sweep.role"  # "sweep" (parent) or "job"
TAG_FAILURE = "failure_reason"
ENV_PARENT_RUN = "FNN_SWEEP_PARENT_RUN_ID"
ENV_SWEEP_ID = "FNN_SWEEP_ID"
ENV_EXPERIMENT = "FNN_SWEEP_EXPERIMENT_ID"


def absolute_tracking_uri(uri):
    """Make a sqlite:/// URI absolute, so every process and `mlflow ui` find the same file."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).expanduser().resolve())
    return uri


def sqlite_path(uri):
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def prepare_store(mlflow_cfg):
    """Create (or upgrade) the store and the experiment once; return the experiment id.

    Call this in the launching process before any job starts: several
    processes creating one SQLite file at once can corrupt it.
    """
    uri = absolute_tracking_uri(mlflow_cfg.tracking_uri)
    path = sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
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


def ui_command(tracking_uri):
    uri = absolute_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


# ---- sweeps (parent runs) ----

def start_sweep(experiment_id, sweep_id, description):
    """Create the parent run of a sweep; returns its run id."""
    run = MlflowClient().create_run(
        experiment_id, run_name=sweep_id, tags={TAG_SWEEP_ID: sweep_id, TAG_ROLE: "sweep",
                                                "mlflow.note.content": description})
    return run.info.run_id


def end_sweep(run_id, status, summary):
    client = MlflowClient()
    for key, value in summary.items():
        client.log_param(run_id, key, value)
    client.set_terminated(run_id, status)


def sweep_jobs(parent_run_id):
    """The runs nested under a sweep's parent run (pandas DataFrame)."""
    parent = MlflowClient().get_run(parent_run_id)
    return mlflow.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")


# ---- jobs ----

def flatten(mapping, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@contextmanager
def job_run(experiment_id, run_name, resolved_config):
    """Open the MLflow run of one job, nested under the sweep when there is one.

    ``with`` guarantees the run ends FINISHED, FAILED when an exception
    leaves the block, or KILLED on SIGTERM / Ctrl-C: never RUNNING.
    """
    parent = os.environ.get(ENV_PARENT_RUN)
    tags = {TAG_ROLE: "job"}
    if parent:
        tags[TAG_SWEEP_ID] = os.environ.get(ENV_SWEEP_ID, "")
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, parent_run_id=parent or None,
                          tags=tags) as run:
        flat = flatten(resolved_config)
        params = {**flat, **{name: flat[key] for name, key in TOP_LEVEL_PARAMS.items() if key in flat}}
        mlflow.log_params({key: "None" if value is None else value for key, value in params.items()})
        try:
            yield run
        except (SystemExit, KeyboardInterrupt):
            mlflow.set_tag(TAG_FAILURE, "terminated by a signal")
            mlflow.end_run("KILLED")
            raise


def environment_tags(project_dir):
    tags = {"hostname": socket.gethostname(), "python": platform.python_version(), "numpy": np.__version__,
            "cpu": cpu_model(), "cpu_count": str(os.cpu_count()), "blas": blas_info()}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_dir, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode == 0:
            tags["mlflow.source.git.commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return tags


def log_epoch(epoch, logs):
    """One MLflow call per epoch, step = epoch (counted from 0)."""
    mlflow.log_metrics({EPOCH_METRICS[k]: float(v) for k, v in logs.items() if k in EPOCH_METRICS}, step=epoch)


def log_failure(reason):
    mlflow.set_tag(TAG_FAILURE, reason[:5000])
