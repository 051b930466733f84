"""A sweep's progress lines against a real store: each ended job gets one line, polls read only
what ended lately, and the sweep's end reports the rest from the runs it read anyway."""

import logging
import time

import mlflow

from helpers import new_sqlite_store
from pipeline.sweep.progress import SweepProgress
from pipeline.tracking import layout, runs, store


def _sweep(tmp_path, planned):
    uri = new_sqlite_store(tmp_path / "mlflow.db")
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("fnn-sweep")
    tracking = store.open_store(uri)
    parent = runs.start_sweep(tracking, experiment_id, "sweep-x", str(tmp_path), planned, 2, f"{planned} jobs")
    return client, experiment_id, tracking, parent


def _job(client, experiment_id, parent, name, status, end_ms, accuracy=None):
    tags = {layout.TAG_PARENT: parent, layout.TAG_ROLE: layout.ROLE_JOB, layout.TAG_SWEEP_ID: "sweep-x"}
    if status == "FAILED":
        tags[layout.TAG_FAILURE] = "TrainingDiverged: loss is nan"
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    if accuracy is not None:
        client.log_metric(run_id, layout.TEST_ACCURACY, accuracy)
        client.log_metric(run_id, layout.TRAINING_TIME, 1.25)
    client.set_terminated(run_id, status, end_time=end_ms)
    return run_id


def test_the_sweeps_end_reports_every_job_no_poll_saw_once_in_end_order(tmp_path, caplog):
    """Jobs whose end times fall before the poll's window (another machine's clock) are missed by the
    polls; the end reports them from the runs it read, once each, and none twice."""
    client, experiment_id, tracking, parent = _sweep(tmp_path, 4)
    now = int(time.time() * 1000)
    progress = SweepProgress(tracking, parent, 4)
    caplog.set_level(logging.INFO, logger="pipeline")
    _job(client, experiment_id, parent, "relu-8", "FINISHED", now, accuracy=0.9)
    assert progress.poll() == (1, 0, 0, 0)
    hour = 3_600_000  # ended an hour "earlier": outside every later poll's window
    _job(client, experiment_id, parent, "tanh-8", "FAILED", now - hour + 5)
    _job(client, experiment_id, parent, "elu-8", "FINISHED", now - hour, accuracy=0.5)
    assert progress.poll() == (1, 0, 0, 0)
    running = client.create_run(experiment_id, run_name="sigmoid-8", tags={layout.TAG_PARENT: parent})
    progress.stop(runs.sweep_jobs(tracking, parent))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[")]
    assert lines == [
        "[1/4] relu-8  test accuracy 90.00%  training 1.2 s",
        "[2/4] elu-8  test accuracy 50.00%  training 1.2 s",
        "[3/4] tanh-8  FAILED: TrainingDiverged: loss is nan",
    ]
    assert progress.failed == 1 and running.info.run_id not in progress.reported
