"""Test helpers, in one place: run the real commands, read the store, start and stop servers."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAST = ("quiet=true", "mlflow.log_model=false")  # no epoch lines, no model: the quick path through a job


def run_pipeline(home, *args, module="pipeline", timeout=600, env=None):
    """Run `python -m <module> ARGS` as a user would, with FNN_SWEEP_HOME=home."""
    env = {**os.environ, "FNN_SWEEP_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def store_uri(home):
    return f"sqlite:///{home}/mlflow.db"


def mlflow_runs(home_or_uri, experiment="fnn-sweep"):
    """All runs of the experiment, raw ``mlflow.search_runs`` columns (the store as MLflow shows it)."""
    import mlflow

    uri = str(home_or_uri)
    mlflow.set_tracking_uri(uri if "://" in uri else store_uri(uri))
    return mlflow.search_runs(experiment_names=[experiment])


def jobs_of(runs):
    return runs[runs["tags.fnn_sweep.role"] == "job"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url, process, seconds=90):
    """Poll ``url`` until it answers; fail if ``process`` dies or time runs out."""
    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[:4]} exited with {process.returncode} before {url} answered")
            if time.time() > deadline:
                raise RuntimeError(f"{url} did not answer within {seconds} s")
            time.sleep(0.5)


def stop(process, seconds=30):
    """SIGTERM a process group started with start_new_session=True, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=seconds)


@contextmanager
def mlflow_server(directory, *extra_args):
    """A real `mlflow server` on 127.0.0.1 with a SQLite store in ``directory``; yields its URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{directory}/server.db", "--artifacts-destination",
         str(Path(directory) / "server-artifacts"), "--workers", "1", *extra_args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server, seconds=120)
        yield url
    finally:
        stop(server)
