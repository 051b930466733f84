"""A SQLite store in write-ahead-log mode while a command uses it, where that is safe: a file on this
machine's own disk.

In SQLite's default (rollback journal) mode every commit writes and syncs a journal and the database,
and a writer locks out every reader: a sweep's workers and its progress poller wait on one another
at each epoch's metrics, each param batch and each run's end. In WAL mode a commit appends to one
log (synced once, so a committed run is as durable as before) and readers never wait for the writer.
Measured (2 cores, 96-job study of small models): 0.045 s a job less, most of it in the run's
writes and epoch metrics.

The mode is kept in the file, and a WAL file can be read only by a process that can write beside
it (its readers share an index file, ``<db>-shm``): a colleague without write access to the store's
directory, or a read-only copy, could not open it at all. So at a command's end the file goes back
to the rollback journal (``end_write_ahead_log``), unless another process still has it open (`mlflow
ui`, a second sweep): then the last command to end alone puts it back. SQLite's WAL also needs every
process that opens the file on one host (the index is shared memory): on a network filesystem (NFS,
Lustre, GPFS, CIFS, ...), where a cluster's nodes share a store, the file keeps its journal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

log = logging.getLogger("pipeline")

# Filesystems of this machine's own disks and memory, where SQLite's WAL works. Any other type
# (network, FUSE, unknown) keeps the rollback journal.
LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "bcachefs", "tmpfs", "overlay"}
)
MOUNTINFO = Path("/proc/self/mountinfo")
# A reader or writer of another process (`mlflow ui`, a second sweep) mid-transaction holds up a
# switch or a checkpoint: waiting longer than this is never worth it.
BUSY_TIMEOUT_S = 1.0


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem ``path`` is on ("ext4", "nfs4"), from ``/proc/self/mountinfo``
    (or ``mountinfo``, its text); None where there is no such file (not Linux)."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in mountinfo.splitlines():
        # "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
        fields, _, rest = line.partition(" - ")
        parts, after = fields.split(), rest.split()
        if len(parts) < 5 or not after:
            continue
        mount_point = parts[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):  # the last of equal mounts is the one on top
            best, best_type = mount_point, after[0]
    return best_type


def use_write_ahead_log(db_path: Path, mountinfo: str | None = None) -> bool:
    """Switch the SQLite file ``db_path`` to WAL mode if it is on a local filesystem; True when it
    is in WAL mode afterwards. A switch that a busy reader holds up leaves the file as it was."""
    if filesystem_type(db_path.parent, mountinfo) not in LOCAL_FILESYSTEMS:
        return False
    try:
        with contextlib.closing(sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S)) as connection:
            (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
    except sqlite3.Error as exc:
        log.debug(f"{db_path} keeps its journal mode: {exc}")
        return False
    return str(mode).lower() == "wal"


def end_write_ahead_log(db_path: Path) -> str | None:
    """At a command's end: fold the WAL into the database file and put the file back in SQLite's
    default (rollback journal) mode, so that the file alone holds every run and any reader can open
    it. While another process has the file open, only the fold: the file stays in WAL mode.

    SQLite folds the log into the file by itself every 1,000 pages and when the last connection
    closes, but a command's processes end without closing theirs: without this, the runs of its last
    few megabytes of writes would be in ``<db>-wal`` only, and a copy of the database file alone
    would lack them. This process's own idle connections must be closed first
    (``compat.close_idle_sql_connections``). Returns the file's journal mode afterwards (None: not read).
    """
    if not db_path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S)) as connection:
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                return str(mode).lower()
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            # Leaving WAL needs the file alone: another process's connection is not waited for.
            connection.execute("PRAGMA busy_timeout = 0")
            try:
                (mode,) = connection.execute("PRAGMA journal_mode=DELETE").fetchone()
            except sqlite3.OperationalError as exc:  # "database is locked": open elsewhere
                log.debug(f"{db_path} stays in WAL mode while another process has it open: {exc}")
            return str(mode).lower()
    except sqlite3.Error as exc:
        log.debug(f"{db_path}: write-ahead log not folded in now: {exc}")
        return None
