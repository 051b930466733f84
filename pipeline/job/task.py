"""One job: validate the config, load data, train, and record it all in one MLflow run.

A job needs only its composed config and the tracking store: inside a sweep
it finds the sweep's parent run by the sweep directory Hydra gave every job
(``hydra.sweep.dir``), so it runs the same in the launching process, a
reused worker process or on another machine.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.config import PAUSE_AT_BY_HAND, validate
from pipeline.job.context import JobContext
from pipeline.job.identity import identify, label_for, run_name
from pipeline.job.inputs import dataset_for
from pipeline.job.train import train_and_log
from pipeline.runtime import failure, lifecycle, workers
from pipeline.runtime.termination import termination
from pipeline.tracking import artifacts, layout, runs, store

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from pipeline.config import Config
    from pipeline.data.dataset import Dataset
    from pipeline.tracking.runs import Sweep
    from pipeline.tracking.store import Store

log = logging.getLogger("pipeline")
# (tracking URI, experiment, sweep dir) -> (experiment id, the sweep's parent run), found by this process.
_found_sweeps: dict[tuple, tuple] = {}


def run(cfg: DictConfig) -> float:
    """Hydra task: train one model; returns the final validation accuracy (NaN if the job failed).

    For regression it returns the final validation MSE. A job whose identical
    config already FINISHED in the experiment is skipped (``sweep.rerun=true``
    trains it again). Bad input in a single run stops it before any run
    exists; in a sweep it is the job's failure.
    """
    job = JobContext.current()
    termination.install()
    termination.check()  # a signal during the previous job of a sweep ends the sweep here
    return _sweep_job(cfg, job) if job.in_sweep else _single_run(cfg, job)


@dataclass
class Prepared:
    """A job ready to run: its checked settings and data, where it is recorded, and its identity."""

    settings: Config | None  # None: bad input, which the run records as its failure
    data: Dataset | None
    tracking: Store
    experiment_id: str
    sweep: Sweep | None  # None outside a sweep (or when the sweep's parent was not found)
    name: str
    label: str
    resolved: dict  # the config, resolved: the run's params and config.yaml
    identity: str  # resume's config hash
    phases: dict = field(default_factory=dict)  # seconds outside training, by phase
    paused_run_id: str | None = None  # a paused run of this config, continued from its checkpoint


def _single_run(cfg, job):
    """``python -m pipeline``: bad input of any kind is one line and exit 2, before any run exists."""
    try:
        settings = validate(cfg)
        if settings.sweep.pause_at is not None:
            raise failure.InputError(PAUSE_AT_BY_HAND)
        store.probe(cfg.mlflow.tracking_uri)
        experiment_id = store.existing_experiment(cfg.mlflow)  # None: a store to be made below
        tracking = store.open_store(cfg.mlflow.tracking_uri)
        name, resolved, identity = identify(cfg)
        label = label_for(name, job, None)
        if experiment_id is not None and not cfg.sweep.rerun:
            previous = runs.finished_run(tracking, experiment_id, identity)
            if previous is not None:
                return _reuse(*previous, tracking, experiment_id, None, name, resolved, identity, label, job)
        phases = {}
        data = _load(settings, phases)
        experiment_id = experiment_id or store.prepare_experiment(cfg.mlflow)
    except failure.InputError as exc:
        failure.abort(exc)
    prepared = Prepared(settings, data, tracking, experiment_id, None, name, label, resolved, identity, phases)
    closing_line = None

    def say_if_stopped(active):  # a signal ends the run KILLED (job_run); the entry point says so
        nonlocal closing_line
        lifecycle.close_on_exit(closing_line := _stopped_line(label, active.info.run_id))

    try:
        active, result = _run_tracked(prepared, job, on_open=say_if_stopped)
    except Exception as exc:
        log.error(failed_line(label, failure.one_line(exc)))
        lifecycle.closed(closing_line)  # said above
        failure.abort(failure.JobsFailed(1, 1))
    lifecycle.closed(closing_line)
    log.info(
        f"run {active.info.run_id} in {store.shown(cfg.mlflow.tracking_uri)}; "
        f"see it: {store.ui_command(cfg.mlflow.tracking_uri)}, then open "
        f"{store.runs_page(cfg.mlflow.tracking_uri, active.info.experiment_id, active.info.run_id)}"
    )
    return result


def _sweep_job(cfg, job):
    """A job of a sweep, in whatever process runs it: bad input the sweep's pre-flight could not see
    (a sampling sweeper, another machine) is recorded as this job's FAILED run, and the sweep goes on."""
    bad_input, settings, data, phases = None, None, None, {}
    try:
        settings = validate(cfg)
    except failure.InputError as exc:
        bad_input = exc
    lookups = time.perf_counter()
    try:
        tracking, experiment_id, sweep = _experiment_and_sweep(cfg, job)
    except store.StoreError as exc:
        log.error(failed_line(f"[{run_name(cfg.model)}]", str(exc)))  # no store to record it in
        return math.nan
    name, resolved, identity = identify(cfg)
    label = label_for(name, job, sweep)
    paused_run_id, previous = None, None
    if bad_input is None and not cfg.sweep.rerun:
        previous = runs.resumable_run(tracking, experiment_id, identity)
    elif bad_input is None and sweep is not None:
        # Trained again (sweep.rerun), but a run this sweep paused at a rung is continued.
        previous = runs.resumable_run(tracking, experiment_id, identity, paused_under=sweep.run_id)
    pause_at = settings.sweep.pause_at if settings is not None else None  # None: bad input, recorded below
    reuse = (tracking, experiment_id, sweep, name, resolved, identity, label, job, pause_at)
    if previous is not None and previous.status == "FINISHED":
        return _reuse(previous.run_id, previous.metrics, *reuse)
    if previous is not None:  # paused at a rung: continued from there
        paused_run_id = previous.run_id
        if pause_at is not None and previous.metrics.get(layout.EPOCHS_RUN, 0) >= pause_at:
            return _still_paused(previous, *reuse)
    phases["lookups"] = time.perf_counter() - lookups
    if bad_input is None:
        try:
            data = _load(settings, phases)
        except failure.InputError as exc:
            bad_input = exc
    prepared = Prepared(
        settings, data, tracking, experiment_id, sweep, name, label, resolved, identity, phases, paused_run_id
    )
    try:
        _, result = _run_tracked(prepared, job, bad_input=bad_input)
    except Exception as exc:
        job.summary_log.error(failed_line(label, failure.one_line(exc)))
        return math.nan
    return result


