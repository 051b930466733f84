"""Each private API of a dependency (pipeline/runtime/compat.py) still exists in the installed version.

A failure here names the dependency and what moved: update compat.py, whose fallback keeps the
public behaviour meanwhile.
"""

import inspect
import multiprocessing
import sqlite3
from importlib.metadata import version

import pytest

from helpers import REPO, new_sqlite_store
from pipeline.runtime import compat


def moved(dependency, what):
    return f"{dependency} {version(dependency)}: {what} has moved; update pipeline/runtime/compat.py"


def test_loky_can_be_told_to_fork_from_our_server():
    from joblib.externals.loky.backend import context

    assert "force" in inspect.signature(context.set_start_method).parameters, moved(
        "joblib", "loky's context.set_start_method(force=)"
    )
    previous = context.get_start_method()
    try:
        assert compat.loky_forks_from_server() and context.get_start_method() == "forkserver"
    finally:
        context.set_start_method(previous, force=True)


def test_loky_says_whether_an_executor_exists_without_starting_one():
    from joblib.externals.loky import reusable_executor

    assert hasattr(reusable_executor, "_executor"), moved("joblib", "loky's reusable_executor._executor")
    assert compat.existing_loky_executor() is reusable_executor._executor


def test_a_dead_worker_has_its_exception_class():
    died = compat.terminated_worker_error()
    assert died is not None and issubclass(died, Exception), moved("joblib", "loky's TerminatedWorkerError")


def test_joblib_reckons_pre_dispatch_where_compat_asks_it():
    assert compat.joblib_dispatch_count("2*n_jobs", 3) == 6
    assert compat.joblib_dispatch_count("n_jobs - 5", 2) == -3
    with pytest.raises(ValueError):
        compat.joblib_dispatch_count("foo", 2)


def test_the_fork_servers_pid_is_where_compat_reads_it():
    from multiprocessing import forkserver

    assert hasattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid"), (
        f"Python {multiprocessing.sys.version.split()[0]}: multiprocessing.forkserver._forkserver."
        "_forkserver_pid has moved; update pipeline/runtime/compat.py"
    )
    compat.kill_forkserver()  # none runs in this process: a no-op, no error


def test_mlflow_private_helpers_exist():
    from mlflow.utils import requirements_utils

    assert callable(getattr(requirements_utils, "_init_packages_to_modules_map", None)), moved(
        "mlflow", "requirements_utils._init_packages_to_modules_map"
    )
    compat.warm_mlflow_requirements_map()
    compat.warm_mlflow_sql_store()
    assert compat.dataset_context_tag() == compat.DATASET_CONTEXT_TAG, moved("mlflow", "MLFLOW_DATASET_CONTEXT")
    assert compat.close_idle_sql_connections("/no/such/store.db"), moved("mlflow", "SqlAlchemyStore._engine_map")


def test_mlflow_adds_its_source_tags_and_finds_the_git_commit():
    tags = compat.source_tags({"fnn_sweep.role": "job"})
    assert tags["fnn_sweep.role"] == "job" and "mlflow.user" in tags, moved("mlflow", "context.registry.resolve_tags")
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    commit = compat.git_commit(REPO)
    assert commit is not None and len(commit) == 40, moved("mlflow", "git_utils.get_git_commit")


def test_an_empty_store_has_mlflows_schema_and_no_default_experiment(tmp_path):
    db = tmp_path / "store.db"
    compat.make_empty_sqlite_store(db, tmp_path / "artifacts")
    with sqlite3.connect(db) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        experiments = connection.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]
    connection.close()
    assert {"experiments", "experiment_tags", "runs", "alembic_version"} <= tables, moved(
        "mlflow", "the SQL store's schema"
    )
    assert experiments == 0


def test_the_tag_index_serves_mlflows_tag_filters(tmp_path):
    """MLflow's own query for a run tag's value (a config's hash, a sweep's id) uses the index."""
    from mlflow import MlflowClient
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    db = tmp_path / "store.db"
    new_sqlite_store(db)  # what make_empty_sqlite_store makes, copied
    compat.index_tag_values(db)
    compat.index_tag_values(db)  # again: a no-op
    client = MlflowClient(f"sqlite:///{db}")
    experiment_id = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    for i in range(3):
        client.create_run(experiment_id, tags={"config_hash": f"h{i}"})
    queries = []

    def record(connection, cursor, statement, parameters, context, executemany):
        if "FROM runs" in statement and "tags" in statement:
            queries.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        (found,) = client.search_runs([experiment_id], filter_string="tags.config_hash = 'h1'")
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert found.data.tags["config_hash"] == "h1" and queries
    with sqlite3.connect(db) as connection:
        plan = str(connection.execute(f"EXPLAIN QUERY PLAN {queries[0][0]}", queries[0][1]).fetchall())
    connection.close()
    assert compat.TAG_VALUES_INDEX in plan, moved(
        "mlflow", f"its tag filter's SQL, which the index no longer serves: {plan}"
    )


