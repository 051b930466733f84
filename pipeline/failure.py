"""The one failure policy: how each kind of failure ends, and the exit status.

=========================  ===================================  ================================  ======
failure                    when                                 what is left                      exit
=========================  ===================================  ================================  ======
``InputError``: config,    before any run exists (a single      one line ``error: ...`` on        2
data or store              run, or a sweep's pre-flight)        stderr; no run, no store
a job fails (exception,    after its run started                its run FAILED: ``failure_reason``  1
divergence, or bad input   (or a sweep's job found bad input)   tag, traceback in its log file
found inside a sweep job)                                       and ``job.log`` artifact; the
                                                                sweep goes on
SIGTERM / Ctrl-C           any time (``pipeline.termination``)  running runs and the parent KILLED  128+N
anything else (a bug, a    in the sweep's own code              its traceback, then one line;     1
store that broke)                                               the parent run FAILED with it
otherwise                                                                                         0
=========================  ===================================  ================================  ======

Hydra catches every ``Exception`` from a job or callback, prints a traceback
and exits 1. So code below an entry point never exits: it raises ``Abort``
(a ``BaseException`` that passes Hydra) around the error, and the entry
point (``run_entry_point``) prints it and picks the status.

Whatever the command opens that must not outlive it (a sweep's parent run)
is registered with ``close_on_exit``; however the command ends, by an error,
a signal or an error caused by the signal (a worker it killed), the entry
point ends it, FAILED with the reason or KILLED, before it exits.
"""

import gc
import logging
import os
import sys
import traceback

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from pipeline import credentials
from pipeline.errors import Abort, InputError, JobsFailed  # noqa: F401  (re-exported: the policy's types)
from pipeline.termination import termination

EXIT_OK, EXIT_JOBS_FAILED, EXIT_INPUT = 0, 1, 2
# Records of this logger go to the job's log file only, not the console (conf/hydra/job_logging).
job_file_log = logging.getLogger("pipeline.logfile")


def abort(error):
    raise Abort(error) from error


def _is_composition_error(error):
    return isinstance(error, (HydraException, OmegaConfBaseException))


def exit_status(error):
    """2 for bad input (ours or Hydra's composition errors), 1 for everything else."""
    return EXIT_INPUT if isinstance(error, InputError) or _is_composition_error(error) else EXIT_JOBS_FAILED


def error_line(error):
    if _is_composition_error(error):
        return composition_error(error)
    if isinstance(error, (InputError, JobsFailed)):
        return str(error)
    return one_line(error)


def run_entry_point(main):
    """Run an entry point's ``main``; the only place that turns errors into exit statuses.

    ``SystemExit`` (Hydra's own usage errors, signals via ``pipeline.termination``) passes through.
    """
    # A password in a URI never reaches Hydra's config, files or logs (idempotent: pipeline.__main__
    # calls it on its first line too, before its workers' server starts).
    sys.argv[1:] = credentials.take_from_argv(sys.argv[1:])
    # Hydra prints a composition error (misspelt key, unknown group option) as a traceback and exits 1;
    # with HYDRA_FULL_ERROR it raises it instead, and it is reported here in one line with exit 2.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    # The imports' objects (Hydra, MLflow, NumPy: a few hundred thousand) live until exit. Frozen,
    # the garbage collector stops walking them in every full collection while the command runs.
    gc.freeze()
    try:
        _run(main)
    finally:
        # Python's last collection at exit walks every object the run left (SQLAlchemy, figures):
        # 1-1.5 s after the last line printed. Nothing needs it: the process is ending.
        gc.freeze()


