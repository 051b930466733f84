"""SIGTERM and Ctrl-C without torn database writes.

Raising SystemExit from a signal handler in the middle of an MLflow write
leaves the SQLite transaction half done ("database is locked"); MLflow then
reports an ordinary error, the job is recorded with the wrong reason and the
signal is lost. So the handler only records the signal, and raises at once
only inside ``interruptible()`` (pure computation); elsewhere ``check()``
raises it at the next safe point.

A launching process whose jobs run in worker processes (the joblib
launcher) forwards the signal to them: each worker ends its job's run
KILLED, and the launcher's wait ends with the worker's SystemExit. It keeps
forwarding it every half second, to workers started after the signal (a
Ctrl-C during the sweep's start-up) and to those between two jobs, which
ignore SIGINT until their next job installs this handler.
"""

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

FORWARD_EVERY_S = 0.5


class Termination:
    """The process's pending termination request (one per process)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._interruptible = False
        self._forwarder: threading.Thread | None = None

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: the launcher owns signals there
                return
        if self._forwarder is None:  # started here, never in the handler (it may interrupt a thread start)
            self._forwarder = threading.Thread(target=self._keep_forwarding, name="forward-signal", daemon=True)
            self._forwarder.start()

    def _handle(self, signum, frame):
        self.signum = signum
        _forward(signum)
        if self._interruptible and not _in_a_finalizer(frame):
            self.check()

    def _keep_forwarding(self):
        """Forward a pending signal every ``FORWARD_EVERY_S`` until the process exits. (Polled: a
        signal handler must not take a lock, as setting a ``threading.Event`` would; a daemon thread.)

        A signal that reached an interruptible block inside a finalizer did not end it (see
        ``_in_a_finalizer``): it is delivered to this process again, to land elsewhere."""
        while True:
            time.sleep(FORWARD_EVERY_S)
            if self.signum is not None:
                _forward(self.signum)
                if self._interruptible:
                    os.kill(os.getpid(), self.signum)

    def signal_name(self) -> str:
        """e.g. "SIGINT", or "a signal" when none is pending (an exit for another reason)."""
        return signal.Signals(self.signum).name if self.signum is not None else "a signal"

    def check(self) -> None:
        """Raise the pending termination: SystemExit(128 + signal number)."""
        if self.signum is not None:
            self._interruptible = False
            raise SystemExit(128 + self.signum)

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A signal arriving inside this block ends it at once."""
        self.check()
        previous, self._interruptible = self._interruptible, True
        try:
            yield
        finally:
            self._interruptible = previous

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """A signal arriving inside this block (e.g. a database write) waits for its end."""
        previous, self._interruptible = self._interruptible, False
        try:
            yield
        finally:
            self._interruptible = previous
        self.check()


def _in_a_finalizer(frame) -> bool:
    """True when the signal interrupted a weakref callback or a ``__del__``: Python swallows an
    exception raised there, printing "Exception ignored in ..." with a traceback, and goes on."""
    return frame is not None and (frame.f_code.co_filename.endswith("weakref.py") or frame.f_code.co_name == "__del__")


def _forward(signum: int) -> None:
    """Send ``signum`` to this process's worker processes: the jobs running in them end too."""
    for worker in multiprocessing.active_children():
        if worker.pid is None:  # not started yet
            continue
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass


termination = Termination()
