"""Real sweeps: `python -m pipeline` subprocesses against a temporary MLflow store."""

import fcntl
import json
import os
import pty
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import termios
from contextlib import closing

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from helpers import FAST, REPO, command_environment, jobs_of, mlflow_runs, query_without_write_access, run_pipeline
from pipeline.tracking import sqlite_wal

pytestmark = pytest.mark.slow  # real `python -m pipeline` subprocesses
EPOCH_METRICS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_time_s"]


@pytest.mark.readme("python -m pipeline -m")
def test_default_grid_sweep(home, mnist_dir, tmp_path):
    """The default grid, parallel, against a store elsewhere: artifacts go beside that store."""
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    checkout_before = sorted(p.name for p in REPO.iterdir())
    result = run_pipeline(
        home,
        "-m",
        "dataset=mnist",
        f"dataset.dir={mnist_dir}",
        "train.epochs=2",
        f"mlflow.tracking_uri={uri}",
        "quiet=true",
    )
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
    with sqlite3.connect(tmp_path / "store" / "mlflow.db") as connection:  # look-ups by tag are indexed
        indexes = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    connection.close()
    assert "fnn_sweep_tag_values" in indexes
    db = tmp_path / "store" / "mlflow.db"
    if sqlite_wal.filesystem_type(db) in sqlite_wal.LOCAL_FILESYSTEMS:
        # Write-ahead log while the sweep ran, folded into the file and the file back in its rollback
        # journal when the command ended: the file alone, copied, holds every run and every epoch
        # point, and opens for a reader that cannot write beside it.
        (tmp_path / "copy").mkdir()
        shutil.copyfile(db, tmp_path / "copy" / "mlflow.db")
        with closing(sqlite3.connect(tmp_path / "copy" / "mlflow.db")) as copy:
            assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
            assert copy.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall() == [("FINISHED", 13)]
            assert copy.execute("SELECT count(*) FROM metrics WHERE key = 'val_accuracy'").fetchone() == (24,)
        assert query_without_write_access(db, "SELECT count(*) FROM runs") == [(13,)]

    client = MlflowClient(uri)
    for run_id in jobs["run_id"]:
        for metric in EPOCH_METRICS:
            assert [m.step for m in client.get_metric_history(run_id, metric)] == [0, 1], metric
    first = jobs["run_id"].iloc[0]
    artifacts = {a.path for a in client.list_artifacts(first)}
    # The confusion matrix as data; no figure per run by default (mlflow.log_figures): the UI plots the
    # epoch metrics, the report draws the curves and the best run's matrix.
    assert {"config.yaml", "confusion_matrix.csv"} <= artifacts and not any(a.endswith(".png") for a in artifacts)
    matrix = pd.read_csv(client.download_artifacts(first, "confusion_matrix.csv", str(tmp_path)), index_col=0)
    test_rows = matrix.to_numpy().sum()
    assert matrix.shape == (10, 10) and test_rows > 0
    accuracy = jobs.set_index("run_id").loc[first, "metrics.test_accuracy"]
    assert np.trace(matrix.to_numpy()) / test_rows == pytest.approx(accuracy)  # the same predictions
    report = (home / "reports" / "latest").resolve()
    assert (report / "confusion_matrix_best.png").stat().st_size > 10_000
    assert (tmp_path / "store" / "mlartifacts").is_dir() and not (home / "mlartifacts").exists()
    tags = client.get_run(first).data.tags
    assert {"dataset_hash", "hostname", "numpy", "blas"} <= set(tags)
    # Hydra's outputs went under FNN_SWEEP_HOME, nothing into the checkout.
    assert (home / "multirun").is_dir() and sorted(p.name for p in REPO.iterdir()) == checkout_before
    # The sweep left its report behind.
    [report_dir] = [p for p in (home / "reports").iterdir() if p.name.startswith("sweep-")]
    assert (home / "reports" / "latest").resolve() == report_dir.resolve()  # each report in its own folder
    table = (report_dir / "table1_test_accuracy.csv").read_text().splitlines()
    assert table[0] == "hidden_neurons,sigmoid,relu,tanh" and len(table) == 5
    assert f"Report: {report_dir}/report.md" in result.stdout
    # MNIST runs, MNIST's published table beside ours.
    comparison = pd.read_csv(report_dir / "table1_test_accuracy_vs_published.csv")
    assert list(comparison.columns) == ["hidden_neurons", "activation", "ours", "published", "difference"]
    assert comparison["ours"].notna().all()
    assert np.allclose(comparison["difference"], comparison["ours"] - comparison["published"], atol=0.011)
    # Published MLP results on MNIST stand beside Table 1, each with its source, marked as other setups.
    index = (home / "reports" / "latest" / "report.md").read_text()
    assert (
        "other setups" in index
        and "| 2-layer NN, 800 HU, Cross-Entropy Loss | cross-entropy | none | 1.6 | 98.40 |" in index
        and "Simard" in index
    )


