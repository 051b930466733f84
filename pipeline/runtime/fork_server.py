"""The process a parallel sweep's workers are forked from, started before the command's own imports.

By default each loky worker is a fresh interpreter that imports the job's code itself: with W
workers that is W times the same 2-3 s of imports, all at once, competing with the launching
process for the cores. Instead, one server process imports it (``worker_imports``) while
the launching process imports and checks the sweep, and each worker is a fork of that server, ready
at once. The server is single-threaded and holds no store connection or lock, so forking it is safe
(forking the launching process, whose threads may hold locks, would not be). Workers inherit the
server's environment, which is the command's; each job sets its own BLAS threads.

Standard library only: ``lifecycle.begin`` calls ``start_if_parallel_sweep`` before Hydra is imported.
The server's environment, which its workers inherit, is the command's as ``lifecycle.begin`` left it.
"""

import atexit
import multiprocessing

PRELOAD = ["pipeline.runtime.worker_imports"]
# Command-line flags after which Hydra prints or exits instead of sweeping.
NOT_A_SWEEP = (
    "-h",
    "--help",
    "--hydra-help",
    "-c",
    "--cfg",
    "-i",
    "--info",
    "-p",
    "--package",
    "--shell-completion",
    "-sc",
)


def available() -> bool:
    return "forkserver" in multiprocessing.get_all_start_methods()  # POSIX


def start() -> None:
    """Start the server (once; it imports ``PRELOAD`` in the background and lives until this process exits)."""
    if not available():
        return
    from multiprocessing import forkserver

    multiprocessing.set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()
    atexit.register(_end_server)


def _end_server() -> None:
    """At the command's exit, end the server at once. Left alone, it would notice only after its
    imports (1-2 s after a pre-flight error), holding the command's output open all that time (a
    pipe to ``tee`` or a test waits for it). Workers forked from it are processes of their own."""
    from pipeline.runtime import compat

    compat.kill_forkserver()


def start_if_parallel_sweep(argv: list[str]) -> None:
    """Start the server now when the command line asks for a sweep on the default (parallel) launcher.

    A guess from the raw arguments, so that the server's imports overlap this process's: a sweep whose
    launcher is set in a config file instead starts it later (``workers.start_workers``), and
    a wrong guess costs one idle process.
    """
    if is_parallel_sweep(argv):
        start()


def is_parallel_sweep(argv: list[str]) -> bool:
    """True when ``argv`` (without the program) sweeps with no launcher but the parallel one named."""
    if not any(arg in ("-m", "--multirun") for arg in argv) or any(arg.split("=")[0] in NOT_A_SWEEP for arg in argv):
        return False
    launchers = [arg.split("=", 1)[1] for arg in argv if arg.lstrip("+~").startswith("hydra/launcher=")]
    return not launchers or launchers[-1] == "parallel"