def _load(settings, phases):
    """The job's data (``dataset_for``), timed into ``phases``."""
    start = time.perf_counter()
    with termination.interruptible():  # no database writes while loading
        data = dataset_for(settings)
    phases["data"] = time.perf_counter() - start
    return data


def _run_tracked(prepared, job, bad_input=None, on_open=None):
    """The step both paths share: open the job's MLflow run and train in it; returns (run, result).

    A failure (``bad_input``, an exception, divergence) is recorded in the run, its reason as a tag
    and its traceback in ``job.log``, and raised again: the run ends FAILED.
    """
    sweep = prepared.sweep
    threads = workers.blas_threads(prepared.resolved["compute"]["blas_threads"], sweep.jobs_at_once if sweep else 1)
    prepared.resolved["compute"]["blas_threads"] = threads  # the number used, logged as a param
    opening = time.perf_counter()
    with runs.job_run(
        prepared.tracking,
        prepared.experiment_id,
        prepared.name,
        prepared.resolved,
        prepared.identity,
        sweep,
        job.choices,
        prepared.paused_run_id,
        prepared.data,
    ) as active:
        prepared.phases["run"] = time.perf_counter() - opening  # the run, its params and tags
        if on_open is not None:
            on_open(active)
        try:
            if bad_input is not None:
                raise bad_input
            with workers.limited_blas(threads):
                return active, train_and_log(prepared, job)
        except Exception as exc:
            runs.log_failure(failure.one_line(exc))
            artifacts.log_job_log(job.log_file, failure.log_traceback(exc))
            raise


def failed_line(label: str, reason: str) -> str:
    """A job's one console line when it fails: '[3/12 relu-128] FAILED: reason'."""
    return f"{label} FAILED: {reason}"


def _stopped_line(label, run_id):
    """A single run's closing line when the command ends before the run does (a signal)."""

    def closer(reason, status):
        log.info(f"{label} run {run_id} ended {status}: {reason}; the same command trains it again")

    return closer


def _experiment_and_sweep(cfg, job):
    """A sweep job's store (``tracking.store.Store``), experiment and sweep (None when the parent run is not
    found: the run is not nested)."""
    tracking = store.open_store(cfg.mlflow.tracking_uri)
    key = (cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name, job.sweep_dir)
    if key in _found_sweeps:  # a worker runs many jobs of one sweep: its parent run is found once
        return (tracking, *_found_sweeps[key])
    experiment_id = store.find_experiment(cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name)
    sweep = runs.find_sweep(tracking, experiment_id, job.sweep_dir) if experiment_id else None
    if sweep is not None:
        _found_sweeps[key] = (experiment_id, sweep)
    else:
        log.warning(f"no running sweep for {job.sweep_dir} in {cfg.mlflow.tracking_uri}: this job's run is not nested")
        experiment_id = experiment_id or store.prepare_experiment(cfg.mlflow)
    return tracking, experiment_id, sweep


def _reuse(run_id, metrics, tracking, experiment_id, sweep, name, resolved, identity, label, job, pause_at=None):
    """Skip a job whose identical config FINISHED in run ``run_id`` (with ``metrics``); returns its result:
    its final validation score, or with ``pause_at`` (a rung of the grid's early stopping) its score there."""
    if sweep is not None:
        runs.record_reuse(tracking, experiment_id, sweep, name, identity, run_id, layout.trial_tags(resolved))
    job.summary_log.info(f"{label} skipped: finished in run {run_id}")
    return _score(tracking, run_id, metrics, pause_at)


def _still_paused(previous, tracking, experiment_id, sweep, name, resolved, identity, label, job, pause_at):
    """A job whose run is already paused at or beyond ``pause_at``: this sweep compares it, untrained."""
    if sweep is not None:
        runs.adopt(tracking, previous.run_id, sweep)
    job.summary_log.info(f"{label} skipped: paused after epoch {pause_at} in run {previous.run_id}")
    return _score(tracking, previous.run_id, previous.metrics, pause_at)


def _score(tracking, run_id, metrics, pause_at):
    """A run's validation score (accuracy, or MSE for regression): its last, or its ``pause_at``-th epoch's."""
    for key in ("val_accuracy", "val_mse"):
        if layout.EPOCH_METRICS[key] in metrics:
            if pause_at is not None:
                return runs.metric_at(tracking, run_id, layout.EPOCH_METRICS[key], pause_at - 1)
            return metrics[layout.EPOCH_METRICS[key]]
    return metrics.get(layout.TEST_ACCURACY, metrics.get(layout.TEST_MSE, math.nan))
