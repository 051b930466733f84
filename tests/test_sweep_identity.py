"""A job finds its sweep from its own config and the store alone: no environment, any process."""

import os
import pickle
import signal
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from mlflow import MlflowClient
from omegaconf import open_dict, read_write

from helpers import REPO, jobs_of, mlflow_runs, store_uri
from pipeline.config import register_configs
from pipeline.sweep.callback import SweepTracking

pytestmark = pytest.mark.slow  # a fresh interpreter per job
register_configs()

# What a remote launcher (submitit, Ray) does on the node: unpickle the job's config, set up Hydra's
# globals and logging, and run the task on the config without its hydra node (as hydra.core.utils.run_job does).
REMOTE_JOB = """
import copy, pickle, sys
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import configure_log, setup_globals
from omegaconf import open_dict, read_write
from pipeline.config import register_configs
from pipeline.job import run

setup_globals()
register_configs()
with open(sys.argv[1], "rb") as f:
    cfg = pickle.load(f)
HydraConfig.instance().set_config(cfg)
configure_log(cfg.hydra.job_logging, cfg.hydra.verbose)
task_cfg = copy.deepcopy(cfg)
with read_write(task_cfg), open_dict(task_cfg):
    del task_cfg["hydra"]
print("returned", run(task_cfg))
"""
APP = [
    "dataset=digits",
    "model.activation=relu",
    "train.epochs=1",
    "quiet=true",
    "mlflow.log_model=false",
    "report.after_sweep=false",
]


def sweep_config(sweep_dir, job_overrides, task_overrides, job_num=0):
    """A composed multirun config as Hydra hands it to a callback (job_num None) or to job ``job_num``."""
    cfg = compose("config", overrides=[*APP, *job_overrides, f"hydra.sweep.dir={sweep_dir}"], return_hydra_config=True)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.overrides.task = [*APP, *task_overrides]
        cfg.hydra.job.name = "pipeline"
        cfg.hydra.job.num = job_num
        cfg.hydra.runtime.output_dir = f"{sweep_dir}/{job_num}"
    os.makedirs(cfg.hydra.runtime.output_dir, exist_ok=True)
    return cfg


def test_a_job_in_a_clean_interpreter_nests_under_its_own_sweep(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("FNN_SWEEP_HOME", str(home))  # the launching side's setting, not the job's
    saved_handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    callbacks = {}
    try:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            # Two sweeps running at once in one store: the job must pick its own.
            for name in ("a", "b"):
                callbacks[name] = SweepTracking()
                callbacks[name].on_multirun_start(sweep_config(tmp_path / name, [], ["model.hidden_neurons=16,32"]))
            job = sweep_config(tmp_path / "b", ["model.hidden_neurons=32"], ["model.hidden_neurons=16,32"], job_num=1)
        assert job.mlflow.tracking_uri == store_uri(home)  # resolved once here; the value travels in the pickle
        (tmp_path / "job.pkl").write_bytes(pickle.dumps(job))

        clean_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # no FNN_SWEEP_*, no MLFLOW_*
        result = subprocess.run(
            [sys.executable, "-c", REMOTE_JOB, str(tmp_path / "job.pkl")],
            cwd=tmp_path,
            env=clean_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        # Its place in the sweep, read from the parent run, in the job's log (the launcher prints progress).
        assert "[2/2 relu-32] test accuracy" in (tmp_path / "b" / "1" / "pipeline.log").read_text()

        jobs = jobs_of(mlflow_runs(home))
        assert len(jobs) == 1 and jobs["status"].item() == "FINISHED"
        assert jobs["tags.mlflow.parentRunId"].item() == callbacks["b"].parent_run_id
        assert jobs["tags.sweep_id"].item() == callbacks["b"].sweep_id
        assert jobs["params.hidden_neurons"].item() == "32"
        assert not (REPO / "mlflow.db").exists()  # nothing fell back to the project's default store

        parent_b_id = callbacks["b"].parent_run_id
        for callback in callbacks.values():
            callback.on_multirun_end(job)
        parent_b = MlflowClient(store_uri(home)).get_run(parent_b_id)
        assert parent_b.info.status == "FINISHED"
        at_once = float(min(2, len(os.sched_getaffinity(0))))  # the parallel launcher: min(cores, jobs)
        assert parent_b.data.metrics == {
            "jobs_planned": 2.0,
            "jobs_at_once": at_once,
            "n_finished": 1.0,
            "n_reused": 0.0,
        }
        assert parent_b.data.params == {}
    finally:
        for signum, handler in saved_handlers.items():
            signal.signal(signum, handler)
