"""Signals never interrupt a shielded block (a database write); they end interruptible work at once."""

import os
import signal
import time

import pytest

from pipeline.runtime.termination import Termination


@pytest.fixture
def termination():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    handler = Termination()
    handler.install()
    yield handler
    for signum, previous in saved.items():
        signal.signal(signum, previous)


def test_signal_in_shielded_block_waits_for_its_end(termination):
    finished = False
    with pytest.raises(SystemExit) as exit_info:
        with termination.shielded():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            finished = True  # the "write" completes
    assert finished and exit_info.value.code == 128 + signal.SIGTERM


def test_signal_in_interruptible_block_ends_it_at_once(termination):
    reached = False
    with pytest.raises(SystemExit) as exit_info:
        with termination.interruptible():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
            reached = True
    assert not reached and exit_info.value.code == 128 + signal.SIGINT


def test_signal_elsewhere_is_raised_at_the_next_check(termination):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)  # no exception: not interruptible here
    with pytest.raises(SystemExit):
        termination.check()
