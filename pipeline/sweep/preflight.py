"""A sweep's pre-flight: everything that can be checked before any run exists, so that bad input is
one line and exit 2 with nothing recorded.

In order: the launcher's settings; the workers' fork server starts importing (on the other core);
every job's config is composed and validated (a search's: each dimension at its extremes; a grid's
early stopping: its settings against the grid); each
distinct dataset is loaded once and every job's batch size and memory checked against it; the
report's folder; the tracking server answers; a search's settings, and its study's storage answers.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf.errors import OmegaConfBaseException

from pipeline.config import PAUSE_AT_BY_HAND, validate
from pipeline.constraints import ConfigError
from pipeline.data import load_dataset
from pipeline.errors import InputError
from pipeline.job.inputs import check_fits, dataset_key
from pipeline.report.publish import check_out_dir
from pipeline.runtime import workers
from pipeline.runtime.folders import unmakeable, what_to_fix
from pipeline.runtime.termination import termination
from pipeline.sweep import halving, search
from pipeline.sweep.composition import compose_app
from pipeline.sweep.grid import app_overrides, is_grid_sweeper, job_overrides, sweep_axes
from pipeline.tracking import store

if TYPE_CHECKING:
    from omegaconf import DictConfig


def check(config: DictConfig) -> tuple[Any, int | None]:
    """Check the sweep ``config`` (Hydra's, with ``hydra``); returns (the first job's settings, planned
    jobs or None when the sweeper decides them as it goes).

    Raises
    ------
    InputError
        The first bad value, as one line.
    """
    launcher = config.hydra.get("launcher")
    workers.check_launcher(launcher)
    check_hydra_settings(config.hydra)
    workers.start_workers(launcher)  # their fork server imports meanwhile
    every_job, planned = validate_jobs(config)
    load_datasets(every_job)
    settings = every_job[0]
    if settings.report.after_sweep:
        check_out_dir(settings.report.out_dir)  # a report that could not be written: say so now
    store.probe(settings.mlflow.tracking_uri)
    if search.is_search_sweeper(config.hydra.sweeper):  # its settings, and the study's storage answers
        space = search.parse_space(config.hydra.sweeper.get("params"), config.hydra.overrides.task)
        planned = search.trials_left(search.plan(config.hydra.sweeper, settings, space))
    return settings, planned


def validate_jobs(config: DictConfig) -> tuple[list, int | None]:
    """Compose and validate every job's config; returns (their settings, planned jobs or None).

    Raises
    ------
    InputError
        The first bad value, as one line.
    """
    sweeper = config.hydra.sweeper
    if search.is_search_sweeper(sweeper):  # every value a trial can get: each dimension's extremes
        jobs = search.parse_space(sweeper.get("params"), config.hydra.overrides.task).check_jobs()
    else:
        jobs = job_overrides(sweeper.get("params"), config.hydra.overrides.task)
    settings = [validate(job) for job in compose_app(config.hydra.job.config_name, map(app_overrides, jobs))]
    if any(job.sweep.pause_at is not None for job in settings):
        raise InputError(PAUSE_AT_BY_HAND)
    if is_grid_sweeper(sweeper):
        early_stopping = halving.CellHalving.from_sweeper(sweeper.get("halving"))
        if early_stopping is not None:
            early_stopping.check(sweep_axes(sweeper.get("params"), config.hydra.overrides.task), settings)
    return settings, (len(jobs) if is_grid_sweeper(sweeper) else None)


def load_datasets(settings: Sequence[Any]) -> None:
    """Load the data of every distinct (dataset, val_fraction, seed) the jobs use, once, and check each
    job's batch size against it: a corrupt file, a split too small or a label out of range is found
    before any run, and the caches (the decoded arrays, the split, its hash) are warm for the jobs."""
    jobs_by_data: dict[tuple, list] = {}
    for job in settings:
        jobs_by_data.setdefault(dataset_key(job), []).append(job)
    with termination.interruptible():
        for jobs in jobs_by_data.values():
            data = load_dataset(vars(jobs[0].dataset), jobs[0].train.val_fraction, jobs[0].train.seed)
            if data.hash_file is not None:  # kept beside a cached split: the workers read it, not hash
                data.content_hash()
            for job in jobs:
                check_fits(job, data)


def check_hydra_settings(hydra: Any) -> None:
    """Hydra's own settings that it applies only once the jobs run, after the parent run exists: the
    sweep's directory, each job's logging (``hydra.job_logging``) and the grid's batch size.

    Raises
    ------
    ConfigError
        The first bad setting, as one line naming it.
    """
    problem = unmakeable(hydra.sweep.dir)
    if problem is not None:
        fix = what_to_fix(hydra.sweep.dir, "choose another directory")
        raise ConfigError(f"hydra.sweep.dir={hydra.sweep.dir} cannot be made: {problem}; {fix}")
    _check_logging("hydra.job_logging", hydra.job_logging)
    if is_grid_sweeper(hydra.sweeper):
        size = hydra.sweeper.get("max_batch_size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not (size >= 1 or size == -1)):
            raise ConfigError(
                f"hydra.sweeper.max_batch_size={size} is not valid: must be a number of jobs >= 1, "
                "or null (or -1) for one batch"
            )


def _check_logging(name: str, settings: Any) -> None:
    """A ``logging.config.dictConfig`` config as Hydra will apply it: its levels exist, its handlers'
    and formatters' classes import, and a handler's file can be made (when its path is known now)."""
    if settings is None:
        return
    parts = [("root", settings.get("root"))]
    parts += [(f"loggers.{key}", value) for key, value in (settings.get("loggers") or {}).items()]
    parts += [(f"handlers.{key}", value) for key, value in (settings.get("handlers") or {}).items()]
    parts += [(f"formatters.{key}", value) for key, value in (settings.get("formatters") or {}).items()]
    for part, node in parts:
        if node is None:
            continue
        level = node.get("level")
        if isinstance(level, str) and not isinstance(logging.getLevelName(level), int):
            names = "CRITICAL, ERROR, WARNING, INFO, DEBUG, NOTSET"
            raise ConfigError(f"{name}.{part}.level={level} is not valid: not a logging level; choose one of: {names}")
        target = node.get("class") or node.get("()")
        if isinstance(target, str) and not _importable(target):
            raise ConfigError(f"{name}.{part}: class {target} cannot be imported")
        if part.startswith("handlers."):
            try:
                filename = node.get("filename")
            except OmegaConfBaseException:  # a job's own path (its output directory): known in the job only
                filename = None
            problem = unmakeable(Path(filename).parent) if filename else None
            if problem is not None:
                raise ConfigError(f"{name}.{part}.filename={filename} cannot be written: {problem}")


def _importable(dotted: str) -> bool:
    module, _, attribute = dotted.rpartition(".")
    try:
        return bool(module) and hasattr(importlib.import_module(module), attribute)
    except ImportError:
        return False
