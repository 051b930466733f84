"""The process lifecycle, from the command's first line to its last worker gone.

Every entry point (``python -m pipeline``, ``pipeline.report``, ``pipeline.reap``) goes through here,
in this order:

1. **Before Hydra is imported** (``begin``, the command's first line):
   - a password in a tracking URI (on the command line, or in ``MLFLOW_TRACKING_URI``) leaves it for
     the environment (``pipeline.credentials``), so it never reaches Hydra's config, files or logs,
     and workers inherit the result;
   - ``HYDRA_FULL_ERROR`` is set, so Hydra raises composition errors to us instead of printing a
     traceback, and step 5 turns them into one line; MLflow's artifact download bars and the links it
     prints at each run's end (with a server) are turned off;
   - for the training command, SIGTERM and Ctrl-C are taken over (``termination``): from here on a
     signal is recorded and ends the command at its next safe point, never mid-write or mid-import;
   - a parallel sweep on the command line starts its workers' fork server (``fork_server``), which
     imports the job's code on the other core while this process imports Hydra and MLflow.
2. **Hydra composes the config** and calls the app inside ``run``, which freezes the imports' objects
   for the garbage collector.
3. **A sweep's pre-flight** (``pipeline.sweep.callback``): signals are installed again (Hydra's
   callback runs in the main thread), the launcher's workers are pointed at the fork server
   (started now if the command line did not show a parallel sweep), every job is checked, and the
   parent run is opened and registered with ``close_on_exit``.
4. **The jobs**, in this process or in workers forked from the server
   (``worker_imports``: SIGINT ignored until a job starts, the GC frozen). Each job installs the
   handler, checks for a pending signal, and ends its own run: FINISHED, FAILED with its reason, or
   KILLED. A signal reaching the launching process is forwarded to the workers (``termination``).
5. **The end** (``run``): the outcome becomes an exit status by the failure policy
   (``failure``: 0, 1 a job failed, 2 bad input, 128+N signal N). Whatever is still open (the parent
   run, a single run) is ended first: FAILED with the reason, or KILLED on a signal, also when the
   signal came back as another error (a worker it killed). At interpreter exit the fork server is
   killed (``fork_server``); the sweep's workers were let go after its last job
   (``workers.stop_workers``).

Standard library only at import: ``begin`` runs before Hydra, MLflow and NumPy are imported.
"""

import gc
import multiprocessing
import os
import sys
from typing import Callable, NoReturn

from pipeline import credentials
from pipeline.runtime import fork_server
from pipeline.runtime.termination import termination

# ``closer(reason, status)``: ends what the command opened with status "FAILED" or "KILLED".
Closer = Callable[[str, str], None]
_open_work: list[Closer] = []
# Set when the command's own code takes over from Hydra (``app_started``): an error before it is
# Hydra setting up what its settings ask (the output directory, logging), not a bug of ours.
_app_started = False


def begin(trains: bool = False) -> None:
    """Step 1, the command's first line (idempotent). ``trains``: the training command, which takes
    over signals and may start a parallel sweep's fork server; the report and reap commands don't."""
    sys.argv[1:] = credentials.take_from_argv(sys.argv[1:])
    credentials.take_from_environment()
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # before the fork server: its workers inherit it
    # MLflow draws a download bar whenever it reads an artifact back, even one small file (each job's
    # model logging does, to check its input example): noise between the sweep's lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # With a tracking server, MLflow prints two links whenever a run ends, after reading the run back
    # for them: two lines a job through the progress bar, and one request a run more for the server.
    # The sweep's last lines say where the runs are.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if trains:
        termination.install()
        fork_server.start_if_parallel_sweep(sys.argv[1:])


def run(main: Callable[[], object]) -> NoReturn:
    """Steps 2 and 5: run an entry point's Hydra ``main``; the only place that picks the exit status.

    ``SystemExit`` (Hydra's own usage errors, signals via ``termination``) passes through.
    """
    begin()  # for an entry point called without it
    # The imports' objects (Hydra, MLflow, NumPy: a few hundred thousand) live until exit. Frozen,
    # the garbage collector stops walking them in every full collection while the command runs.
    gc.freeze()
    try:
        _run(main)
    finally:
        # Python's last collection at exit walks every object the run left (SQLAlchemy, figures):
        # 1-1.5 s after the last line printed. Nothing needs it: the process is ending.
        gc.freeze()


