"""Hydra callback around a multirun: pre-flight checks, the sweep's parent run, the summary.

Before any job: the pre-flight checks (``preflight``); then the store and
experiment are created, and the parent run is tagged with the sweep directory that Hydra copies into every job's
config. Jobs find it there; nothing travels in the environment.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback

from pipeline.runtime import failure, lifecycle, workers
from pipeline.runtime.termination import termination
from pipeline.sweep import preflight, search
from pipeline.sweep.progress import SweepProgress
from pipeline.tracking import layout, reaper, runs, store

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("pipeline")


def _after_the_runs(step, what_failed, again):
    """Run a step that follows the sweep (report, registration); its failure is one logged line, since
    the runs are safe in MLflow and ``again`` redoes it. Returns the step's result, or None."""
    try:
        return step()
    except Exception as exc:
        if not isinstance(exc, (failure.InputError, OSError)):  # a bad path or input says all in one line
            log.exception(what_failed)
        detail = str(exc) if isinstance(exc, failure.InputError) else failure.one_line(exc)
        log.error(f"{what_failed}: {detail} (again with: {again})")
        return None


def _import_matplotlib():
    """Matplotlib for the report, imported and warmed up (``figures.warm_up``); one that cannot be
    imported is the report's one line, after the runs."""
    with contextlib.suppress(Exception):
        from pipeline.report import figures

        figures.warm_up()


