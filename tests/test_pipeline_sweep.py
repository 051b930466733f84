"""Real sweeps: `python -m pipeline` subprocesses against a temporary MLflow store."""

import os
import signal
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from helpers import FAST, REPO, jobs_of, mlflow_runs, run_pipeline

pytestmark = pytest.mark.slow  # real `python -m pipeline` subprocesses
EPOCH_METRICS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_time_s"]


def test_default_grid_sweep(home, mnist_dir, tmp_path):
    """The default grid, parallel, against a store elsewhere: artifacts go beside that store."""
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    checkout_before = sorted(p.name for p in REPO.iterdir())
    result = run_pipeline(home, "-m", "dataset=mnist", f"dataset.dir={mnist_dir}", "train.epochs=2",
                          f"mlflow.tracking_uri={uri}", "quiet=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"mlflow ui --backend-store-uri {uri}" in result.stdout

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["fnn-sweep"])
    parent = runs[runs["tags.fnn_sweep.role"] == "sweep"]
    jobs = jobs_of(runs)
    assert len(parent) == 1 and parent["status"].iloc[0] == "FINISHED"
    assert len(jobs) == 12 and set(jobs["status"]) == {"FINISHED"}
    assert set(jobs["tags.mlflow.parentRunId"]) == {parent["run_id"].iloc[0]}
    assert set(jobs["tags.sweep_id"]) == {parent["tags.sweep_id"].iloc[0]}
    cells = set(zip(jobs["params.activation"], jobs["params.hidden_neurons"].astype(int)))
    assert cells == {(a, h) for a in ("sigmoid", "relu", "tanh") for h in (32, 64, 128, 256)}
    assert set(jobs["params.epochs"]) == {"2"} and set(jobs["params.dataset.name"]) == {"mnist"}
    assert (jobs["metrics.test_accuracy"].between(0.5, 1.0)).all()  # a fraction, and learned
    assert (jobs["metrics.training_time_s"] > 0).all() and jobs["metrics.test_loss"].notna().all()

    client = MlflowClient(uri)
    for run_id in jobs["run_id"]:
        for metric in EPOCH_METRICS:
            assert [m.step for m in client.get_metric_history(run_id, metric)] == [0, 1], metric
    first = jobs["run_id"].iloc[0]
    artifacts = {a.path for a in client.list_artifacts(first)}
    assert {"config.yaml", "loss_curve.png", "confusion_matrix.png", "confusion_matrix.csv"} <= artifacts
    assert (tmp_path / "store" / "mlartifacts").is_dir() and not (home / "mlartifacts").exists()
    tags = client.get_run(first).data.tags
    assert {"dataset_hash", "hostname", "numpy", "blas"} <= set(tags)
    # Hydra's outputs went under FNN_SWEEP_HOME, nothing into the checkout.
    assert (home / "multirun").is_dir() and sorted(p.name for p in REPO.iterdir()) == checkout_before
    # The sweep left its report behind.
    table = (home / "reports" / "table1_test_accuracy.csv").read_text().splitlines()
    assert table[0] == "hidden_neurons,sigmoid,relu,tanh" and len(table) == 5
    assert f"Report: {home / 'reports'}" in result.stdout


