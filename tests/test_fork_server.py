"""The fork server that a parallel sweep's workers come from (pipeline.runtime.fork_server)."""

import subprocess
import sys

import pytest

from pipeline.runtime.fork_server import is_parallel_sweep


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["-m"], True),
        (["--multirun", "model.activation=relu,tanh"], True),
        (["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=4"], True),
        ([], False),  # a single run
        (["model.activation=relu"], False),
        (["-m", "hydra/launcher=basic"], False),  # sequential: jobs run in this process
        (["-m", "hydra/launcher=slurm"], False),  # jobs run on other machines
        (["-m", "hydra/launcher=basic", "hydra/launcher=parallel"], True),  # the last one counts
        (["-m", "--cfg", "job"], False),  # Hydra prints the config and exits
        (["-m", "--help"], False),
        (["-m", "--info=searchpath"], False),
    ],
)
def test_started_only_for_a_sweep_on_the_parallel_launcher(argv, expected):
    assert is_parallel_sweep(argv) is expected


@pytest.mark.slow
def test_the_server_preloads_without_starting_a_thread():
    """Forking is safe only from a single-threaded process: importing what jobs need must start no thread,
    and leaves the objects frozen (no worker's garbage collector walks them)."""
    code = (
        "import gc, threading, pipeline.runtime.worker_imports;"
        "print(threading.active_count(), gc.get_freeze_count() > 100000, 'pipeline.job' in __import__('sys').modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "True", "True"]
