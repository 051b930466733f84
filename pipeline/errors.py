"""The exception types every layer raises; ``pipeline.runtime.failure`` maps them to exit statuses.

Standard library only, so the data and tracking layers can raise them without importing Hydra.
"""


class InputError(Exception):
    """Bad configuration, data or store, found before anything ran; the message is one line."""


class JobsFailed(Exception):
    """Some jobs ended FAILED or KILLED; each was recorded and reported as it ended."""

    def __init__(self, failed: int, total: int):
        super().__init__(f"{failed} of {total} job{'s' if total != 1 else ''} failed (reasons above and in MLflow)")
        self.failed, self.total = failed, total


class SweepStopped(Exception):
    """The launcher stopped the sweep before its jobs ended (a job past ``hydra.launcher.timeout``): its
    unfinished runs end KILLED, the parent FAILED, and the same command resumes it. One line."""


class Abort(BaseException):
    """Carries ``error`` past Hydra's own handler (which catches every ``Exception``) to the entry point."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error
