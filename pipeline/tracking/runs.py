"""Runs: a sweep's parent run, and one job's run nested under it (or alone).

Jobs find their sweep in the store (``find_sweep``), never in the
environment, so a job on another machine or in a reused worker process
needs only its composed config.
"""

import os
import platform
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.git_utils import get_git_commit

from pipeline.machine import blas_info, cpu_model
from pipeline.tracking import layout

PROJECT_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sweep:
    """A sweep's parent run as a job sees it."""

    run_id: str
    sweep_id: str
    planned_jobs: int | None  # None when the sweeper decides as it goes


# ---- sweeps (parent runs) ----

def start_sweep(experiment_id, sweep_id, sweep_dir, planned_jobs, description):
    """Create the parent run of a sweep; returns its run id."""
    client = MlflowClient()
    run = client.create_run(experiment_id, run_name=sweep_id, tags={
        layout.TAG_ROLE: layout.ROLE_SWEEP, layout.TAG_SWEEP_ID: sweep_id,
        layout.TAG_SWEEP_DIR: str(sweep_dir), layout.TAG_NOTE: description})
    if planned_jobs is not None:
        client.log_metric(run.info.run_id, layout.SWEEP_PLANNED, planned_jobs)
    return run.info.run_id


def find_sweep(experiment_id, sweep_dir):
    """The newest running parent run whose sweep directory is ``sweep_dir``, or None."""
    parents = mlflow.search_runs(
        [experiment_id], output_format="list", order_by=[layout.START_TIME_NEWEST_FIRST],
        filter_string=f"{layout.tag_is(layout.TAG_ROLE, layout.ROLE_SWEEP)} and {layout.status_is('RUNNING')}")
    for parent in parents:
        if parent.data.tags.get(layout.TAG_SWEEP_DIR) == str(sweep_dir):
            planned = parent.data.metrics.get(layout.SWEEP_PLANNED)
            return Sweep(parent.info.run_id, parent.data.tags[layout.TAG_SWEEP_ID],
                         None if planned is None else int(planned))
    return None


def sweep_jobs(parent_run_id):
    """The job runs nested under a sweep's parent run (a ``layout.read_runs`` frame)."""
    parent = MlflowClient().get_run(parent_run_id)
    return layout.read_runs([parent.info.experiment_id],
                            filter_string=layout.tag_is(layout.TAG_PARENT, parent_run_id))


def end_sweep(run_id, status, counts):
    """Close the parent run with the jobs' status counts as metrics ({"FINISHED": 11, ...})."""
    client = MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[
        mlflow.entities.Metric(layout.status_count_metric(s), float(n), now, 0) for s, n in counts.items()])
    client.set_terminated(run_id, status)


# ---- jobs ----

@contextmanager
def job_run(experiment_id, run_name, resolved_config, sweep=None, choices=None):
    """Open the MLflow run of one job, nested under ``sweep`` when given.

    ``choices`` are Hydra's config-group choices ({"optimizer": "adam"}), tagged ``choice.<group>``.

    ``with`` guarantees the run ends FINISHED, FAILED when an exception
    leaves the block, or KILLED on SIGTERM / Ctrl-C: never RUNNING. The run
    is created explicitly, so a stray ``MLFLOW_RUN_ID`` is never reopened.
    """
    run_tags = {layout.TAG_ROLE: layout.ROLE_JOB, **environment_tags(),
                **{f"{layout.CHOICE_TAG_PREFIX}{group}": str(option) for group, option in (choices or {}).items()}}
    if sweep is not None:
        run_tags.update({layout.TAG_PARENT: sweep.run_id, layout.TAG_SWEEP_ID: sweep.sweep_id})
    created = MlflowClient().create_run(experiment_id, run_name=run_name, tags=resolve_tags(run_tags))
    with mlflow.start_run(run_id=created.info.run_id) as run:
        mlflow.log_params(layout.job_params(resolved_config))
        try:
            yield run
        except (SystemExit, KeyboardInterrupt):
            mlflow.set_tag(layout.TAG_FAILURE, "terminated by a signal")
            mlflow.end_run("KILLED")
            raise


def environment_tags():
    """Where and with what the job ran: host, Python, NumPy, CPU, BLAS, git commit."""
    tags = dict(zip(layout.ENVIRONMENT_TAGS, (socket.gethostname(), platform.python_version(), np.__version__,
                                              cpu_model(), str(os.cpu_count()), blas_info())))
    # MLflow tags the commit of the entry point's file, which a worker process does not have.
    commit = get_git_commit(PROJECT_DIR)
    if commit:
        tags[layout.TAG_GIT_COMMIT] = commit
    return tags


def log_epoch(epoch, logs):
    """One MLflow call per epoch, step = epoch (counted from 0)."""
    mlflow.log_metrics({layout.EPOCH_METRICS[k]: float(v) for k, v in logs.items() if k in layout.EPOCH_METRICS},
                       step=epoch)


def log_results(training_time, epochs_run, test_metrics, stop_reason=None):
    mlflow.log_metrics({layout.TRAINING_TIME: training_time, layout.EPOCHS_RUN: epochs_run,
                        **{layout.test_metric(k): v for k, v in test_metrics.items()}})
    if stop_reason:
        mlflow.set_tag(layout.TAG_STOP_REASON, stop_reason)


def log_dataset(data):
    mlflow.set_tags({layout.TAG_DATASET: data.name, layout.TAG_DATASET_HASH: data.content_hash(),
                     layout.TAG_DATASET_SOURCE: data.source})


def log_failure(reason):
    mlflow.set_tag(layout.TAG_FAILURE, reason[:5000])
