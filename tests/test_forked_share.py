"""Tasks shared with a forked child (``pipeline.runtime.forked_share``): the same results, exceptions
and order as run here, a share of them in another process, and no child left behind."""

import os
import signal
import threading
import time

import pytest

from pipeline.runtime import forked_share
from pipeline.runtime.forked_share import run_shared

pytestmark = pytest.mark.skipif(not forked_share.can_fork(), reason="needs os.fork, two usable cores, no other thread")


def which_process(value):
    return lambda: (value, os.getpid())


def reaped(pid):
    """True when this process's child ``pid`` has exited and was waited for (not left a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_results_come_back_in_order_with_a_share_run_in_a_reaped_child():
    results = run_shared([which_process(i) for i in range(5)], costs=[3, 1, 1, 2, 1])
    assert [value for value, _ in results] == [0, 1, 2, 3, 4]
    pids = {pid for _, pid in results}
    assert os.getpid() in pids and len(pids) == 2  # this process and one child
    (child,) = pids - {os.getpid()}
    assert reaped(child)
    # The longest task goes to the child; the second longest to this process.
    assert results[0][1] == child and results[3][1] == os.getpid()


def test_a_task_that_raises_in_the_child_raises_here_as_it_would_alone():
    calls = []

    def fails():
        calls.append(os.getpid())  # the child's append is its own; only this process's stays
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        run_shared([fails, which_process(1)], costs=[2, 1])  # the child takes the longest: fails
    assert calls == [os.getpid()]  # run again here, where it raised


def test_a_task_that_raises_here_ends_the_child():
    started, clock = [], time.monotonic()

    def slow_child_task():
        time.sleep(60)  # not waited for: the child is ended

    def fails_here():
        started.append(True)
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        run_shared([slow_child_task, fails_here], costs=[2, 1])
    assert started == [True] and time.monotonic() - clock < 30


def test_a_child_that_dies_leaves_its_share_to_this_process():
    parent = os.getpid()

    def dies_in_the_child():
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return "here"

    results = run_shared([dies_in_the_child, which_process(1), which_process(2)], costs=[3, 1, 1])
    assert results[0] == "here" and [v for v, _ in results[1:]] == [1, 2]


def test_another_thread_keeps_every_task_in_this_process():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="holds-who-knows-what")
    other.start()
    try:
        assert not forked_share.can_fork()
        results = run_shared([which_process(i) for i in range(3)])
    finally:
        stop.set()
        other.join()
    assert {pid for _, pid in results} == {os.getpid()}
    assert forked_share.can_fork()
