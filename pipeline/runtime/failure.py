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
SIGTERM / Ctrl-C           any time (``termination``)           running runs and the parent KILLED  128+N
``SweepStopped``: the      while the jobs run (a job past       one line; unfinished runs KILLED,   1
launcher stopped the sweep ``hydra.launcher.timeout``)          the parent FAILED with the line
anything else (a bug, a    in the sweep's own code              its traceback, then one line;     1
store that broke)                                               the parent run FAILED with it
otherwise                                                                                         0
=========================  ===================================  ================================  ======

Hydra catches every ``Exception`` from a job or callback, prints a traceback
and exits 1. So code below an entry point never exits: it raises ``Abort``
(a ``BaseException`` that passes Hydra) around the error, and the entry
point (``pipeline.runtime.lifecycle``) prints it and picks the status here.
"""

import logging
import sys
import traceback
from typing import NoReturn

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from pipeline.errors import Abort, InputError, JobsFailed, SweepStopped  # noqa: F401  (re-exported: the policy's types)
from pipeline.runtime import folders

EXIT_OK, EXIT_JOBS_FAILED, EXIT_INPUT = 0, 1, 2
# Records of this logger go to the job's log file only, not the console (conf/hydra/job_logging).
job_file_log = logging.getLogger("pipeline.logfile")


def abort(error: BaseException) -> NoReturn:
    raise Abort(error) from error


def _is_composition_error(error):
    return isinstance(error, (HydraException, OmegaConfBaseException))


def exit_status(error: BaseException) -> int:
    """2 for bad input (ours or Hydra's composition errors), 1 for everything else."""
    return EXIT_INPUT if isinstance(error, InputError) or _is_composition_error(error) else EXIT_JOBS_FAILED


def error_line(error: BaseException) -> str:
    if _is_composition_error(error):
        return composition_error(error)
    if isinstance(error, (InputError, JobsFailed, SweepStopped)):
        return str(error)
    return one_line(error)


def setup_error(exc: BaseException) -> InputError:
    """An error Hydra raised setting up what its own settings ask, before the command's code ran
    (``hydra.run.dir`` that cannot be made, a logging level that does not exist), as one line."""
    cause = exc.__cause__
    detail = (
        f"{one_line(exc)}: {str(cause).strip().splitlines()[0]}" if cause is not None and str(cause) else one_line(exc)
    )
    hint = "check the hydra.* overrides"
    path = getattr(exc, "filename", None)
    if isinstance(path, str):  # the run's directory: by default under FNN_SWEEP_HOME
        hint = folders.what_to_fix(path, hint)
    return InputError(f"Hydra could not set up the command: {detail}; {hint}")


def timed_out(timeout: float | None = None) -> SweepStopped:
    """A job ran past ``hydra.launcher.timeout`` (``timeout`` seconds, when known), and joblib ended
    every worker: the sweep cannot go on."""
    setting = "hydra.launcher.timeout" if timeout is None else f"hydra.launcher.timeout={timeout:g} s"
    return SweepStopped(
        f"a job ran longer than {setting}, and joblib stopped the sweep; raise the timeout (or null: no limit)"
    )


def needs_traceback(error: BaseException) -> bool:
    """A bug or a broken store, whose fixer needs the traceback: not bad input, nor failures the
    policy reports in one line."""
    return exit_status(error) != EXIT_INPUT and not isinstance(error, (JobsFailed, SweepStopped))


def worker_died(error: BaseException) -> str | None:
    """For a worker process killed from outside (the OOM killer, SIGKILL, a crash), why, in one line;
    else None. Not a bug of ours: no traceback."""
    from pipeline.runtime import compat

    died = compat.terminated_worker_error()
    if died is None or not isinstance(error, died):
        return None
    codes = next((line.split(" are ", 1)[1] for line in str(error).splitlines() if "exit codes" in line), "?")
    return f"a worker process died (exit code {codes}: killed, out of memory, or crashed)"


def composition_error(exc: BaseException) -> str:
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


def one_line(exc: BaseException) -> str:
    """``TypeName: first line of the message``, for a FAILED run's reason and the console."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def print_traceback(exc: BaseException) -> None:
    """``exc``'s traceback on stderr: an error the fixer needs to see (a bug, a broken store)."""
    traceback.print_exception(exc, file=sys.stderr)


def log_traceback(exc: BaseException) -> str:
    """Write ``exc``'s traceback to the job's log file; returns the text."""
    text = "".join(traceback.format_exception(exc))
    job_file_log.error(text.rstrip())
    return text
