"""Independent tasks shared with one forked child, on the core a single-threaded step leaves idle.

A sweep's end (the report's figures, about 1 s of Matplotlib) runs in the launching process alone
once the workers are gone, while the machine's other core waits. ``run_shared`` forks this process
once: the child runs a share of the tasks and sends back their results; this process runs the rest.
Forking copies what the tasks need (their data, Matplotlib already imported) at no cost.

A fork is safe only where no other thread may hold a lock the child would need, so it happens only
when every other thread is one known to take none (``LOCK_FREE_THREADS``); otherwise, with one usable
core, or where ``os.fork`` does not exist, every task runs here, in order, as without this module.
The child touches no store, no log and no inherited file but its pipe, resets SIGTERM and SIGINT to
their defaults (a signal ends it, not a handler written for this process), and leaves with
``os._exit``. Whatever it did not return (it failed, was killed, or a task raised) runs here
afterwards, so a task's result or exception is the same as in a run without the child. A signal
to this process changes nothing here either: as without the child, the step completes and the
command ends after it (``pipeline.runtime.lifecycle``); a Ctrl-C, which reaches the child too, ends
the child, and its share runs here.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.runtime.workers import usable_cores

# Threads that may be alive here and take no lock a child could need, by name (prefix):
# ``termination``'s forwarder (it sleeps, and reads a list of processes, between signals); tqdm's
# monitor (it takes tqdm's own lock, which the child never uses); the idle pool threads of MLflow's
# artifact repositories (an artifact read, such as the report's confusion matrix, waits for them
# before it returns, and their pool's locks are re-initialised in a child by concurrent.futures).
LOCK_FREE_THREADS = ("forward-signal", "tqdm_monitor", "MlflowLocalArtifactRepository", "MlflowArtifactsRepository")


def can_fork() -> bool:
    """True when a fork now is safe and useful: POSIX, two usable cores, no other thread but lock-free ones."""
    if not hasattr(os, "fork") or usable_cores() < 2:
        return False
    main = threading.main_thread()
    return threading.current_thread() is main and all(
        thread is main or thread.name.startswith(LOCK_FREE_THREADS) for thread in threading.enumerate()
    )


def run_shared(tasks: Sequence[Callable[[], Any]], costs: Sequence[float] | None = None) -> list[Any]:
    """Run ``tasks`` (no arguments, each independent of the others) and return their results in order.

    ``costs``: each task's expected time, relative (default 1 each): the child takes about half of
    the total, the longest tasks first. Results must pickle. A task's exception is raised here, as
    if the tasks had run in order in this process.
    """
    costs = list(costs) if costs is not None else [1.0] * len(tasks)
    if len(tasks) < 2 or not can_fork():
        return [task() for task in tasks]
    child_share = _child_share(costs)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(tasks, child_share, write_end)
    os.close(write_end)
    results: dict[int, Any] = {}
    child_done = False
    try:
        for index in range(len(tasks)):
            if index not in child_share:
                results[index] = tasks[index]()
        results.update(_child_results(read_end))
        child_done = True
    finally:
        os.close(read_end)
        if not child_done:  # a task raised here: its exception goes up, the child's work is not wanted
            _kill(pid)
        _reap(pid)
    for index in range(len(tasks)):  # what the child did not return, in order
        if index not in results:
            results[index] = tasks[index]()
    return [results[index] for index in range(len(tasks))]


def _child_share(costs: Sequence[float]) -> set[int]:
    """The tasks the child runs: longest first, each to the lighter of the two processes."""
    loads, share = [0.0, 0.0], set()
    for index in sorted(range(len(costs)), key=lambda i: -costs[i]):
        lighter = 0 if loads[0] <= loads[1] else 1
        loads[lighter] += costs[index]
        if lighter == 0:
            share.add(index)
    return share


def _child(tasks, share, write_end):
    """Run ``share`` and write {index: result} of those that returned; never returns."""
    status = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        done = {}
        for index in sorted(share):
            try:
                done[index] = tasks[index]()
            except BaseException:  # the parent runs it again and raises it there
                break
        with os.fdopen(write_end, "wb") as pipe:
            pickle.dump(done, pipe)
        status = 0
    finally:
        os._exit(status)


def _child_results(read_end: int) -> dict[int, Any]:
    """The child's {index: result}, or {} when it sent nothing whole (killed, failed)."""
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    try:
        return pickle.loads(b"".join(chunks))
    except Exception:
        return {}


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
