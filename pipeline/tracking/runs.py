"""Runs: a sweep's parent run, and one job's run nested under it (or alone).

Jobs find their sweep in the store (``find_sweep``), never in the
environment, so a job on another machine or in a reused worker process
needs only its composed config.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np

from pipeline.runtime import compat
from pipeline.runtime.machine import blas_info, cpu_model
from pipeline.tracking import layout

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.data.dataset import Dataset
    from pipeline.tracking.store import Store

PROJECT_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sweep:
    """A sweep's parent run as a job sees it."""

    run_id: str
    sweep_id: str
    planned_jobs: int | None  # None when the sweeper decides as it goes
    jobs_at_once: int = 1  # on one machine, as the launcher runs them


# ---- sweeps (parent runs) ----


def start_sweep(
    store: Store,
    experiment_id: str,
    sweep_id: str,
    sweep_dir: str,
    planned_jobs: int | None,
    jobs_at_once: int,
    description: str,
) -> str:
    """Create the parent run of a sweep in ``store`` (a ``tracking.store.Store``); returns its run id."""
    client = store.client
    run = client.create_run(
        experiment_id,
        run_name=sweep_id,
        tags={
            layout.TAG_ROLE: layout.ROLE_SWEEP,
            layout.TAG_SWEEP_ID: sweep_id,
            layout.TAG_SWEEP_DIR: str(sweep_dir),
            layout.TAG_NOTE: description,
            **environment_tags(),
        },
    )
    counts = {layout.SWEEP_JOBS_AT_ONCE: jobs_at_once}
    if planned_jobs is not None:
        counts[layout.SWEEP_PLANNED] = planned_jobs
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[mlflow.entities.Metric(k, float(v), now, 0) for k, v in counts.items()])
    return run.info.run_id


def find_sweep(store: Store, experiment_id: str, sweep_dir: str) -> Sweep | None:
    """The newest running parent run whose sweep directory is ``sweep_dir``, or None."""
    parents = store.client.search_runs(
        [experiment_id],
        order_by=[layout.START_TIME_NEWEST_FIRST],
        filter_string=f"{layout.tag_is(layout.TAG_ROLE, layout.ROLE_SWEEP)} and {layout.status_is('RUNNING')}",
    )
    for parent in parents:
        if parent.data.tags.get(layout.TAG_SWEEP_DIR) == str(sweep_dir):
            planned = parent.data.metrics.get(layout.SWEEP_PLANNED)
            return Sweep(
                parent.info.run_id,
                parent.data.tags[layout.TAG_SWEEP_ID],
                None if planned is None else int(planned),
                int(parent.data.metrics.get(layout.SWEEP_JOBS_AT_ONCE, 1)),
            )
    return None


def sweep_jobs(store: Store, parent_run_id: str, *conditions: str | None) -> pd.DataFrame:
    """The job runs nested under a sweep's parent run (a ``layout.read_runs`` frame).

    conditions: more ``search_runs`` filter clauses, joined with AND (None ones are left out).
    """
    parent = store.client.get_run(parent_run_id)
    clauses = [layout.tag_is(layout.TAG_PARENT, parent_run_id), *filter(None, conditions)]
    return layout.read_runs(store, [parent.info.experiment_id], filter_string=" and ".join(clauses))


def sweep_job_briefs(
    store: Store, experiment_id: str, parent_run_id: str, *conditions: str | None
) -> list[layout.RunBrief]:
    """``sweep_jobs`` as ``layout.RunBrief``s (no frame), for a poll; the caller knows the experiment."""
    clauses = [layout.tag_is(layout.TAG_PARENT, parent_run_id), *filter(None, conditions)]
    return layout.read_briefs(store, [experiment_id], filter_string=" and ".join(clauses))


def sweep_runs_by_hash(store: Store, experiment_id: str, parent_run_id: str) -> dict[str, tuple[str, str]]:
    """{config hash: (run id, status)} of a sweep's job runs; a reuse marker stands for the run it reused."""
    found = {}
    for brief in sweep_job_briefs(store, experiment_id, parent_run_id):  # oldest end first: the newest wins
        config_hash = brief.tag("config_hash")
        if config_hash is None:
            continue
        if brief.tag("role") == layout.ROLE_REUSED and brief.tag("reused_run"):
            found[config_hash] = (str(brief.tag("reused_run")), "FINISHED")
        else:
            found[config_hash] = (brief.run_id, brief.status)
    return found


