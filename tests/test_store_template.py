"""A new SQLite store is a copy of an empty migrated one: a real MLflow store, made once per version."""

import os
import sqlite3

import mlflow
from mlflow import MlflowClient

from pipeline.tracking import store_template


def test_a_seeded_store_is_a_working_mlflow_store_with_its_own_default_experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    for path in (first, second):
        path.parent.mkdir()
        store_template.seed_new_store(path)
        assert path.is_file()
    template = store_template.template_path()
    assert template.is_file() and mlflow.__version__ in template.name
    with sqlite3.connect(template) as db:  # MLflow adds the Default experiment, with the copy's own root
        assert db.execute("select count(*) from experiments").fetchone() == (0,)

    client = MlflowClient(f"sqlite:///{first}")
    experiment_id = client.create_experiment("x", artifact_location=str(tmp_path / "a" / "artifacts"))
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "m", 1.0)
    client.set_terminated(run.info.run_id)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    assert [e.name for e in client.search_experiments()] == ["x", "Default"]
    # Copies are independent stores.
    assert [e.name for e in MlflowClient(f"sqlite:///{second}").search_experiments()] == ["Default"]


def test_an_existing_store_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "mlflow.db"
    path.write_bytes(b"user data")
    store_template.seed_new_store(path)
    assert path.read_bytes() == b"user data"


def test_an_unwritable_cache_falls_back_to_mlflow_creating_the_store(tmp_path, monkeypatch):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    path = tmp_path / "mlflow.db"
    store_template.seed_new_store(path)
    assert not path.exists() and list(tmp_path.iterdir()) == [blocked]


def test_opening_a_store_creates_nothing_until_it_is_used(tmp_path):
    """A read-only command opens the handle before it knows the store exists: no file may appear."""
    from pipeline.tracking.store import open_store

    path = tmp_path / "typo.db"
    handle = open_store(f"sqlite:///{path}")
    assert handle is open_store(f"sqlite:///{path}") and handle.uri == f"sqlite:///{path}"  # once per process
    assert not path.exists()
    handle.client.search_experiments()  # first use: MLflow makes the store
    assert path.exists()


def test_opening_a_store_leaves_mlflows_variable_as_the_user_set_it(tmp_path, monkeypatch):
    """MLflow's ``set_tracking_uri`` exports the URI to MLFLOW_TRACKING_URI; the user's value (the default
    of mlflow.tracking_uri for later configs), or its absence, stays, and MLflow's fluent API still
    uses the store opened."""
    from pipeline.tracking.store import open_store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    handle = open_store(f"sqlite:///{tmp_path}/a.db")
    assert "MLFLOW_TRACKING_URI" not in os.environ and mlflow.get_tracking_uri() == handle.uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    handle = open_store(f"sqlite:///{tmp_path}/b.db")
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000" and mlflow.get_tracking_uri() == handle.uri
