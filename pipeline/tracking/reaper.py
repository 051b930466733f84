"""Runs left RUNNING by a process that died (SIGKILL, an OOM kill, a power loss) end KILLED.

A run records its host and process id (tags) and a heartbeat (its epoch
metrics' times). A RUNNING run is reaped when its process on this host no
longer exists, or, for another host, when its last heartbeat is older than
``stale_after_s``. A live run on another host is never touched.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from pipeline.tracking import layout

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipeline.tracking.store import Store

HEARTBEAT_METRIC = layout.EPOCH_METRICS["epoch_time_s"]
log = logging.getLogger("pipeline")


def process_alive(pid: int | str) -> bool:
    """Whether process ``pid`` of this host still runs; one that has exited but is not yet reaped (a
    zombie) does not: a killed command's workers wait 1-2 s for init to reap them here."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:  # someone else's process: alive, unless a zombie
        pass
    return not _zombie(int(pid))


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:  # "pid (name) state ...": the name may hold spaces
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):  # no /proc (not Linux): os.kill's answer stands
        return False
    return state in ("Z", "X")


def still_running(client: MlflowClient, run_id: str) -> bool:
    """The run's status now, not when the runs were read: only a run its process left RUNNING is reaped."""
    return client.get_run(run_id).info.status == "RUNNING"


def heartbeat(client: MlflowClient, run_id: str, started: float) -> float:
    """Seconds since the epoch of the run's last sign of life: its last epoch metric, else its start."""
    history = client.get_metric_history(run_id, HEARTBEAT_METRIC)
    return max([started, *(m.timestamp / 1000 for m in history)])


def reap(
    store: Store, experiment_id: str, stale_after_s: float, skip: Collection[str] = ()
) -> list[tuple[str, str, str]]:
    """End KILLED every RUNNING run of the experiment whose process is gone; returns [(name, id, reason)].

    ``skip``: run ids never to touch (the calling sweep's own parent run).
    """
    client = store.client
    running = layout.read_runs(store, [experiment_id], filter_string=layout.status_is("RUNNING"))
    here, now, reaped = socket.gethostname(), time.time(), []
    for run in running.itertuples():
        if run.run_id in skip:
            continue
        children = running[running["parent_run_id"] == run.run_id]
        last = max(
            [
                heartbeat(client, run.run_id, run.start_time.timestamp()),
                *(heartbeat(client, c.run_id, c.start_time.timestamp()) for c in children.itertuples()),
            ]
        )
        if run.hostname == here:
            if process_alive(run.pid):
                continue
            reason = f"reaped: process {run.pid} on {here} is gone"
        elif now - last > stale_after_s:
            reason = f"reaped: no heartbeat from {run.hostname or 'an unknown host'} for {now - last:.0f} s"
        else:
            continue
        # Read when it ran: the run may have ended since (its process ending after it: a sweep's
        # worker exits once its sweep is done). With the process gone, nothing can end it after this.
        if not still_running(client, run.run_id):
            continue
        client.set_tag(run.run_id, layout.TAG_FAILURE, reason)
        client.set_terminated(run.run_id, "KILLED", end_time=int(last * 1000))
        reaped.append((run.run_name, run.run_id, reason))
    return reaped


def log_reaped(reaped: Iterable[tuple[str, str, str]]) -> None:
    for name, run_id, reason in reaped:
        log.info(f"{name} ({run_id[:8]}): was RUNNING, now KILLED ({reason})")


def end_orphaned_jobs(store: Store, parent_run_id: str, reason: str, grace_s: float = 10.0) -> list[str]:
    """End KILLED a sweep's job runs left RUNNING by a process of this host that is gone.

    Live processes get ``grace_s`` seconds to end their own runs first. Returns the runs ended.
    """
    from pipeline.tracking.runs import sweep_jobs

    host, deadline = socket.gethostname(), time.monotonic() + grace_s
    while True:
        jobs = sweep_jobs(store, parent_run_id)
        running = jobs[(jobs["status"] == "RUNNING") & (jobs["hostname"] == host)]
        if not any(process_alive(job.pid) for job in running.itertuples()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    client = store.client
    ended = [job.run_id for job in running.itertuples() if not process_alive(job.pid)]
    ended = [run_id for run_id in ended if still_running(client, run_id)]  # as in ``reap``
    for run_id in ended:
        client.set_tag(run_id, layout.TAG_FAILURE, reason)
        client.set_terminated(run_id, "KILLED")
    return ended
