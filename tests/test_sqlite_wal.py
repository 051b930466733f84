"""A SQLite store on this machine's disk is in write-ahead-log mode, folded into its file at the end."""

import contextlib
import shutil
import sqlite3
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

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


def test_the_log_of_a_process_that_never_closed_is_folded_into_the_file(local_tmp):
    """A copy of the database file alone holds every committed row once ``checkpoint`` ran."""
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

    sqlite_wal.checkpoint(db)
    assert not wal.exists() or wal.stat().st_size == 0  # its connection was the last one: no log left
    shutil.copyfile(db, copy)
    with contextlib.closing(sqlite3.connect(copy)) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (500,)
