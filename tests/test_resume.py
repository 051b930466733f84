"""Sweeps that lose nothing: resume by configuration, runs of dead processes reaped."""

import os
import re
import signal
import time

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from helpers import FAST, jobs_of, mlflow_runs, new_sqlite_store, run_pipeline, start_pipeline, store_uri
from pipeline.tracking import layout, reaper
from pipeline.tracking.store import open_store

SWEEP = [
    "-m",
    "dataset=digits",
    "model.activation=relu,tanh,sigmoid",
    "model.hidden_neurons=8,16",
    "train.epochs=60",
    "hydra/launcher=basic",
    *FAST,
]


# Two jobs that would train for ever: the signal and crash tests stop them.
ENDLESS_SWEEP = (
    "-m",
    "dataset=digits",
    "model.activation=relu,tanh",
    "model.hidden_neurons=16",
    "train.epochs=1000000",
    "mlflow.log_model=false",
)


def _kill_after(process, needle):
    """SIGKILL the whole process group once ``needle`` appears in its output (no cleanup can run)."""
    try:
        for line in process.stdout:
            if needle in line:
                break
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.readme("python -m pipeline -m hydra/launcher=basic")
def test_a_killed_sweep_resumes_with_exactly_the_missing_jobs(home):
    _kill_after(start_pipeline(home, *SWEEP), "[2/6]")
    before = jobs_of(mlflow_runs(home))
    finished = set(before.loc[before["status"] == "FINISHED", "run_id"])
    assert 2 <= len(finished) < 6 and "RUNNING" in set(mlflow_runs(home)["status"])  # a zombie, as SIGKILL leaves

    again = run_pipeline(home, *SWEEP)
    assert again.returncode == 0, again.stderr[-3000:]
    runs = mlflow_runs(home)
    assert "RUNNING" not in set(runs["status"])  # the killed job's run and parent were reaped
    reaped = runs[runs["status"] == "KILLED"]
    assert len(reaped) >= 1 and reaped["tags.failure_reason"].str.startswith("reaped: process").all()
    second = runs[runs["tags.fnn_sweep.role"] == "sweep"].sort_values("start_time").iloc[-1]
    in_second = runs[runs["tags.mlflow.parentRunId"] == second["run_id"]]
    trained = in_second[in_second["tags.fnn_sweep.role"] == "job"]
    reused = in_second[in_second["tags.fnn_sweep.role"] == "reused"]
    assert len(trained) == 6 - len(finished) and set(reused["tags.fnn_sweep.reused_run"]) == finished
    # No cell was ever trained twice to the end.
    done = jobs_of(runs)[jobs_of(runs)["status"] == "FINISHED"]
    assert done.groupby(["params.activation", "params.hidden_neurons"]).size().eq(1).all() and len(done) == 6
    assert again.stdout.count("skipped: finished in run") == len(finished)
    table = pd.read_csv(
        home / "reports" / "latest" / "table1_test_accuracy.csv"
    )  # the second sweep's report: all 6 cells
    assert table[["relu", "tanh", "sigmoid"]].notna().all().all() and len(table) == 2

    rerun = run_pipeline(home, *SWEEP, "sweep.rerun=true", "report.after_sweep=false")
    assert rerun.returncode == 0 and "skipped" not in rerun.stdout
    assert len(jobs_of(mlflow_runs(home))) == len(jobs_of(runs)) + 6


@pytest.mark.slow
@pytest.mark.readme("python -m pipeline.reap")
def test_reap_command_ends_a_killed_single_run(home):
    _kill_after(start_pipeline(home, "dataset=digits", "train.epochs=100000", "mlflow.log_model=false"), "epoch 3/")
    run = mlflow_runs(home).iloc[0]
    assert run["status"] == "RUNNING"
    reaped = run_pipeline(home, module="pipeline.reap")
    assert reaped.returncode == 0, reaped.stderr[-2000:]
    assert f"({run['run_id']}): RUNNING -> KILLED, reaped: process {run['tags.pid']}" in reaped.stdout
    after = MlflowClient(store_uri(home)).get_run(run["run_id"])
    assert after.info.status == "KILLED"
    last_epoch = max(
        m.timestamp for m in MlflowClient(store_uri(home)).get_metric_history(run["run_id"], "epoch_time_s")
    )
    assert after.info.end_time == last_epoch  # ended at its last heartbeat, not at reaping time
    assert "nothing to reap" in run_pipeline(home, module="pipeline.reap").stdout