def test_metric_histories_read_in_bulk_equal_mlflows_run_by_run(tmp_path, monkeypatch):
    """The SQL store's bulk read gives each run's points as ``get_metric_history`` does, in step order
    (a step logged twice, by a resumed job, keeps both points in time order); other stores fall back."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    db = tmp_path / "store.db"
    new_sqlite_store(db)  # what make_empty_sqlite_store makes, copied
    client = MlflowClient(f"sqlite:///{db}")
    experiment_id = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    run_ids = [client.create_run(experiment_id).info.run_id for _ in range(4)]
    now = int(time.time() * 1000)
    for i, run_id in enumerate(run_ids[:3]):  # the fourth has no such metric
        steps = [2, 0, 1, 1] if i == 0 else list(range(i + 2))  # out of order, and step 1 twice
        points = [Metric("loss", 10.0 * i + k, now + k, step) for k, step in enumerate(steps)]
        client.log_batch(run_id, metrics=[*points, Metric("other", 1.0, now, 0)])
    expected = {
        r: [m.value for m in sorted(client.get_metric_history(r, "loss"), key=lambda m: m.step)] for r in run_ids
    }
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    assert callable(getattr(store, "get_metric_history_bulk", None)), moved(
        "mlflow", "MlflowClient._tracking_client.store.get_metric_history_bulk"
    )
    monkeypatch.setattr(compat, "HISTORY_BULK_RUNS", 3)  # two queries
    assert compat.metric_histories(client, run_ids, "loss") == expected
    assert expected[run_ids[0]] == [1.0, 2.0, 3.0, 0.0] and expected[run_ids[3]] == []
    monkeypatch.setattr(store, "get_metric_history_bulk", None)  # a store without it: run by run
    assert compat.metric_histories(client, run_ids, "loss") == expected


def test_a_worker_keeps_hydras_plugin_registry_from_job_to_job():
    """Hydra's ``Singleton.set_state`` (every joblib job) scans the plugins again; wrapped, the registry
    stays, and it still finds Hydra's launchers."""
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton
    from hydra.plugins.launcher import Launcher

    assert isinstance(getattr(Singleton, "_instances", None), dict), moved("hydra-core", "Singleton._instances")
    original = Singleton.__dict__["set_state"]
    try:
        registry = Plugins.instance()
        Singleton.set_state(Singleton.get_state())
        assert Plugins.instance() is not registry  # Hydra's own: scanned again
        assert compat.keep_hydra_plugins_between_jobs() and compat.keep_hydra_plugins_between_jobs()  # once
        registry = Plugins.instance()
        Singleton.set_state(Singleton.get_state())
        assert Plugins.instance() is registry
        assert "BasicLauncher" in {cls.__name__ for cls in Plugins.instance().discover(Launcher)}
    finally:
        Singleton.set_state = original


def test_a_new_run_is_made_active_as_start_run_makes_it(tmp_path, monkeypatch):
    """The created run becomes the fluent API's active run without reading it back; MLflow's
    ``start_run`` still does it when another run is active or system metrics are on."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    assert isinstance(getattr(fluent, "_active_run_stack", None), fluent.ThreadLocalVariable), moved(
        "mlflow", "fluent._active_run_stack"
    )
    db = tmp_path / "store.db"
    new_sqlite_store(db)  # what make_empty_sqlite_store makes, copied
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    created = client.create_run(experiment_id, run_name="job")
    reads = []
    monkeypatch.setattr(TrackingServiceClient, "get_run", lambda self, run_id: reads.append(run_id))
    with compat.activate_new_run(created) as active:
        assert mlflow.active_run().info.run_id == active.info.run_id == created.info.run_id
        mlflow.log_metric("loss", 0.5, step=0)
    assert reads == []
    monkeypatch.undo()
    finished = client.get_run(created.info.run_id)
    assert finished.info.status == "FINISHED" and finished.data.metrics == {"loss": 0.5}

    with mlflow.start_run(experiment_id=experiment_id):  # another run active: start_run's own refusal
        with pytest.raises(Exception, match="already active"):
            compat.activate_new_run(client.create_run(experiment_id))
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    opened = []
    monkeypatch.setattr(mlflow, "start_run", lambda run_id: opened.append(run_id))
    compat.activate_new_run(last := client.create_run(experiment_id))
    assert opened == [last.info.run_id]


def test_a_runs_first_artifact_goes_where_it_was_created_without_reading_it_back(tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking._tracking_service import utils
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    assert hasattr(getattr(utils, "_artifact_repos_cache", None), "popitem"), moved(
        "mlflow", "_tracking_service.utils._artifact_repos_cache"
    )
    db = tmp_path / "store.db"
    new_sqlite_store(db)  # what make_empty_sqlite_store makes, copied
    uri = f"sqlite:///{db}"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment_id).info
    compat.remember_artifact_location(run.run_id, run.artifact_uri, uri)

    def no_read(self, run_id):
        raise AssertionError("the run was read back")

    monkeypatch.setattr(TrackingServiceClient, "get_run", no_read)
    client.log_text(run.run_id, "a: 1\n", "config.yaml")
    assert (tmp_path / "artifacts" / run.run_id / "artifacts" / "config.yaml").read_text() == "a: 1\n"