class SweepTracking(Callback):
    """Opens the sweep's parent run before the jobs and closes it, with a summary, after them."""

    def __init__(self):
        self.parent_run_id = None
        self.parent_open = False  # until the parent run has ended: a signal or exit ends it KILLED
        self.progress = None
        self.store = None  # the tracking store's handle (tracking.store.Store), opened in pre-flight
        self.matplotlib = None  # the thread that makes the report's Matplotlib ready

    def __getstate__(self):
        # Launchers pickle Hydra's context, callbacks included, for each job: the monitor and the
        # store's client stay here (a job opens its own store from its config).
        return {**self.__dict__, "progress": None, "store": None, "matplotlib": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        lifecycle.app_started()
        # Hydra turns a callback's exceptions into warnings: every failure here must stop the sweep.
        try:
            termination.install()  # from here on, signals end the sweep cleanly (parent run KILLED)
            settings, planned = preflight.check(config)
            experiment_id = store.prepare_experiment(settings.mlflow)
            self.store = store.open_store(settings.mlflow.tracking_uri)
            reaper.log_reaped(reaper.reap(self.store, experiment_id, settings.mlflow.stale_after_s))  # resumed later
        except Exception as exc:
            failure.abort(exc)
        self.experiment_id, self.stale_after_s = experiment_id, settings.mlflow.stale_after_s
        self.tracking_uri = store.absolute_tracking_uri(settings.mlflow.tracking_uri)
        self.experiment_name = settings.mlflow.experiment_name
        self.sweep_id = f"sweep-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        overrides = " ".join(config.hydra.overrides.task) or "(none)"
        at_once = workers.jobs_at_once(config.hydra.get("launcher"))
        self.parent_run_id = runs.start_sweep(
            self.store,
            experiment_id,
            self.sweep_id,
            str(config.hydra.sweep.dir),
            planned,
            at_once,
            f"{planned or 'sweeper-defined'} jobs; overrides: {overrides}",
        )
        self.parent_open = True
        lifecycle.close_on_exit(self._end_open_sweep)
        log.info(
            f"Sweep {self.sweep_id}: {planned or 'sweeper-defined'} jobs, {at_once} at a time, "
            f"experiment '{self.experiment_name}' in {store.shown(self.tracking_uri)}"
        )
        style = settings.sweep.progress
        bar = style == "bar" or (style == "auto" and sys.stdout.isatty())
        if bar:  # the launchers' line per job ("#41 : model.activation=relu ..."): the bar says it all
            logging.getLogger("hydra_plugins").setLevel(logging.WARNING)
        self.progress = SweepProgress(self.store, self.parent_run_id, planned, bar=bar).start()
        if config.report.after_sweep:
            # The report's Matplotlib (0.35 s of CPU to import, 0.3-0.5 s more for a first figure), made
            # ready while the workers start, not after the last job. Not a daemon: the command's exit
            # waits for it rather than cut an import short; the report waits for it too (pyplot is
            # not thread-safe).
            self.matplotlib = threading.Thread(target=_import_matplotlib, name="fnn-sweep-matplotlib")
            self.matplotlib.start()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        termination.check()  # a signal while the jobs ran: the entry point ends the parent KILLED, not FINISHED
        workers.stop_workers()  # every job has returned
        try:
            jobs = self._close_sweep()
        except Exception as exc:  # Hydra would only warn; the entry point ends the parent run FAILED
            failure.abort(exc)
        lifecycle.closed(self._end_open_sweep)
        if search.is_search_sweeper(config.hydra.sweeper):
            self._summarize_study(config)
        report_dir = self._write_report(config, jobs) if config.report.after_sweep and len(jobs) else None
        if config.report.register_best:
            self._register_best(config.report.register_best)
        log.info(
            f"Runs: {store.shown(self.tracking_uri)} "
            f"(experiment '{self.experiment_name}', parent run '{self.sweep_id}')"
        )
        log.info(
            f"See them: {store.ui_command(self.tracking_uri)}, then open "
            f"{store.runs_page(self.tracking_uri, self.experiment_id)} and expand '{self.sweep_id}'"
        )
        if report_dir is not None:
            log.info(f"Report: {report_dir}/report.md")
        failed = jobs[jobs["status"] != "FINISHED"]
        if not failed.empty:
            failure.abort(failure.JobsFailed(len(failed), len(jobs)))

    def _close_sweep(self):
        """End the parent run with its jobs' counts; log the summary; returns the jobs."""
        reaped = reaper.reap(self.store, self.experiment_id, self.stale_after_s, skip={self.parent_run_id})
        jobs = runs.sweep_jobs(self.store, self.parent_run_id)
        self.progress.stop(jobs)  # the jobs no poll reported yet, from ``jobs``
        reaper.log_reaped(reaped)
        counts = jobs["status"].value_counts().to_dict()
        failed = jobs[jobs["status"] != "FINISHED"]
        reused = int((jobs["role"] == layout.ROLE_REUSED).sum())
        runs.end_sweep(
            self.store, self.parent_run_id, "FINISHED" if failed.empty else "FAILED", {**counts, "REUSED": reused}
        )
        self.parent_open = False

        log.info(
            f"Sweep {self.sweep_id} done: {len(jobs)} jobs"
            + "".join(f", {n} {status}" for status, n in sorted(counts.items()))
            + (f" ({reused} reused: finished before, not trained again)" if reused else "")
        )
        for row in failed.itertuples():
            log.info(f"  {row.run_name}: {row.status} ({row.failure_reason or 'no reason recorded'})")
        return jobs

    def _summarize_study(self, config):
        """A search's study after its trials: by state, and its best trial."""

        def summary():
            space = search.parse_space(config.hydra.sweeper.get("params"), config.hydra.overrides.task)
            for line in search.summary_lines(search.plan(config.hydra.sweeper, config, space)):
                log.info(line)

        _after_the_runs(summary, "study not summarized", "optuna-dashboard on the study's storage")

    def _write_report(self, config, jobs):
        """Write the sweep's report from ``jobs`` (its job runs, as the summary read them); returns its
        directory, or None when it could not be written."""
        from pipeline.report import write_report

        def report():
            start = time.perf_counter()
            if self.matplotlib is not None:
                self.matplotlib.join()
            out_dir = write_report(self.store, self.experiment_name, self.sweep_id, config.report.out_dir, jobs)
            runs.log_report_time(self.store, self.parent_run_id, time.perf_counter() - start)
            return out_dir

        return _after_the_runs(report, "report not written", "python -m pipeline.report")

    def _register_best(self, name):
        from pipeline.report import register_best_model

        _after_the_runs(
            lambda: register_best_model(self.store, self.experiment_name, self.sweep_id, name),
            "model not registered",
            f"python -m pipeline.report report.sweep_id={self.sweep_id} report.register_best={name}",
        )

    def _end_open_sweep(self, reason, status):
        """The command ends before the sweep's summary (a signal, an error): end the parent run ``status``
        with ``reason``, and its jobs whose processes are gone KILLED; say so in one line."""
        if self.progress is not None:
            self.progress.stop()
        if not self.parent_open:
            return
        reaper.end_orphaned_jobs(self.store, self.parent_run_id, f"{reason} (its process ended first)")
        runs.end_sweep(self.store, self.parent_run_id, status, {}, reason=reason)
        self.parent_open = False
        counts = runs.sweep_jobs(self.store, self.parent_run_id)["status"].value_counts().to_dict()
        jobs = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no job had started"
        if status == "KILLED":
            log.info(
                f"Sweep {self.sweep_id} stopped by {termination.signal_name()}: {jobs}; "
                "the same command resumes it (finished jobs are not trained again)"
            )
        else:
            log.error(f"Sweep {self.sweep_id} ended {status} ({jobs}): {reason}; the same command resumes it")
