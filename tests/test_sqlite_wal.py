"""A SQLite store on this machine's disk is in write-ahead-log mode while a command uses it, folded into
its file and back in its rollback journal at the end."""

import contextlib
import shutil
import sqlite3
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from helpers import new_sqlite_store, query_without_write_access
from pipeline.tracking import sqlite_wal, store


def journal_mode(path):
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute("PRAGMA journal_mode").fetchone()[0]


@pytest.fixture
def local_tmp(tmp_path):
    kind = sqlite_wal.filesystem_type(tmp_path)
    if kind not in sqlite_wal.LOCAL_FILESYSTEMS:
        pytest.skip(f"the temporary directory is on a {kind} filesystem, where the store keeps its journal")
    return tmp_path


def test_the_filesystem_type_is_the_one_findmnt_reports(tmp_path):
    findmnt = shutil.which("findmnt")
    if findmnt is None or sqlite_wal.filesystem_type(tmp_path) is None:
        pytest.skip("no findmnt (util-linux) or no /proc/self/mountinfo to compare")
    for path in (tmp_path, "/proc", "/dev"):
        command = [findmnt, "-n", "-o", "FSTYPE", "--target", str(path)]
        reported = subprocess.run(command, capture_output=True, text=True)
        assert sqlite_wal.filesystem_type(path) == reported.stdout.strip(), path


def test_a_new_store_is_in_wal_mode(local_tmp, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(local_tmp / "cache"))
    db = local_tmp / "store" / "mlflow.db"
    mlflow_cfg = SimpleNamespace(tracking_uri=f"sqlite:///{db}", experiment_name="x", artifact_location=None)
    store.prepare_experiment(mlflow_cfg)
    assert journal_mode(db) == "wal"


def test_a_store_on_a_network_filesystem_keeps_its_journal(local_tmp):
    """Where the store's directory is an NFS mount (its line added to this machine's real mount table),
    WAL's shared memory would not reach the other nodes: the file is left as it is."""
    db = local_tmp / "mlflow.db"
    sqlite3.connect(db).close()
    mounts = sqlite_wal.MOUNTINFO.read_text() + f"999 1 0:99 / {local_tmp} rw,relatime - nfs4 server:/export rw\n"
    assert sqlite_wal.filesystem_type(db, mounts) == "nfs4"
    assert not sqlite_wal.use_write_ahead_log(db, mounts)
    assert journal_mode(db) == "delete"


def test_a_reader_mid_transaction_holds_the_switch_up_for_a_second_only(local_tmp):
    db = local_tmp / "mlflow.db"
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as reader:
        reader.execute("CREATE TABLE runs (id TEXT)")
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM runs").fetchall()  # holds a shared lock until the transaction ends
        start = time.monotonic()
        assert not sqlite_wal.use_write_ahead_log(db)
        assert time.monotonic() - start < sqlite_wal.BUSY_TIMEOUT_S + 1
        reader.execute("COMMIT")
    assert journal_mode(db) == "delete"
    assert sqlite_wal.use_write_ahead_log(db) and journal_mode(db) == "wal"


WRITE_AND_DIE = """
import os, sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
connection.execute("CREATE TABLE runs (id INTEGER)")
connection.executemany("INSERT INTO runs VALUES (?)", [(i,) for i in range(500)])
connection.commit()
os._exit(0)  # as a worker ends: its connection never closed
"""


def test_at_the_end_the_log_is_folded_and_the_file_is_an_ordinary_database_again(local_tmp):
    """After ``end_write_ahead_log`` a copy of the database file alone holds every committed row, even
    those of a process that never closed its connection, and a reader that cannot write beside the
    file can open it (a WAL file it could not: its readers must create ``<db>-shm``)."""
    db = local_tmp / "mlflow.db"
    sqlite3.connect(db).close()
    assert sqlite_wal.use_write_ahead_log(db)
    subprocess.run([sys.executable, "-c", WRITE_AND_DIE, str(db)], check=True)
    wal = db.with_name("mlflow.db-wal")
    assert wal.stat().st_size > 0  # the rows are in the log only
    copy = local_tmp / "copy.db"
    shutil.copyfile(db, copy)
    with contextlib.closing(sqlite3.connect(copy)) as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []
    assert query_without_write_access(db, "SELECT count(*) FROM runs").startswith("error: ")

    assert sqlite_wal.end_write_ahead_log(db) == "delete" and journal_mode(db) == "delete"
    assert not wal.exists() or wal.stat().st_size == 0
    shutil.copyfile(db, copy)
    with contextlib.closing(sqlite3.connect(copy)) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (500,)
    assert query_without_write_access(db, "SELECT count(*) FROM runs") == [(500,)]
    assert sqlite_wal.use_write_ahead_log(db)  # the next command's switch


def test_while_another_process_has_the_file_open_it_is_folded_and_stays_in_wal_mode(local_tmp):
    """`mlflow ui` or a second sweep holding the file: no wait for it, the log folded all the same;
    the last command to end alone puts the file back."""
    db = local_tmp / "mlflow.db"
    sqlite3.connect(db).close()
    assert sqlite_wal.use_write_ahead_log(db)
    with contextlib.closing(sqlite3.connect(db)) as other:
        other.execute("CREATE TABLE runs (id INTEGER)")
        other.executemany("INSERT INTO runs VALUES (?)", [(i,) for i in range(50)])
        other.commit()
        start = time.monotonic()
        assert sqlite_wal.end_write_ahead_log(db) == "wal"
        assert time.monotonic() - start < 0.5
        assert db.with_name("mlflow.db-wal").stat().st_size == 0  # folded
        copy = local_tmp / "copy.db"
        shutil.copyfile(db, copy)
        with contextlib.closing(sqlite3.connect(copy)) as connection:
            assert connection.execute("SELECT count(*) FROM runs").fetchone() == (50,)
    assert sqlite_wal.end_write_ahead_log(db) == "delete"


def test_this_processs_own_mlflow_connections_are_closed_before_the_switch(local_tmp, monkeypatch):
    """MLflow keeps its connections pooled, which would keep every command's store in WAL mode: the
    store closes them (``compat.close_idle_sql_connections``) and MLflow reopens them when used again."""
    import mlflow

    monkeypatch.setenv("XDG_CACHE_HOME", str(local_tmp / "cache"))
    db = local_tmp / "mlflow.db"
    uri = new_sqlite_store(db)
    assert sqlite_wal.use_write_ahead_log(db)
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("x", artifact_location=str(local_tmp / "artifacts"))
    client.create_run(experiment_id)
    client.create_registered_model("best")  # the model registry's own engine
    assert sqlite_wal.end_write_ahead_log(db) == "wal"  # MLflow's pooled connections hold it
    store.open_store(uri)  # as a command's store: folded at its exit
    store.fold_write_ahead_logs()
    assert journal_mode(db) == "delete"
    assert len(client.search_runs([experiment_id])) == 1  # MLflow reconnects
