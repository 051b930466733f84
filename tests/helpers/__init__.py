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


# MLflow's variables are the defaults of mlflow.tracking_uri and mlflow.experiment_name, and MLflow's
# set_tracking_uri (``mlflow_runs`` below) exports the URI it is given: a command gets them only
# when its test gives them.
MLFLOW_DEFAULTS = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")


def command_environment(home, env=None):
    """The environment a test's command runs in: this process's, with FNN_SWEEP_HOME=home, without
    MLflow's defaults unless ``env`` sets them."""
    inherited = {k: v for k, v in os.environ.items() if k not in MLFLOW_DEFAULTS}
    return {**inherited, "FNN_SWEEP_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}


def run_pipeline(home, *args, module="pipeline", timeout=600, env=None, cwd=REPO):
    """Run `python -m <module> ARGS` as a user would, with FNN_SWEEP_HOME=home."""
    env = command_environment(home, env)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_pipeline(home, *args, module="pipeline"):
    """Start `python -m <module> ARGS` in its own session (to signal its process group), output in
    ``.stdout`` as text lines."""
    env = command_environment(home)
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def store_uri(home):
    return f"sqlite:///{home}/mlflow.db"


def new_sqlite_store(path):
    """A new, empty MLflow SQLite store at ``path``, made as the pipeline makes one: a copy of the
    migrated empty store (``store_template``; MLflow's own migrations take 1-1.5 s a store). Its URI."""
    from pipeline.tracking import store_template

    store_template.seed_new_store(Path(path))
    return f"sqlite:///{path}"


def query_without_write_access(db, sql):
    """Run ``sql`` on a copy of the SQLite file ``db``, in a process that cannot write beside it (a
    colleague reading a shared store, a read-only mount): its rows, or ``"error: ..."``."""
    import ast
    import shutil
    import stat
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="fnn-sweep-readonly-", dir="/tmp"))
    try:
        shutil.copyfile(db, directory / "mlflow.db")
        (directory / "mlflow.db").chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        directory.chmod(0o555)  # nobody may create a file here, the owner included
        command = [sys.executable, "-c", QUERY, str(directory / "mlflow.db"), sql]
        if os.geteuid() == 0:  # root writes anywhere: read as nobody instead, with the system's Python
            if shutil.which("setpriv") is None or not os.access("/usr/bin/python3", os.X_OK):
                import pytest

                pytest.skip("running as root without setpriv (util-linux) or /usr/bin/python3 to read as nobody")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", *command[1:]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return ast.literal_eval(done.stdout)  # the rows, or the error as a string
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


QUERY = """
import sqlite3, sys
try:
    print(repr(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchall()))
except sqlite3.Error as exc:
    print(repr(f"error: {exc}"))
"""


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
                raise RuntimeError(
                    f"{process.args[:4]} exited with {process.returncode} before {url} answered"
                ) from None
            if time.time() > deadline:
                raise RuntimeError(f"{url} did not answer within {seconds} s") from None
            time.sleep(0.5)


def stop(process, seconds=30, signum=signal.SIGTERM):
    """``signum`` to a process group started with start_new_session=True, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signum)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=seconds)


class ServerURL(str):
    """A server's URL that also knows where the server keeps its artifacts."""

    artifacts: Path


@contextmanager
def mlflow_server(directory, *extra_args, backend_store_uri=None, env=None):
    """A real `mlflow server` on 127.0.0.1 (SQLite store in ``directory`` unless given); yields its URL."""
    port = free_port()
    Path(directory).mkdir(parents=True, exist_ok=True)
    artifacts = Path(directory) / "server-artifacts"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            backend_store_uri or f"sqlite:///{directory}/server.db",
            "--artifacts-destination",
            str(artifacts),
            "--workers",
            "1",
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(Path(directory) / "server.log", "w"),
        start_new_session=True,
        # MLflow's server jobs (GenAI scoring, trace archival) start three more interpreters, which
        # import MLflow for 10 s after the server answers, on the cores the tests' sweeps need.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})},
    )
    url = ServerURL(f"http://127.0.0.1:{port}")
    url.artifacts = artifacts
    try:
        wait_for_http(f"{url}/health", server, seconds=120)
        yield url
    finally:
        stop(server)


def postgres_bindir():
    """Debian's PostgreSQL server binaries (package postgresql), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@contextmanager
def postgres_server():
    """A throw-away PostgreSQL cluster on 127.0.0.1; yields a function that makes a fresh database in
    it and returns its postgresql:// URI (one cluster for a module's tests: it takes a few seconds to
    start and to stop).

    As root it runs as the postgres user (initdb refuses root), in a directory of its own: pytest's
    temporary directories are private to root.
    """
    import itertools
    import shutil
    import tempfile

    bindir = postgres_bindir()
    directory = Path(tempfile.mkdtemp(prefix="fnn-sweep-postgres-"))
    data, sockets = directory / "pgdata", directory / "pgsock"
    sockets.mkdir()
    as_user = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        for path in (directory, sockets):
            shutil.chown(path, "postgres", "postgres")
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "fnn", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    server = subprocess.Popen(
        [*as_user, str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(sockets)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    numbers = itertools.count(1)

    def new_database():
        name = f"db{next(numbers)}"
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "fnn", name],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return f"postgresql://fnn@127.0.0.1:{port}/{name}"

    try:
        deadline = time.time() + 60
        while (
            subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            ).returncode
            != 0
        ):
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"postgres did not start (exit {server.poll()})")
            time.sleep(0.3)
        yield new_database
    finally:
        stop(server, signum=signal.SIGINT)  # PostgreSQL's fast shutdown: SIGTERM waits for every client to leave
        shutil.rmtree(directory, ignore_errors=True)