def _run(main):
    try:
        main()
    except Abort as stop:
        error = stop.error
    except (HydraException, OmegaConfBaseException) as exc:
        error = exc
    except ValueError as exc:
        if termination.signum is not None:
            _stopped_by_signal()
        if not str(exc).startswith("Only one of --run, --multirun"):  # Hydra's flags used together
            _close_open_work(f"the command failed: {one_line(exc)}", "FAILED")
            raise
        error = InputError(str(exc))
    except SystemExit:
        if termination.signum is not None:
            _stopped_by_signal()
        raise  # Hydra's own usage errors: nothing was opened
    except BaseException as exc:
        # A signal's side effects come back as other errors: joblib's TerminatedWorkerError when a
        # worker ended by the same signal, a store write cut short. The signal is what happened.
        if termination.signum is not None:
            _stopped_by_signal()
        reason = _worker_died(exc)
        if reason is None:  # a bug or a broken store: its traceback follows
            _close_open_work(f"the command failed: {one_line(exc)}", "FAILED")
            raise
        _close_open_work(reason, "FAILED")
        print(
            f"error: {reason}; the same command resumes the sweep (finished jobs are not trained again)",
            file=sys.stderr,
        )
        sys.exit(EXIT_JOBS_FAILED)
    else:
        if termination.signum is not None:  # a signal after the last check (while the report was written)
            _stopped_by_signal()
        sys.exit(EXIT_OK)
    if termination.signum is not None:
        _stopped_by_signal()
    _close_open_work(error_line(error), "FAILED")
    if exit_status(error) != EXIT_INPUT and not isinstance(error, JobsFailed):
        traceback.print_exception(error, file=sys.stderr)  # a bug or a broken store: the fixer needs it
    print(f"error: {error_line(error)}", file=sys.stderr)
    sys.exit(exit_status(error))


def _worker_died(error):
    """For a worker process killed from outside (the OOM killer, SIGKILL, a crash), why, in one line;
    else None. Not a bug of ours: no traceback."""
    from pipeline.runtime import compat

    died = compat.terminated_worker_error()
    if died is None or not isinstance(error, died):
        return None
    codes = next((line.split(" are ", 1)[1] for line in str(error).splitlines() if "exit codes" in line), "?")
    return f"a worker process died (exit code {codes}: killed, out of memory, or crashed)"


# What is open and must not outlive the command unended (a sweep's parent run, a single run).
_open_work: list = []


def close_on_exit(closer):
    """Have ``closer(reason, status)`` run if the command ends by an error or a signal before
    ``closed(closer)``: it ends what it opened with ``status`` ("FAILED", "KILLED") and ``reason``,
    and prints its one closing line."""
    _open_work.append(closer)


def closed(closer):
    """``closer``'s work ended normally: it is not run at exit."""
    if closer in _open_work:
        _open_work.remove(closer)


def _close_open_work(reason, status):
    while _open_work:
        closer = _open_work.pop()
        try:
            closer(reason, status)
        except Exception as exc:  # a store that broke: say so, and close the rest
            print(f"warning: could not end what was open ({one_line(exc)})", file=sys.stderr)


def _stopped_by_signal():
    """The command was stopped by SIGTERM or Ctrl-C: close what is open KILLED, then exit 128+N."""
    name = termination.signal_name()
    if not _open_work:
        print(f"stopped by {name}", file=sys.stderr)
    _close_open_work(f"terminated by {name}", "KILLED")
    raise SystemExit(128 + termination.signum)


def composition_error(exc):
    """One line from Hydra's multi-line composition error and its OmegaConf cause, with what to do."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0].rstrip(".") if lines else type(exc).__name__
    options = [line for line in lines[1:] if not line.endswith((":", "schema")) and " " not in line]
    for plugin, extra in (("hydra/launcher/submitit", "slurm"), ("hydra/launcher/ray", "ray")):
        if plugin in text:  # a launcher config whose plugin is an optional extra
            return f"{text}: its launcher plugin is not installed; pip install -e '.[{extra}]'"
    if options:  # an unknown option of a config group: Hydra lists the valid ones
        return f"{text}; choose one of: {', '.join(options)}"
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else None
    if cause is not None:
        text += f": {str(cause).splitlines()[0]}"
    if "not in" in text or "To append" in str(exc):
        return f"{text}; the valid keys: python -m pipeline --cfg job"
    return text


def one_line(exc):
    """``TypeName: first line of the message``, for a FAILED run's reason and the console."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def log_traceback(exc):
    """Write ``exc``'s traceback to the job's log file; returns the text."""
    text = "".join(traceback.format_exception(exc))
    job_file_log.error(text.rstrip())
    return text