def end_sweep(store: Store, run_id: str, status: str, counts: Mapping[str, int], reason: str | None = None) -> None:
    """Close the parent run with the jobs' status counts as metrics ({"FINISHED": 11, ...})
    and, when it ends early, the reason."""
    client = store.client
    if reason:
        client.set_tag(run_id, layout.TAG_FAILURE, reason[:5000])
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[mlflow.entities.Metric(layout.status_count_metric(s), float(n), now, 0) for s, n in counts.items()],
    )
    client.set_terminated(run_id, status)


# ---- jobs ----


@contextmanager
def job_run(
    store: Store,
    experiment_id: str,
    run_name: str,
    resolved_config: dict,
    config_hash: str,
    sweep: Sweep | None = None,
    choices: Mapping[str, str] | None = None,
    paused_run_id: str | None = None,
    data: Dataset | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open the MLflow run of one job, nested under ``sweep`` when given.

    ``choices`` are Hydra's config-group choices ({"optimizer": "adam"}), tagged ``choice.<group>``.
    ``data``: the job's dataset, tagged with the run's other tags (``dataset_tags``); None for bad input.
    ``paused_run_id``: reopen that paused run (``layout.PAUSED``) to continue it, nested under
    ``sweep`` now, instead of creating one; its params stay as they were logged.

    ``with`` guarantees the run ends FINISHED (or paused, ``pause``), FAILED when an exception
    leaves the block, or KILLED on SIGTERM / Ctrl-C: never RUNNING. The run
    is created explicitly, so a stray ``MLFLOW_RUN_ID`` is never reopened.
    """
    run_tags = {
        layout.TAG_ROLE: layout.ROLE_JOB,
        layout.TAG_CONFIG_HASH: config_hash,
        **environment_tags(),
        **layout.trial_tags(resolved_config),
        **{f"{layout.CHOICE_TAG_PREFIX}{group}": str(option) for group, option in (choices or {}).items()},
        **(dataset_tags(data) if data is not None else {}),
    }
    if sweep is not None:
        run_tags.update({layout.TAG_PARENT: sweep.run_id, layout.TAG_SWEEP_ID: sweep.sweep_id})
    if paused_run_id is None:
        created = store.client.create_run(experiment_id, run_name=run_name, tags=compat.source_tags(run_tags))
        compat.remember_artifact_location(created.info.run_id, created.info.artifact_uri, store.uri)
        opened = compat.activate_new_run(created)  # as mlflow.start_run(run_id=...), less its 3 round trips
    else:  # this process (pid, host: the reaper's) and this sweep hold it now
        store.client.log_batch(paused_run_id, tags=[mlflow.entities.RunTag(k, str(v)) for k, v in run_tags.items()])
        opened = mlflow.start_run(run_id=paused_run_id)  # RUNNING again
    with opened as run:
        if paused_run_id is None:
            mlflow.log_params(layout.job_params(resolved_config))
        try:
            yield run
        except (SystemExit, KeyboardInterrupt):
            mlflow.set_tag(layout.TAG_FAILURE, "terminated by a signal")
            mlflow.end_run("KILLED")
            raise


def pause() -> None:
    """End the active run paused (``layout.PAUSED``): its checkpoint is logged, its cell not yet compared."""
    mlflow.end_run(layout.PAUSED)


@dataclass(frozen=True)
class Resumable:
    """A job run a job with the same config hash can stand on: FINISHED (reuse it) or paused (continue it)."""

    run_id: str
    status: str
    metrics: Mapping[str, float]


def resumable_run(
    store: Store, experiment_id: str, config_hash: str, paused_under: str | None = None
) -> Resumable | None:
    """The newest FINISHED job run with this config hash, else the newest paused one, else None;
    with ``paused_under`` (a sweep's parent run id) only a paused run that sweep holds.

    One query: MLflow filters a status by equality only, and a config has few runs."""
    found = list(
        store.client.search_runs(
            [experiment_id],
            max_results=100,
            order_by=[layout.START_TIME_NEWEST_FIRST],
            filter_string=f"{layout.tag_is(layout.TAG_CONFIG_HASH, config_hash)} "
            f"and {layout.tag_is(layout.TAG_ROLE, layout.ROLE_JOB)}",
        )
    )
    if paused_under is not None:
        found = [run for run in found if run.data.tags.get(layout.TAG_PARENT) == paused_under]
    for status in ("FINISHED", layout.PAUSED) if paused_under is None else (layout.PAUSED,):
        for run in found:
            if run.info.status == status:
                return Resumable(run.info.run_id, status, run.data.metrics)
    return None


def finished_run(store: Store, experiment_id: str, config_hash: str) -> tuple[str, dict[str, float]] | None:
    """The newest FINISHED job run with this config hash: (run id, its metrics), or None."""
    found = resumable_run(store, experiment_id, config_hash)
    return (found.run_id, dict(found.metrics)) if found is not None and found.status == "FINISHED" else None


def adopt(store: Store, run_id: str, sweep: Sweep) -> None:
    """Nest a paused run under ``sweep``, which compares it and continues or prunes it from now on."""
    store.client.log_batch(
        run_id,
        tags=[
            mlflow.entities.RunTag(layout.TAG_PARENT, sweep.run_id),
            mlflow.entities.RunTag(layout.TAG_SWEEP_ID, sweep.sweep_id),
        ],
    )


def metric_at(store: Store, run_id: str, metric: str, step: int) -> float:
    """The value of ``metric`` at ``step`` in the run's history (NaN when it has none there)."""
    values = [m.value for m in store.client.get_metric_history(run_id, metric) if m.step == step]
    return values[-1] if values else float("nan")


def prune_paused(store: Store, run_id: str, epochs_run: int, reason: str) -> None:
    """End a paused run FINISHED and ``pruned`` after ``epochs_run`` epochs, for ``reason``."""
    client = store.client
    client.log_batch(
        run_id,
        tags=[
            mlflow.entities.RunTag(layout.TAG_PRUNED, str(epochs_run)),
            mlflow.entities.RunTag(layout.TAG_STOP_REASON, reason[:5000]),
        ],
    )
    client.set_terminated(run_id, "FINISHED")


def record_reuse(
    store: Store,
    experiment_id: str,
    sweep: Sweep,
    run_name: str,
    config_hash: str,
    reused_run_id: str,
    tags: Mapping[str, str] | None = None,
) -> None:
    """A FINISHED marker run in ``sweep`` that stands for ``reused_run_id``: the job was not trained again.

    ``tags``: more tags (a search trial's study and number)."""
    client = store.client
    marker = client.create_run(
        experiment_id,
        run_name=f"{run_name} (reused)",
        tags={
            layout.TAG_ROLE: layout.ROLE_REUSED,
            layout.TAG_PARENT: sweep.run_id,
            layout.TAG_SWEEP_ID: sweep.sweep_id,
            layout.TAG_CONFIG_HASH: config_hash,
            layout.TAG_REUSED_RUN: reused_run_id,
            **environment_tags(),
            **(tags or {}),
        },
    )
    client.set_terminated(marker.info.run_id, "FINISHED")


def environment_tags() -> dict[str, str]:
    """Where and with what the job ran: host, process, Python, NumPy, CPU, BLAS, git commit."""
    tags = dict(
        zip(
            layout.ENVIRONMENT_TAGS,
            (
                socket.gethostname(),
                str(os.getpid()),
                platform.python_version(),
                np.__version__,
                cpu_model(),
                str(os.cpu_count()),
                blas_info(),
            ),
        )
    )
    # MLflow tags the commit of the entry point's file, which a worker process does not have.
    commit = compat.git_commit(PROJECT_DIR)
    if commit:
        tags[layout.TAG_GIT_COMMIT] = commit
    return tags


def log_epoch(epoch: int, logs: Mapping[str, float]) -> None:
    """One MLflow call per epoch, step = epoch (counted from 0)."""
    mlflow.log_metrics(
        {layout.EPOCH_METRICS[k]: float(v) for k, v in logs.items() if k in layout.EPOCH_METRICS}, step=epoch
    )


def log_results(
    tracking: Store,
    training_time: float,
    epochs_run: int,
    test_metrics: Mapping[str, float],
    stop_reason: str | None = None,
    phases: Mapping[str, float] | None = None,
    model_id: str | None = None,
) -> None:
    """The active run's results, linked to its logged model when ``model_id`` is given (the model's
    page shows them), its phase timings ({"data": 0.4, "model": 0.04}) and its stop reason: one write."""
    run_id = active_run().info.run_id
    now = int(time.time() * 1000)
    results = {
        layout.TRAINING_TIME: training_time,
        layout.EPOCHS_RUN: epochs_run,
        **{layout.test_metric(k): v for k, v in test_metrics.items()},
    }
    metrics = [mlflow.entities.Metric(k, float(v), now, 0, model_id=model_id) for k, v in results.items()]
    metrics += [mlflow.entities.Metric(layout.PHASE_METRICS[p], float(v), now, 0) for p, v in (phases or {}).items()]
    tags = [mlflow.entities.RunTag(layout.TAG_STOP_REASON, stop_reason)] if stop_reason else []
    tracking.client.log_batch(run_id, metrics=metrics, tags=tags)


def log_pruned(epochs_run: int) -> None:
    """Tag the active run as a pruned search trial that ran ``epochs_run`` epochs."""
    mlflow.set_tag(layout.TAG_PRUNED, str(epochs_run))


def log_report_time(store: Store, parent_run_id: str, seconds: float) -> None:
    store.client.log_metric(parent_run_id, layout.SWEEP_REPORT_TIME, seconds)


def dataset_tags(data: Dataset) -> dict[str, str]:
    """A job run's tags naming its dataset: name, content hash and source (``job_run`` sets them)."""
    return {
        layout.TAG_DATASET: data.name,
        layout.TAG_DATASET_HASH: data.content_hash(),
        layout.TAG_DATASET_SOURCE: data.source,
    }


def log_dataset(store: Store, data: Dataset) -> None:
    """Log the dataset as the active run's input (the UI's Dataset column and filter); ``job_run`` tagged it."""
    digest = data.content_hash()
    # The entity directly, not mlflow.data.from_numpy: that would hash the arrays again and profile one split.
    schema = {
        "mlflow_tensorspec": {
            "features": json.dumps(
                [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, data.n_features]}}]
            ),
            "targets": None,
        }
    }
    profile = {
        "train_rows": len(data.X_train),
        "validation_rows": len(data.X_val),
        "test_rows": len(data.X_test),
        "features": data.n_features,
    }
    if data.n_classes:
        profile["classes"] = data.n_classes
    source: dict[str, Any]
    if Path(data.source).is_dir():
        source_type, source = "local", {"uri": str(Path(data.source).resolve())}
    else:  # a loader (sklearn.datasets.load_digits) or a description
        source_type, source = "code", {"tags": {"source": data.source}}
    dataset = mlflow.entities.Dataset(
        name=data.name,
        digest=digest,
        source_type=source_type,
        source=json.dumps(source),
        schema=json.dumps(schema),
        profile=json.dumps(profile),
    )
    context = mlflow.entities.InputTag(compat.dataset_context_tag(), layout.DATASET_CONTEXT)
    inputs = [mlflow.entities.DatasetInput(dataset, tags=[context])]
    run_id = active_run().info.run_id
    try:
        store.client.log_inputs(run_id, datasets=inputs)
    except mlflow.MlflowException as exc:
        # MLflow's SQL store checks for the dataset, then inserts it: two jobs logging the same dataset
        # at once can both insert, and one fails on the unique key. Once it exists, logging links it.
        if "unique" not in str(exc).lower():
            raise
        store.client.log_inputs(run_id, datasets=inputs)


def active_run() -> mlflow.ActiveRun:
    """The job's run, which ``job_run`` opened: what its results, dataset and model are logged to."""
    active = mlflow.active_run()
    assert active is not None, "a job's results are logged inside job_run"
    return active


def log_failure(reason: str) -> None:
    mlflow.set_tag(layout.TAG_FAILURE, reason[:5000])