def test_command_line_overrides_replace_and_extend_the_grid(home):
    result = run_pipeline(home, "-m", "model.activation=relu,tanh", "optimizer.lr=0.01,0.1", "dataset=digits",
                          "model.hidden_neurons=16,32", "train.epochs=1", *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = jobs_of(mlflow_runs(home))
    combos = set(zip(jobs["params.activation"], jobs["params.hidden_neurons"], jobs["params.lr"]))
    assert combos == {(a, h, lr) for a in ("relu", "tanh") for h in ("16", "32") for lr in ("0.01", "0.1")}


def test_failed_job_is_recorded_and_the_sweep_goes_on(home):
    result = run_pipeline(home, "-m", "dataset=diabetes", "optimizer.lr=0.01,1e6", "model.activation=relu",
                          "model.hidden_neurons=8", "train.epochs=20", *FAST)
    assert result.returncode == 1  # all jobs ran; the status says one failed
    assert result.stderr.strip().splitlines()[-1] == "error: 1 of 2 jobs failed (reasons above and in MLflow)"
    runs = mlflow_runs(home)
    jobs = jobs_of(runs).set_index("params.lr")
    assert jobs.loc["0.01", "status"] == "FINISHED" and np.isfinite(jobs.loc["0.01", "metrics.test_mse"])
    assert jobs.loc["1000000.0", "status"] == "FAILED"
    assert jobs.loc["1000000.0", "tags.failure_reason"].startswith("TrainingDiverged: diverged")
    assert "RUNNING" not in set(runs["status"])
    assert runs[runs["tags.fnn_sweep.role"] == "sweep"]["status"].iloc[0] == "FAILED"
    assert "FAILED" in result.stdout and "diverged" in result.stdout
    # The traceback goes to the job's log file, attached to its run, not to the console.
    assert "Traceback" not in result.stdout + result.stderr
    log = mlflow.artifacts.load_text(f"runs:/{jobs.loc['1000000.0', 'run_id']}/job.log")
    assert "Traceback (most recent call last)" in log and "pipeline.job.TrainingDiverged" in log
    assert "job.log" not in {a.path for a in MlflowClient().list_artifacts(jobs.loc["0.01", "run_id"])}


def test_a_single_run_that_fails_exits_1_with_its_run_failed(home):
    result = run_pipeline(home, "dataset=digits", "optimizer.lr=1e9", "train.epochs=3", *FAST)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: 1 of 1 job failed (reasons above and in MLflow)"]
    runs = mlflow_runs(home)
    assert list(runs["status"]) == ["FAILED"] and "diverged" in runs["tags.failure_reason"].item()


def test_single_run_has_no_parent_and_its_model_serves_predictions(home, tmp_path):
    result = run_pipeline(home, "dataset=digits", "train.epochs=10", "quiet=true")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow_runs(home)
    assert len(runs) == 1 and runs["status"].iloc[0] == "FINISHED"
    assert "tags.mlflow.parentRunId" not in runs or runs["tags.mlflow.parentRunId"].isna().all()
    assert (home / "outputs").is_dir()

    from pipeline.data import load_dataset

    data = load_dataset({"name": "digits", "standardize": True}, val_fraction=0.1, seed=0)
    rows = data.X_test[:50]
    np.savetxt(tmp_path / "input.csv", rows, delimiter=",", header=",".join(f"f{i}" for i in range(64)),
               comments="")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db"}
    predicted = subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "predict", "-m", f"runs:/{runs['run_id'].iloc[0]}/model",
         "-i", str(tmp_path / "input.csv"), "-t", "csv", "--env-manager", "local",
         "-o", str(tmp_path / "out.json")], env=env, capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    import json

    labels = np.array(json.loads((tmp_path / "out.json").read_text())["predictions"])
    assert labels.shape == (50,) and np.mean(labels == data.y_test[:50]) > 0.8


