"""How many jobs run at once on this machine, and how many BLAS threads each job gets.

On a machine with C usable cores, C jobs with one BLAS thread each train as
fast per job as one job with C threads: parallel jobs multiply throughput.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threadpoolctl import threadpool_limits


def usable_cores() -> int:
    """The cores this process may run on (a container's or a SLURM job's share, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def jobs_at_once(launcher_config: Any) -> int:
    """How many jobs the configured launcher runs at once on one machine.

    joblib: ``n_jobs`` (-1: one per core). Ray: as many as the machine has CPUs for, ``num_cpus``
    (default 1) each. Others (basic, submitit) run one job per process or allocation: 1.
    """
    if launcher_config is None:
        return 1
    if "ray" in launcher_config:
        remote = launcher_config.ray.get("remote") or {}
        return max(1, usable_cores() // int(remote.get("num_cpus") or 1))
    n_jobs = launcher_config.get("n_jobs", 1)
    return usable_cores() if n_jobs == -1 else max(1, int(n_jobs or 1))


def check_launcher(launcher_config: Any) -> None:
    """The joblib launcher's ``n_jobs`` is a number of workers (>= 1) or -1 (one per core)."""
    from pipeline.constraints import ConfigError

    n_jobs = (launcher_config or {}).get("n_jobs", 1)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or not (n_jobs >= 1 or n_jobs == -1):
        raise ConfigError(
            f"hydra.launcher.n_jobs={n_jobs} is not valid: must be a number of workers >= 1, or -1 for one per core"
        )


def blas_threads(configured: int | None, jobs_at_once: int) -> int:
    """``configured`` when set, else the usable cores shared among the jobs running at once (at least 1)."""
    return configured or max(1, usable_cores() // max(1, jobs_at_once))


def start_workers(launcher_config: Any) -> None:
    """Have a joblib launcher's workers fork from ``fork_server`` (started now if it is not yet).

    Returns at once. Other launchers, and systems without fork, keep loky's own worker processes.
    """
    if launcher_config is None or "n_jobs" not in launcher_config or "ray" in launcher_config:
        return
    from pipeline.runtime import compat, fork_server

    if fork_server.available():
        fork_server.start()
        compat.loky_forks_from_server()


def stop_workers() -> None:
    """Let the sweep's loky workers exit now, while the summary and report are written, instead of
    at interpreter exit (where shutting them down added 1-2 s after the report)."""
    from pipeline.runtime import compat

    executor = compat.existing_loky_executor()  # never start an executor only to stop it
    if executor is not None:
        executor.shutdown(wait=False)


@contextmanager
def limited_blas(threads: int) -> Iterator[None]:
    """NumPy's BLAS uses ``threads`` threads inside the block, whatever the launcher set."""
    with threadpool_limits(limits=threads, user_api="blas"):
        yield