def test_runs_of_other_hosts_are_reaped_only_when_their_heartbeat_is_stale(tmp_path):
    uri = new_sqlite_store(tmp_path / "mlflow.db")
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("e")
    now_ms = int(time.time() * 1000)
    tags = {layout.TAG_ROLE: layout.ROLE_JOB, "hostname": "another-host", "pid": "1"}
    stale = client.create_run(experiment, start_time=now_ms - 3 * 3600 * 1000, tags=tags, run_name="stale").info.run_id
    client.log_metric(stale, "epoch_time_s", 0.1, timestamp=now_ms - 2 * 3600 * 1000, step=0)
    live = client.create_run(experiment, start_time=now_ms - 3 * 3600 * 1000, tags=tags, run_name="live").info.run_id
    client.log_metric(live, "epoch_time_s", 0.1, timestamp=now_ms - 60 * 1000, step=0)  # a minute ago

    reaped = reaper.reap(open_store(uri), experiment, stale_after_s=1800)
    assert [(name, run_id) for name, run_id, _ in reaped] == [("stale", stale)]
    assert "no heartbeat from another-host" in reaped[0][2]
    assert client.get_run(stale).info.status == "KILLED"
    assert client.get_run(stale).info.end_time == now_ms - 2 * 3600 * 1000
    assert client.get_run(live).info.status == "RUNNING"  # a live run on another host is never touched


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="a zombie's state is read from /proc (Linux)")
def test_a_process_that_exited_but_is_not_yet_reaped_counts_as_gone():
    """A killed command's workers are zombies until init reaps them (1-2 s here): their runs are reaped
    at once, not left RUNNING by the next command's reaper."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert reaper.process_alive(child.pid)
    finally:
        child.kill()
    deadline = time.monotonic() + 10
    while open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0] != "Z":  # exited, not waited for
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not reaper.process_alive(child.pid)
    child.wait()
    assert not reaper.process_alive(child.pid) and reaper.process_alive(os.getpid())


def test_a_run_that_ended_after_the_reaper_read_it_is_left_as_it_ended(tmp_path, monkeypatch):
    """The race two sweeps met: one's reaper reads the other's job RUNNING, the job ends FINISHED and its
    worker exits; the pid is gone by the check, but the run's end stays. A run its process left RUNNING
    is still reaped."""
    import socket
    import subprocess
    import sys

    uri = new_sqlite_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    experiment = client.create_experiment("e")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    tags = {layout.TAG_ROLE: layout.ROLE_JOB, "hostname": socket.gethostname(), "pid": gone.stdout.strip()}
    ended, zombie = (client.create_run(experiment, tags=tags, run_name=name).info.run_id for name in ("a", "b"))
    as_read = layout.read_runs(open_store(uri), [experiment], filter_string=layout.status_is("RUNNING"))
    assert set(as_read["run_id"]) == {ended, zombie}
    client.set_terminated(ended, "FINISHED")  # after the reaper's read
    monkeypatch.setattr(layout, "read_runs", lambda *args, **kwargs: as_read)
    reaped = reaper.reap(open_store(uri), experiment, stale_after_s=1800)
    assert [run_id for _, run_id, _ in reaped] == [zombie]
    assert (client.get_run(ended).info.status, client.get_run(zombie).info.status) == ("FINISHED", "KILLED")


@pytest.mark.slow
def test_two_sweeps_started_at_once_into_a_new_store_both_nest_correctly(home):
    args = ["-m", "dataset=digits", "model.hidden_neurons=8", "train.epochs=2", *FAST, "report.after_sweep=false"]
    first = start_pipeline(home, *args, "model.activation=relu,tanh")
    second = start_pipeline(home, *args, "model.activation=sigmoid,identity")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    runs = mlflow_runs(home)
    parents = runs[runs["tags.fnn_sweep.role"] == "sweep"]
    assert len(parents) == 2 and parents["tags.fnn_sweep.sweep_dir"].nunique() == 2
    jobs = jobs_of(runs)
    assert len(jobs) == 4 and set(jobs["status"]) == {"FINISHED"}
    for parent_id, sweep_id in zip(parents["run_id"], parents["tags.sweep_id"]):  # each its own two jobs
        mine = jobs[jobs["tags.mlflow.parentRunId"] == parent_id]
        assert set(mine["params.activation"]) in ({"relu", "tanh"}, {"sigmoid", "identity"})
        assert set(mine["tags.sweep_id"]) == {sweep_id}


BAD_INPUT = [
    ("model.activation=swish", "model.activation='swish' is not valid; choose one of:"),
    ("model.hidden_neurons=0", "model.hidden_neurons=0 is not valid: must be >= 1"),
    ("model.hidden_neurons=-3", "model.hidden_neurons=-3 is not valid: must be >= 1"),
    ("optimizer.lr=abc", "Value 'abc' of type 'str' could not be converted to Float"),
    ("optimizer.lr=0", "optimizer.lr=0.0 is not valid: must be a positive number"),
    ("optimizer.lr=-0.5", "optimizer.lr=-0.5 is not valid: must be a positive number"),
    ("train.epochs=0", "train.epochs=0 is not valid: must be >= 1"),
    ("dataset=cifar", "Could not find 'dataset/cifar'; choose one of:"),
    ("model.activaton=relu", "Key 'activaton' not in 'ModelConfig'; the valid keys: python -m pipeline --cfg job"),
    (
        "train.batch_size=100000",
        "train.batch_size=100000 is not valid: digits has 1293 training samples after the "
        "validation split; choose at most 1293",
    ),
    (
        "mlflow.tracking_uri=sqlite:////proc/no-such-dir/mlflow.db",
        "cannot use the tracking store sqlite:////proc/no-such-dir/mlflow.db",
    ),
    ("mlflow.tracking_uri=CORRUPT", "file is not a database"),
    ("mlflow.tracking_uri=http://127.0.0.1:9", "no tracking server answers at http://127.0.0.1:9"),
    # Values a schema without a constraint table let through, and data rules checked for every job's split.
    ("train.seed=0,-1", "train.seed=-1 is not valid: must be an integer in [0, 4294967295]"),
    (
        "train.val_fraction=0.995 train.batch_size=1",
        "train.val_fraction=0.995 is not valid for digits: the training part of its 1437 samples would hold 7",
    ),
    ("train.seed=0,1 train.val_fraction=0.1,0.995", "train.val_fraction=0.995 is not valid for digits"),
    ("hydra.launcher.n_jobs=0", "hydra.launcher.n_jobs=0 is not valid: must be a number of workers >= 1"),
    ("report.out_dir=FILE", "report.out_dir=FILE is a file, not a directory"),
    ("mlflow.experiment_name=" + "x" * 5000, "is 5000 characters long; at most 256 are allowed"),
    # Hydra's own settings, which Hydra applies before a single run's code, and in a sweep's jobs.
    ("hydra.job_logging.root.level=BOGUS", "BOGUS"),
    ("hydra.sweep.dir=FILE", "hydra.sweep.dir=FILE cannot be made: it is a file"),
]
# Range checks run through the same validate() in both paths: the sweep path checks them all, the
# single-run path one of each kind (choice, range, type, key, group, batch, store).
RANGE_ONLY = {
    "model.hidden_neurons=-3",
    "optimizer.lr=0",
    "optimizer.lr=-0.5",
    "train.epochs=0",
    "train.seed=0,-1",
    "train.seed=0,1 train.val_fraction=0.1,0.995",
    "hydra.launcher.n_jobs=0",
    "report.out_dir=FILE",
    "hydra.sweep.dir=FILE",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, override, needle",
    [
        pytest.param(mode, override, needle, id=f"{override}-{'sweep' if mode else 'single'}")
        for override, needle in BAD_INPUT
        for mode in ([], ["-m"])
        if mode or override not in RANGE_ONLY
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_run(home, tmp_path, mode, override, needle):
    if "CORRUPT" in override:
        corrupt = tmp_path / "corrupt.db"
        corrupt.write_text("not a database\n")
        override = f"mlflow.tracking_uri=sqlite:///{corrupt}"
    if "FILE" in override:
        (tmp_path / "FILE").write_text("")
        override, needle = (text.replace("FILE", str(tmp_path / "FILE")) for text in (override, needle))
    started = time.monotonic()
    dataset = [] if override.startswith("dataset=") else ["dataset=digits"]
    result = run_pipeline(home, *mode, *dataset, "train.epochs=1", *override.split(" "))
    assert time.monotonic() - started < 30  # never MLflow's minutes of retries
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr[-2000:]
    assert not (home / "mlflow.db").exists()  # nothing created in the default store either
    if "corrupt" in override:
        assert corrupt.read_text() == "not a database\n"  # left as it was


@pytest.mark.slow
def test_eight_jobs_at_once_against_sqlite_lose_nothing(home):
    epochs = 10
    result = run_pipeline(
        home,
        "-m",
        "dataset=digits",
        "model.activation=relu,tanh",
        "model.hidden_neurons=8,16",
        "train.seed=0,1",
        f"train.epochs={epochs}",
        "hydra.launcher.n_jobs=8",
        "quiet=true",
        "mlflow.log_model=false",
        "report.after_sweep=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store_uri(home))
    jobs = jobs_of(mlflow_runs(home))
    assert len(jobs) == 8 and set(jobs["status"]) == {"FINISHED"} and len(set(jobs["tags.pid"])) > 2
    # Progress: exactly one line per job, numbered 1..8 in the order they ended, each naming its run.
    lines = re.findall(r"\[(\d)/8\] (\S+)  test accuracy", result.stdout)
    assert [int(k) for k, _ in lines] == list(range(1, 9))
    assert sorted(name for _, name in lines) == sorted(jobs["tags.mlflow.runName"])
    for run_id in jobs["run_id"]:
        run = client.get_run(run_id)
        config = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))
        assert run.data.params == {k: str(v) for k, v in layout.job_params(config).items()}
        for metric in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_time_s"):
            assert [m.step for m in client.get_metric_history(run_id, metric)] == list(range(epochs)), metric
        assert {a.path for a in client.list_artifacts(run_id)} == {
            "config.yaml",
            "confusion_matrix.csv",
        }


@pytest.mark.slow
@pytest.mark.readme("python -m pipeline -m verbose=true")
def test_ctrl_c_ends_a_parallel_sweep_killed_with_one_press(home):
    process = start_pipeline(home, *ENDLESS_SWEEP, "verbose=true")
    try:
        seen = set()
        for line in process.stdout:  # both jobs are training
            if "epoch 2/" in line:
                seen.add(line.split("]")[0])
            if len(seen) == 2:
                break
        os.killpg(process.pid, signal.SIGINT)  # what a terminal sends: the whole foreground group, once
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    runs = mlflow_runs(home)
    assert process.returncode == 128 + signal.SIGINT
    assert sorted(zip(runs["tags.fnn_sweep.role"], runs["status"])) == [
        ("job", "KILLED"),
        ("job", "KILLED"),
        ("sweep", "KILLED"),
    ]


START_UP_MOMENTS = {
    "during the imports": (None, [0.5]),
    "after the parent run": ("Sweep sweep-", [0]),
    "while workers start": ("Launching jobs", [0]),
    # Hydra's last job line: the workers are being forked. SIGTERM killed a worker there
    # (joblib's TerminatedWorkerError): repeated at several delays, to catch the race.
    "as workers fork": ("#1 :", [0, 0.05, 0.2, 0.5]),
}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", START_UP_MOMENTS)
def test_a_signal_during_a_parallel_sweeps_start_up_ends_it_at_once(home, moment, signum):
    """Workers that did not exist when the signal came get it too, and nothing prints a traceback."""
    needle, delays = START_UP_MOMENTS[moment]
    if signum == signal.SIGINT:  # workers ignore SIGINT until their job starts: no race to repeat
        delays = delays[:1]
    for attempt, delay in enumerate(delays):
        process = start_pipeline(home, *ENDLESS_SWEEP)
        output = []
        try:
            if needle is not None:
                for line in process.stdout:
                    output.append(line)
                    if needle in line:
                        break
            time.sleep(delay)
            os.killpg(process.pid, signum)
            output += process.communicate(timeout=30)[0]
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        text = "".join(output)
        assert process.returncode == 128 + signum and "Traceback" not in text, (delay, text[-2000:])
        if needle is None:
            assert text.strip().splitlines()[-1].endswith(f"stopped by {signum.name}")
            continue  # no store yet, or an empty one
        runs = mlflow_runs(home)
        sweeps = runs[runs["tags.fnn_sweep.role"] == "sweep"]
        assert set(runs["status"]) == {"KILLED"} and len(sweeps) == attempt + 1, (delay, text[-2000:])
        lines = text.strip().splitlines()
        assert f"stopped by {signum.name}" in lines[-1] and "the same command resumes it" in lines[-1]


@pytest.mark.slow
def test_sigterm_to_a_single_run_ends_it_killed_with_one_closing_line(home):
    process = start_pipeline(home, "dataset=digits", "train.epochs=1000000", "mlflow.log_model=false")
    try:
        for line in process.stdout:
            if "epoch 2/" in line:
                break
        os.killpg(process.pid, signal.SIGTERM)
        rest = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    [run] = mlflow_runs(home).itertuples()
    assert process.returncode == 143 and run.status == "KILLED" and "Traceback" not in rest
    assert rest.strip().splitlines()[-1] == (
        f"[relu-128] run {run.run_id} ended KILLED: terminated by SIGTERM; the same command trains it again"
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["-m"]], ids=["single", "sweep"])
@pytest.mark.parametrize(
    "damage, needle",
    [
        ("truncate", "corrupt or truncated IDX file"),
        ("magic", "not an IDX image file (magic number"),
        ("count", "images but"),
        ("missing", "lacks train-images-idx3-ubyte.gz"),
        ("labels", "train label(s) outside 0..9 (e.g. 10)"),
        ("empty", "holds no images (a valid header for 0)"),
    ],
)
def test_damaged_or_missing_data_files_are_one_line_exit_2_and_no_run(home, tmp_path, mnist_dir, mode, damage, needle):
    import gzip
    import shutil

    data = tmp_path / "data"
    shutil.copytree(mnist_dir, data)
    images = data / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    labels = data / "train-labels-idx1-ubyte.gz"
    if damage == "missing":
        images.unlink()
    elif damage == "labels":  # a valid file whose third label is 10
        raw_labels = bytearray(gzip.decompress(labels.read_bytes()))
        raw_labels[8 + 2] = 10
        labels.write_bytes(gzip.compress(bytes(raw_labels)))
    elif damage == "empty":  # valid headers for zero images and zero labels
        images.write_bytes(gzip.compress(raw[:4] + (0).to_bytes(4, "big") + raw[8:16]))
        labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:4] + (0).to_bytes(4, "big")))
    elif damage == "truncate":
        images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    elif damage == "magic":
        images.write_bytes(gzip.compress(b"\x00\x00\x09\x99" + raw[4:]))
    else:  # one image fewer than the header says there are labels for
        count = int.from_bytes(raw[4:8], "big") - 1
        images.write_bytes(gzip.compress(raw[:4] + count.to_bytes(4, "big") + raw[8 : 16 + count * 784]))
    result = run_pipeline(home, *mode, "dataset=mnist", f"dataset.dir={data}", "train.epochs=1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr[-2000:]
    assert not (home / "mlflow.db").exists()


@pytest.mark.slow
def test_a_worker_killed_from_outside_ends_the_sweep_failed_in_one_line(home):
    """The OOM killer's SIGKILL to a worker, after the parent run opened: nothing is left RUNNING."""
    process = start_pipeline(home, *ENDLESS_SWEEP, "verbose=true")
    try:
        training = set()
        for line in process.stdout:  # both jobs are training (one alone raced the other's run: flaky)
            if "epoch 3/" in line:
                training.add(line.split("]")[0])
            if len(training) == 2:
                break
        [pid, *_] = jobs_of(mlflow_runs(home))["tags.pid"]
        os.kill(int(pid), signal.SIGKILL)
        rest = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    runs = mlflow_runs(home)
    assert process.returncode == 1 and "Traceback" not in rest, rest[-3000:]
    assert rest.strip().splitlines()[-1].startswith("error: a worker process died (exit code {SIGKILL(-9)}")
    assert sorted(zip(runs["tags.fnn_sweep.role"], runs["status"])) == [
        ("job", "KILLED"),
        ("job", "KILLED"),
        ("sweep", "FAILED"),
    ]
    assert runs["tags.failure_reason"].str.startswith("a worker process died").all()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_decoded_cache_is_rebuilt_and_the_run_goes_on(home, tmp_path, mnist_dir, damage):
    args, env = (
        ("dataset=mnist", f"dataset.dir={mnist_dir}", "train.epochs=1", *FAST),
        {"FNN_SWEEP_DATA_DIR": str(tmp_path / "cache")},
    )
    assert run_pipeline(home, *args, env=env).returncode == 0
    [images] = (tmp_path / "cache").glob("decoded/*/X_train.npy")
    images.write_bytes(images.read_bytes()[:1000] if damage == "truncate" else b"not an array")
    again = run_pipeline(home, *args, "train.seed=1", env=env)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    assert f"the decoded-data cache {images.parent} is damaged" in again.stdout + again.stderr
    assert "rebuilding it" in again.stdout + again.stderr
    assert set(mlflow_runs(home)["status"]) == {"FINISHED"}