def close_on_exit(closer: Closer) -> None:
    """Have ``closer(reason, status)`` run if the command ends by an error or a signal before
    ``closed(closer)``: it ends what it opened with ``status`` ("FAILED", "KILLED") and ``reason``,
    and prints its one closing line."""
    _open_work.append(closer)


def app_started() -> None:
    """The command's own code runs: the task of a single run, or a sweep's first callback."""
    global _app_started
    _app_started = True


def closed(closer: Closer | None) -> None:
    """``closer``'s work ended normally: it is not run at exit."""
    if closer in _open_work:
        _open_work.remove(closer)


def _run(main: Callable[[], object]) -> NoReturn:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from pipeline.runtime import failure

    try:
        main()
    except failure.Abort as stop:
        error = stop.error
    except (HydraException, OmegaConfBaseException) as exc:
        error = exc
    except ValueError as exc:
        if termination.signum is not None:
            _stopped_by_signal()
        if str(exc).startswith("Only one of --run, --multirun"):  # Hydra's flags used together
            error = failure.InputError(str(exc))
        elif not _app_started:  # Hydra's logging settings (hydra.job_logging, hydra.hydra_logging)
            error = failure.setup_error(exc)
        else:
            _close_open_work(f"the command failed: {failure.one_line(exc)}", "FAILED")
            raise
    except OSError as exc:
        if termination.signum is not None:
            _stopped_by_signal()
        if _app_started:
            _close_open_work(f"the command failed: {failure.one_line(exc)}", "FAILED")
            raise
        error = failure.setup_error(exc)  # Hydra's output directory (hydra.run.dir) cannot be made
    except SystemExit:
        if termination.signum is not None:
            _stopped_by_signal()
        raise  # Hydra's own usage errors: nothing was opened
    except multiprocessing.TimeoutError:  # Hydra's joblib launcher: a job past its timeout (ours says so itself)
        if termination.signum is not None:
            _stopped_by_signal()
        error = failure.timed_out()
    except BaseException as exc:
        # A signal's side effects come back as other errors: joblib's TerminatedWorkerError when a
        # worker ended by the same signal, a store write cut short. The signal is what happened.
        if termination.signum is not None:
            _stopped_by_signal()
        reason = failure.worker_died(exc)
        if reason is None:  # a bug or a broken store: its traceback follows
            _close_open_work(f"the command failed: {failure.one_line(exc)}", "FAILED")
            raise
        _close_open_work(reason, "FAILED")
        print(
            f"error: {reason}; the same command resumes the sweep (finished jobs are not trained again)",
            file=sys.stderr,
        )
        sys.exit(failure.EXIT_JOBS_FAILED)
    else:
        if termination.signum is not None:  # a signal after the last check (while the report was written)
            _stopped_by_signal()
        sys.exit(failure.EXIT_OK)
    if termination.signum is not None:
        _stopped_by_signal()
    line = failure.error_line(error)
    _close_open_work(line, "FAILED")
    if failure.needs_traceback(error):
        failure.print_traceback(error)
    print(f"error: {line}", file=sys.stderr)
    sys.exit(failure.exit_status(error))


def _close_open_work(reason: str, status: str) -> None:
    from pipeline.runtime.failure import one_line

    while _open_work:
        closer = _open_work.pop()
        try:
            closer(reason, status)
        except Exception as exc:  # a store that broke: say so, and close the rest
            print(f"warning: could not end what was open ({one_line(exc)})", file=sys.stderr)


def _stopped_by_signal() -> NoReturn:
    """The command was stopped by SIGTERM or Ctrl-C: close what is open KILLED, then exit 128+N."""
    name = termination.signal_name()
    if not _open_work:
        print(f"stopped by {name}", file=sys.stderr)
    _close_open_work(f"terminated by {name}", "KILLED")
    raise SystemExit(128 + (termination.signum or 0))