def _terminate_during_training(home, *args):
    """Start `python -m pipeline ARGS`, SIGTERM it in its second epoch; return (exit status, stderr)."""
    env = {**os.environ, "FNN_SWEEP_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "pipeline", *args, "dataset=digits", "train.epochs=1000000",
                                "mlflow.log_model=false"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:  # an epoch line: the run exists and is training
            if "epoch 2/" in line:
                break
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, stderr


def test_sigterm_ends_the_run_killed_not_running(home):
    returncode, stderr = _terminate_during_training(home)
    runs = mlflow_runs(home)
    evidence = f"exit {returncode}, statuses {list(runs['status'])}, stderr: {stderr[-2000:]}"
    assert returncode == 128 + signal.SIGTERM, evidence
    assert list(runs["status"]) == ["KILLED"], evidence
    assert runs["tags.failure_reason"].iloc[0] == "terminated by a signal"


@pytest.mark.parametrize("launcher, expected_jobs", [
    ([], 2),  # parallel: both jobs were training, both end KILLED
    (["hydra/launcher=basic"], 1),  # sequential: the second job never starts
])
def test_sigterm_ends_a_sweep_cleanly(home, launcher, expected_jobs):
    returncode, stderr = _terminate_during_training(home, "-m", "model.activation=relu,tanh",
                                                    "model.hidden_neurons=16", "verbose=true", *launcher)
    runs = mlflow_runs(home)
    evidence = f"exit {returncode}, runs {runs[['tags.mlflow.runName', 'status']].values.tolist()}, {stderr[-2000:]}"
    assert returncode == 128 + signal.SIGTERM, evidence
    assert sorted(zip(runs["tags.fnn_sweep.role"], runs["status"])) == \
        [("job", "KILLED")] * expected_jobs + [("sweep", "KILLED")], evidence
    assert "database is locked" not in stderr


@pytest.mark.parametrize("preset, extra", [
    ("table1", ["model.hidden_neurons=32"]),
    ("table1_published", ["model.hidden_neurons=32"]),
    ("iris", []),
    ("xor", []),
    ("california_housing", ["dataset=diabetes"]),  # its own data needs the internet
])
def test_every_preset_runs_one_short_epoch(home, mnist_dir, preset, extra):
    result = run_pipeline(home, f"+experiment={preset}", "train.epochs=1", f"dataset.dir={mnist_dir}"
                          if preset.startswith("table1") else "quiet=true", *extra, *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow_runs(home)
    assert list(runs["status"]) == ["FINISHED"]


def test_hydra_flags_work(home):
    result = run_pipeline(home, "--cfg", "job", "model.activation=tanh")
    assert result.returncode == 0 and "activation: tanh" in result.stdout
    assert not (home / "mlflow.db").exists()
    assert run_pipeline(home, "--help").returncode == 0


def test_sweep_against_an_mlflow_server_over_http(home, mlflow_server_url):
    result = run_pipeline(home, "-m", "dataset=digits", "model.activation=relu,tanh", "model.hidden_neurons=16",
                          "train.epochs=1", f"mlflow.tracking_uri={mlflow_server_url}", "report.after_sweep=false",
                          "quiet=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"open {mlflow_server_url} in a browser" in result.stdout
    mlflow.set_tracking_uri(mlflow_server_url)
    runs = mlflow.search_runs(experiment_names=["fnn-sweep"])
    jobs = jobs_of(runs)
    assert len(jobs) == 2 and set(jobs["status"]) == {"FINISHED"}
    assert {"config.yaml", "loss_curve.png"} <= {a.path for a in MlflowClient().list_artifacts(jobs["run_id"].iloc[0])}
    assert not (home / "mlflow.db").exists()  # nothing went to the local default store
    assert not (home / "mlartifacts").exists()  # the server keeps the artifacts, not the client's disk
    stored = {p.name for p in (mlflow_server_url.artifacts).rglob("*") if p.is_file()}
    assert {"config.yaml", "loss_curve.png", "confusion_matrix.csv"} <= stored


def test_reused_workers_leak_nothing_between_jobs(home):
    """8 jobs on 2 worker processes: each run has its own params, data, parent and one BLAS thread."""
    stray = {"MLFLOW_RUN_ID": "0" * 32}  # must never be reopened or nested under
    result = run_pipeline(home, "-m", "dataset=digits", "dataset.standardize=true,false", "model.activation=relu,tanh",
                          "model.hidden_neurons=8,16", "train.epochs=1", "hydra.launcher.n_jobs=2", *FAST, env=stray)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow_runs(home)
    parent = runs[runs["tags.fnn_sweep.role"] == "sweep"]
    jobs = jobs_of(runs)
    assert len(jobs) == 8 and set(jobs["status"]) == {"FINISHED"}
    assert set(jobs["tags.mlflow.parentRunId"]) == {parent["run_id"].item()}
    cells = set(zip(jobs["params.dataset.standardize"], jobs["params.activation"], jobs["params.hidden_neurons"]))
    assert len(cells) == 8  # every job logged its own params
    # The cached dataset follows each job's config: one data hash per standardize value.
    hashes = jobs.groupby("params.dataset.standardize")["tags.dataset_hash"].agg(set)
    assert all(len(h) == 1 for h in hashes) and hashes["True"] != hashes["False"]
    assert len(set(jobs["tags.pid"])) <= 2  # the workers were reused: 8 jobs, at most 2 processes
    assert set(jobs["params.compute.blas_threads"]) == {str(max(1, len(os.sched_getaffinity(0)) // 2))}
    assert result.stdout.count("[8/8] ") == 1  # one progress line per finished job