@pytest.mark.readme("python -m pipeline -m model.activation=relu,tanh optimizer.lr=0.01,0.1")
def test_command_line_overrides_replace_and_extend_the_grid(home):
    # Values given twice run once (else the report would pool the copies as seeds), and the command says so.
    result = run_pipeline(
        home,
        "-m",
        "model.activation=relu,tanh",
        "optimizer.lr=0.01,0.1",
        "dataset=digits",
        "model.hidden_neurons=16,32,16",
        "train.epochs=1",
        *FAST,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model.hidden_neurons=16,32,16: 16 given more than once; each job runs once" in result.stdout
    jobs = jobs_of(mlflow_runs(home))
    combos = list(zip(jobs["params.activation"], jobs["params.hidden_neurons"], jobs["params.lr"]))
    assert sorted(combos) == sorted(
        (a, h, lr) for a in ("relu", "tanh") for h in ("16", "32") for lr in ("0.01", "0.1")
    )


def test_failed_job_is_recorded_and_the_sweep_goes_on(home):
    result = run_pipeline(
        home,
        "-m",
        "dataset=diabetes",
        "optimizer.lr=0.01,1e6",
        "model.activation=relu",
        "model.hidden_neurons=8",
        "train.epochs=20",
        *FAST,
    )
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
    assert "Traceback (most recent call last)" in log and "pipeline.job.train.TrainingDiverged" in log
    assert "job.log" not in {a.path for a in MlflowClient().list_artifacts(jobs.loc["0.01", "run_id"])}


def _in_a_terminal(home, *args, columns=100):
    """Run `python -m pipeline ARGS` with a terminal (a pty ``columns`` wide) as its console; returns
    (exit status, everything it printed)."""
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = command_environment(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, env=env, stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the pty closed: the command and its workers are gone
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    return process.wait(timeout=120), output.decode(errors="replace")


def test_in_a_terminal_a_progress_bar_and_lines_only_for_failures(home):
    status, output = _in_a_terminal(
        home,
        "-m",
        "dataset=digits",
        "train.epochs=1",
        "model.activation=relu",
        "model.hidden_neurons=8",
        "optimizer.lr=0.01,0.1,1e6",
        *FAST,
    )
    assert status == 1, output[-3000:]
    lines = [line.strip() for line in re.split(r"[\r\n]+", output) if line.strip()]
    bars = [line for line in lines if line.startswith("sweep:") and "%|" in line]
    assert bars and "3/3" in bars[-1] and "1 failed" in bars[-1] and "job/s" in bars[-1]
    # A failed job gets its own line, not glued to the bar; a finished job none (the bar counts it).
    failed = [line for line in lines if "FAILED: TrainingDiverged" in line and "/3] relu-8" in line]
    assert len(failed) == 1 and "%|" not in failed[0]
    assert not any("test accuracy" in line for line in lines)
    assert not any(re.search(r"#\d+ : ", line) for line in lines)  # nor the launcher's line per job
    assert any("done: 3 jobs, 1 FAILED, 2 FINISHED" in line for line in lines)
    assert lines[-1] == "error: 1 of 3 jobs failed (reasons above and in MLflow)"


def test_a_single_run_that_fails_exits_1_with_its_run_failed(home):
    result = run_pipeline(home, "dataset=digits", "optimizer.lr=1e9", "train.epochs=3", *FAST)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: 1 of 1 job failed (reasons above and in MLflow)"]
    runs = mlflow_runs(home)
    assert list(runs["status"]) == ["FAILED"] and "diverged" in runs["tags.failure_reason"].item()


@pytest.mark.readme(
    "MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db mlflow models predict -m runs:/RUN_ID/model -i rows.json -t json "
    "--env-manager local"
)
@pytest.mark.readme("python -m pipeline")
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
    # README's command: rows as {"inputs": [[...], ...]} (the model's signature is a float32 tensor).
    (tmp_path / "rows.json").write_text(json.dumps({"inputs": rows.tolist()}))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db"}
    predicted = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "predict",
            "-m",
            f"runs:/{runs['run_id'].iloc[0]}/model",
            "-i",
            str(tmp_path / "rows.json"),
            "-t",
            "json",
            "--env-manager",
            "local",
            "-o",
            str(tmp_path / "out.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    labels = np.array(json.loads((tmp_path / "out.json").read_text())["predictions"])
    assert labels.shape == (50,) and np.mean(labels == data.y_test[:50]) > 0.8
