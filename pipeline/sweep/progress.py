"""A sweep's progress, read from the store: a live bar in a terminal, else one line per finished job.

It runs in the launching process and reads only the tracking store, so it
reports jobs the same whether they run in this process, in worker processes
or on other machines, and their output never interleaves.

In a terminal (``sweep.progress=auto``, or ``bar``) one bar shows done of planned, failed, running,
the rate and the time left; only failed jobs get a line of their own. Elsewhere (CI, SLURM logs,
a pipe; or ``sweep.progress=lines``) each finished job gets a line and, every ``summary_s``, a sweep
line, as a log file needs.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

import pandas as pd
from tqdm import tqdm

from pipeline.runtime import failure
from pipeline.tracking import layout, runs

if TYPE_CHECKING:
    from pipeline.tracking.store import Store

log = logging.getLogger("pipeline")
ENDED = ("FINISHED", "FAILED", "KILLED")
# Runs of other machines may carry end times a little behind this one's clock: read back that far.
END_TIME_SLACK_MS = 10_000


def job_line(done: int, planned: int | None, job: layout.RunBrief) -> str:
    """'[3/12] relu-128  test accuracy 93.52%  training 1.2 s' or '[4/12] tanh-32  FAILED: reason';
    a search's trials say their number ('[3/40] trial 17 relu-200 ...') and when they were pruned."""
    trial = f"trial {job.tag('trial')} " if job.tag("trial") is not None else ""
    head = f"[{done}/{planned or '?'}] {trial}{job.tag('run_name')}"
    if job.tag("role") == layout.ROLE_REUSED:
        return f"{head}  skipped: finished in run {job.tag('reused_run')}"
    if job.status != "FINISHED":
        return f"{head}  {job.status}: {job.tag('failure_reason') or 'no reason recorded'}"
    if layout.TEST_ACCURACY in job.metrics:
        quality = f"test accuracy {job.metrics[layout.TEST_ACCURACY]:.2%}"
    elif layout.TEST_MSE in job.metrics:
        quality = f"test mse {job.metrics[layout.TEST_MSE]:.4f}"
    else:
        quality = "no test metric"
    pruned = f"  pruned after epoch {job.tag('pruned')}" if job.tag("pruned") is not None else ""
    return f"{head}  {quality}  training {job.metrics.get(layout.TRAINING_TIME, float('nan')):.1f} s{pruned}"


def sweep_line(done: int, failed: int, running: int, paused: int, planned: int | None, elapsed: float) -> str:
    """'sweep: 5/12 done (1 failed), 3 paused at a rung, 2 running, 41 s elapsed, about 57 s left'."""
    text = f"sweep: {done}/{planned or '?'} done"
    text += f" ({failed} failed)" if failed else ""
    text += f", {paused} paused at a rung" if paused else ""
    text += f", {running} running, {elapsed:.0f} s elapsed"
    if planned and 0 < done < planned:  # throughput so far, whatever the parallelism
        text += f", about {elapsed / done * (planned - done):.0f} s left"
    return text


