"""SIGTERM and Ctrl-C without torn database writes.

Raising SystemExit from a signal handler in the middle of an MLflow write
leaves the SQLite transaction half done ("database is locked"); MLflow then
reports an ordinary error, the job is recorded with the wrong reason and the
signal is lost. So the handler only records the signal, and raises at once
only inside ``interruptible()`` (pure computation); elsewhere ``check()``
raises it at the next safe point.

A launching process whose jobs run in worker processes (the joblib
launcher) forwards the signal to them: each worker ends its job's run
KILLED, and the launcher's wait ends with the worker's SystemExit.
"""

import multiprocessing
import os
import signal
from contextlib import contextmanager


class Termination:
    """The process's pending termination request (one per process)."""

    def __init__(self):
        self.signum = None
        self._interruptible = False

    def install(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: the launcher owns signals there
                return

    def _handle(self, signum, frame):
        self.signum = signum
        for worker in multiprocessing.active_children():  # the jobs running in workers end too
            try:
                os.kill(worker.pid, signum)
            except ProcessLookupError:
                pass
        if self._interruptible:
            self.check()

    def check(self):
        """Raise the pending termination: SystemExit(128 + signal number)."""
        if self.signum is not None:
            self._interruptible = False
            raise SystemExit(128 + self.signum)

    @contextmanager
    def interruptible(self):
        """A signal arriving inside this block ends it at once."""
        self.check()
        previous, self._interruptible = self._interruptible, True
        try:
            yield
        finally:
            self._interruptible = previous

    @contextmanager
    def shielded(self):
        """A signal arriving inside this block (e.g. a database write) waits for its end."""
        previous, self._interruptible = self._interruptible, False
        try:
            yield
        finally:
            self._interruptible = previous
        self.check()


termination = Termination()
