"""How many jobs run at once on this machine, and how many BLAS threads each job gets.

On a machine with C usable cores, C jobs with one BLAS thread each train as
fast per job as one job with C threads: parallel jobs multiply throughput.
"""

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threadpoolctl import threadpool_limits

# Launchers whose settings are joblib.Parallel's (``hydra.launcher.*``): ours, the default, and Hydra's.
JOBLIB_LAUNCHERS = (
    "hydra_plugins.fnn_sweep.parallel_launcher.ParallelLauncher",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
)
MMAP_MODES = ("r+", "r", "w+", "c")


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
    """A joblib launcher's settings, each as joblib takes it, before any run exists: ``n_jobs`` a
    number of workers (>= 1) or -1 (one per core), and the rest (``joblib_problem``).

    Raises
    ------
    ConfigError
        The first bad setting, as one line naming it.
    """
    from pipeline.constraints import ConfigError

    n_jobs = (launcher_config or {}).get("n_jobs", 1)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or not (n_jobs >= 1 or n_jobs == -1):
        raise ConfigError(
            f"hydra.launcher.n_jobs={n_jobs} is not valid: must be a number of workers >= 1, or -1 for one per core"
        )
    if launcher_config is None or launcher_config.get("_target_") not in JOBLIB_LAUNCHERS:
        return
    workers = jobs_at_once(launcher_config)
    for key, value in joblib_settings(launcher_config).items():
        problem = joblib_problem(key, value, workers)
        if problem is not None:
            shown = "null" if value is None else value
            raise ConfigError(f"hydra.launcher.{key}={shown} is not valid: {problem}")


def joblib_settings(launcher_config: Any) -> dict[str, Any]:
    """``joblib.Parallel``'s arguments from a joblib launcher's config, as Hydra's joblib launcher makes
    them: the loky backend (its threading backend cannot run Hydra's jobs), numbers given as text read
    as numbers."""
    settings = {key: value for key, value in launcher_config.items() if key != "_target_"}
    settings["backend"] = "loky"
    for key in ("pre_dispatch", "batch_size", "max_nbytes"):
        with contextlib.suppress(ValueError):
            if settings.get(key):
                settings[key] = int(settings[key])
    return settings


def joblib_problem(key: str, value: Any, n_jobs: int) -> str | None:
    """What is wrong with joblib setting ``key``=``value`` for ``n_jobs`` workers, or None.

    Some joblib checks only when it launches (``pre_dispatch``, ``timeout``) or when it first maps an
    array (``mmap_mode``): a traceback after the parent run exists. The rest its constructor checks.
    """
    from joblib import Parallel

    from pipeline.runtime import compat

    if key == "require" and value is not None:
        return "the jobs run in worker processes, which share no memory; leave it null"
    if key == "timeout" and value is not None and not value > 0:
        return "must be a number of seconds > 0 that each job may run, or null for no limit"
    if key == "mmap_mode" and value is not None and value not in MMAP_MODES:
        return f"must be one of {', '.join(MMAP_MODES)}"
    if key == "pre_dispatch" and value != "all":
        try:
            count = value if isinstance(value, int) else compat.joblib_dispatch_count(str(value), n_jobs)
        except ValueError:
            count = 0
        if count is not None and not count >= 1:
            return "must be 'all', a number of jobs >= 1 or an expression of n_jobs such as '2*n_jobs'"
    if key in ("batch_size", "max_nbytes", "prefer"):
        try:
            Parallel(n_jobs=n_jobs, backend="loky", **{key: value})
        except (ValueError, TypeError) as exc:
            if key == "max_nbytes":
                return "must be a size such as '1M' or '500K', a number of bytes, or null"
            return str(exc).strip().splitlines()[0]
    return None


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
