"""What machine ran this: CPU model, cores and NumPy's BLAS, for run tags and reports."""

import functools
import os
import platform


@functools.cache  # once per process, as below
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@functools.cache
def blas_info() -> str:
    """e.g. 'openblas 0.3.31 (2 threads)'; 'unknown' without threadpoolctl.

    Once per process: a sweep's worker tags every job's run with it, and asking threadpoolctl walks
    every loaded library (2% of a worker's time in a study of small models). The libraries and the
    process's own thread count do not change while it runs; the threads a job used are its
    ``compute.blas_threads`` param.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    return (
        "; ".join(
            f"{i['internal_api']} {i['version']} ({i['num_threads']} threads)"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        )
        or "unknown"
    )


def machine_summary() -> str:
    import numpy as np

    return (
        f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, BLAS: {blas_info()}"
    )


def memory_bytes() -> int | None:
    """The machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
