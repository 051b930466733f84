"""Hydra callback around a multirun: pre-flight checks, the MLflow store and parent run, the summary."""

import atexit
import logging
import os
import secrets
import sys
from datetime import datetime

from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from pipeline import tracking
from pipeline.config import ConfigError, validate
from pipeline.data import DataError
from pipeline.job import ENV_N_JOBS, dataset_for
from pipeline.termination import termination

log = logging.getLogger("pipeline")
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _fail(message):
    """One line on stderr and exit status 2: nothing has been trained or tracked."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def job_overrides(config):
    """Each job's overrides, as the basic sweeper will expand them (config grid, then command line)."""
    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(params + list(config.hydra.overrides.task))
    return BasicSweeper.split_arguments(parsed, None)[0]


class SweepTracking(Callback):
    """Before a sweep: validate every job's config, load the data once, create the
    store, the experiment and the parent run. After: close the parent run, write
    the report, print where the runs are."""

    def __init__(self):
        self.parent_run_id = None

    def on_multirun_start(self, config, **kwargs):
        basic = config.hydra.sweeper._target_ == BASIC_SWEEPER
        jobs = job_overrides(config) if basic else [list(config.hydra.overrides.task)]
        settings = None
        for overrides in jobs:
            app_overrides = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
            try:
                settings = validate(compose(config.hydra.job.config_name, overrides=app_overrides))
            except ConfigError as exc:
                _fail(exc)
        termination.install()  # from here on, signals end the sweep cleanly (parent run KILLED)
        try:
            with termination.interruptible():
                dataset_for(settings.dataset, settings.train)  # cached for in-process jobs
        except DataError as exc:
            _fail(exc)

        experiment_id = tracking.prepare_store(settings.mlflow)
        self.tracking_uri = tracking.absolute_tracking_uri(settings.mlflow.tracking_uri)
        self.sweep_id = f"sweep-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        overrides_text = " ".join(config.hydra.overrides.task) or "(none)"
        self.parent_run_id = tracking.start_sweep(
            experiment_id, self.sweep_id,
            f"{len(jobs) if basic else 'sweeper-defined'} jobs; overrides: {overrides_text}")
        os.environ.update({tracking.ENV_PARENT_RUN: self.parent_run_id, tracking.ENV_SWEEP_ID: self.sweep_id,
                           tracking.ENV_EXPERIMENT: experiment_id})
        if basic:
            os.environ[ENV_N_JOBS] = str(len(jobs))
        atexit.register(self._end_if_interrupted)
        log.info(f"Sweep {self.sweep_id}: {len(jobs) if basic else 'sweeper-defined'} jobs, "
                 f"experiment '{settings.mlflow.experiment_name}' in {self.tracking_uri}")

    def on_multirun_end(self, config, **kwargs):
        runs = tracking.sweep_jobs(self.parent_run_id)
        statuses = runs["status"].value_counts().to_dict() if len(runs) else {}
        failed = runs[runs["status"] != "FINISHED"] if len(runs) else runs
        tracking.end_sweep(self.parent_run_id, "FINISHED" if failed.empty else "FAILED",
                           {"n_runs": len(runs), **{f"n_{k.lower()}": v for k, v in statuses.items()}})
        self.parent_run_id = None
        for key in (tracking.ENV_PARENT_RUN, tracking.ENV_SWEEP_ID, tracking.ENV_EXPERIMENT, ENV_N_JOBS):
            os.environ.pop(key, None)

        log.info(f"Sweep {self.sweep_id} done: {len(runs)} runs, "
                 + ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())))
        for _, row in failed.iterrows():
            log.info(f"  {row['tags.mlflow.runName']}: {row['status']} "
                     f"({row.get('tags.' + tracking.TAG_FAILURE) or 'no reason recorded'})")
        if config.report.after_sweep:
            self._write_report(config)
        log.info(f"Runs: {self.tracking_uri} (experiment '{config.mlflow.experiment_name}', "
                 f"parent run '{self.sweep_id}')")
        log.info(f"Browse them: {tracking.ui_command(self.tracking_uri)}")
        if not failed.empty:
            sys.exit(1)  # every job ran; the exit status tells scripts that some failed

    def _write_report(self, config):
        try:
            from pipeline.report import write_report
        except ImportError:
            return
        try:
            out_dir = write_report(self.tracking_uri, config.mlflow.experiment_name, self.sweep_id,
                                   config.report.out_dir)
            log.info(f"Report: {out_dir}")
        except Exception as exc:  # the runs are safe in MLflow; the report can be regenerated
            log.error(f"report failed: {exc} (regenerate with: python -m pipeline.report)")

    def _end_if_interrupted(self):
        if self.parent_run_id is not None:
            tracking.end_sweep(self.parent_run_id, "KILLED", {})
            self.parent_run_id = None