class SweepProgress:
    """Polls the sweep's job runs every ``poll_s`` seconds in a daemon thread; a sweep line every ``summary_s``."""

    def __init__(
        self,
        store: Store,
        parent_run_id: str,
        planned: int | None,
        poll_s: float = 1.0,
        summary_s: float = 10.0,
        bar: bool = False,
    ):
        self.store, self.parent_run_id, self.planned = store, parent_run_id, planned
        self.bar = _bar(planned) if bar else None
        self.poll_s, self.summary_s = poll_s, summary_s
        self.reported: dict[str, int] = {}  # run id -> its end time (ms since the epoch)
        self.failed = 0
        self.paused: set[str] = set()  # runs paused at a rung of the grid's early stopping, not yet compared
        self._newest_end = 0  # ms since the epoch: the newest end time seen
        self._experiment_id: str | None = None
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sweep-progress", daemon=True)

    def start(self) -> SweepProgress:
        self._thread.start()
        return self

    def stop(self, jobs: pd.DataFrame | None = None) -> None:
        """Stop polling; with ``jobs``, the sweep's job runs as its end read them (a ``layout.read_runs``
        frame), print every ended job no poll printed, from them: the store is not read again
        (1,000 runs: 2.8 s)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if jobs is not None:
            ended = jobs[jobs["status"].isin(ENDED) & jobs["end_time"].notna() & ~jobs["run_id"].isin(self.reported)]
            self._report([_brief(row) for _, row in ended.sort_values("end_time", kind="stable").iterrows()])
            if self.bar is not None:
                running = int((jobs["status"] == "RUNNING").sum())  # another host's, not yet reaped
                self.bar.set_postfix_str(f"{self.failed} failed, {running} running", refresh=False)
                self.bar.update(len(self.reported) - self.bar.n)
        if self.bar is not None:
            self.bar.close()  # the summary lines follow below it
            self.bar = None

    def _watch(self):
        last_summary = time.monotonic()
        while not self._stop.wait(self.poll_s):
            summary_due = self.bar is None and time.monotonic() - last_summary >= self.summary_s
            try:
                # The running jobs are a second query: only the bar and the sweep line show them.
                counts = self.poll(count_running=self.bar is not None or summary_due)
            except Exception as exc:  # a busy store: try again at the next poll, never break the sweep
                log.debug(f"progress: {failure.one_line(exc)}")
                continue
            if summary_due:
                log.info(sweep_line(*counts, self.planned, time.monotonic() - self.started))
                last_summary = time.monotonic()

    def poll(self, count_running: bool = True) -> tuple[int, int, int, int]:
        """Print a line for each job that ended since the last poll; returns (done, failed, running;
        0 without ``count_running``, paused at a rung).

        Each poll reads only the running runs and those that ended lately (end times within
        ``END_TIME_SLACK_MS`` of the newest seen, for clocks of other machines) and were not reported
        yet, not the whole sweep: reading every run each second costs a core on a sweep of a few
        hundred jobs.
        """
        if self._experiment_id is None:
            self._experiment_id = self.store.client.get_run(self.parent_run_id).info.experiment_id
        since = self._newest_end - END_TIME_SLACK_MS
        ended_lately = layout.ended_since(since)
        # Runs reported already but still inside the window are left out by id: a sweep of thousands
        # ends several jobs a second, and reading each one's params again every poll costs a core.
        seen = [run_id for run_id, end in self.reported.items() if end >= since]
        not_seen = layout.run_id_not_in(seen) if seen else None
        jobs = runs.sweep_job_briefs(self.store, self._experiment_id, self.parent_run_id, ended_lately, not_seen)
        ended = [job for job in jobs if job.status in ENDED and job.end_time is not None]
        self._report(ended)
        self._newest_end = max([self._newest_end, *(job.end_time or 0 for job in ended)])
        self.paused |= {job.run_id for job in jobs if job.status == layout.PAUSED}
        if not count_running:
            running_jobs = []
        else:  # a running run has no end time, so the query above left it out
            running_jobs = runs.sweep_job_briefs(
                self.store, self._experiment_id, self.parent_run_id, layout.status_is("RUNNING")
            )
        self.paused -= {job.run_id for job in [*ended, *running_jobs]}  # continued, or compared and stopped
        running = len(running_jobs)
        if self.bar is not None:
            paused = f"{len(self.paused)} paused, " if self.paused else ""
            self.bar.set_postfix_str(f"{self.failed} failed, {paused}{running} running", refresh=False)
            self.bar.update(len(self.reported) - self.bar.n)
        return len(self.reported), self.failed, running, len(self.paused)

    def _report(self, ended: list[layout.RunBrief]) -> None:
        """A line for each job of ``ended`` not reported yet (in a terminal, for failed ones only)."""
        for job in ended:
            if job.run_id not in self.reported:
                self.reported[job.run_id] = job.end_time or 0
                self.failed += job.status != "FINISHED"
                if self.bar is None:
                    log.info(job_line(len(self.reported), self.planned, job))
                elif job.status != "FINISHED":  # above the bar, which is drawn again below it
                    with self.bar.external_write_mode():
                        log.info(job_line(len(self.reported), self.planned, job))


# The metrics a job's line shows.
LINE_METRICS = (layout.TEST_ACCURACY, layout.TEST_MSE, layout.TRAINING_TIME)


def _brief(row: pd.Series) -> layout.RunBrief:
    """A ``layout.read_runs`` row as the brief a poll reads: its tags, and the metrics its line shows."""
    tags = {tag: row[name] for name, tag in layout.TAG_COLUMNS.items() if name in row and row[name] is not None}
    metrics = {name: float(row[name]) for name in LINE_METRICS if name in row and pd.notna(row[name])}
    end = None if pd.isna(row["end_time"]) else int(row["end_time"].timestamp() * 1000)
    return layout.RunBrief(row["run_id"], row["status"], end, tags, metrics)


def _bar(planned: int | None) -> tqdm:
    """'sweep  37%|███▋      | 35/96 [00:12<00:21, 2.9 job/s, 1 failed, 2 running]' on the console."""
    try:  # a terminal that reports no size (a bare pty) gets a fixed width, not an empty bar
        sized = os.get_terminal_size(sys.stdout.fileno()).columns > 0
    except (OSError, ValueError):
        sized = False
    return tqdm(
        total=planned,
        desc="sweep",
        unit=" job",
        file=sys.stdout,
        dynamic_ncols=sized,
        ncols=None if sized else 100,
        smoothing=0.1,
    )
