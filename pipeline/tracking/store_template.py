"""A new SQLite store as a copy of an empty, fully migrated one.

MLflow creates a SQLite store by running every schema migration since its
first release: 1.2 s here on an idle machine, 2.9 s while a sweep's workers
start, paid by every new store (a user's first sweep, each test, each
benchmark run). The result is the same file for a given MLflow version, so
it is made once per machine and version, under the cache directory, and
copied. MLflow adds its Default experiment (id 0) when it first opens the
copy, with the copy's own artifact root.
"""

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import mlflow


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/fnn-sweep/mlflow-store (or ~/.cache/...)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fnn-sweep" / "mlflow-store"


def template_path() -> Path:
    return cache_dir() / f"empty-mlflow-{mlflow.__version__}.db"


def _make_template(path):
    """Create the empty store in a scratch directory, drop the Default experiment, then publish it
    atomically (another process may be making the same file)."""
    from pipeline.runtime import compat

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        db = Path(scratch) / "store.db"
        compat.make_empty_sqlite_store(db, Path(scratch) / "artifacts")
        os.replace(db, path)


def seed_new_store(path: Path) -> None:
    """If the SQLite file ``path`` does not exist yet, make it a copy of the migrated empty store.

    The caller holds the store's lock. Any failure leaves ``path`` absent, and MLflow creates it as usual.
    """
    if path.exists():
        return
    try:
        template = template_path()
        if not template.exists():
            _make_template(template)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        shutil.copyfile(template, partial)
        os.replace(partial, path)
    except (OSError, sqlite3.Error, mlflow.MlflowException):
        Path(path.with_name(f".{path.name}.{os.getpid()}.partial")).unlink(missing_ok=True)
