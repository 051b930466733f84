"""Every private API of a dependency that this project uses, in one place, each behind a function
with a fallback that keeps the public behaviour when a release moves it.

==============================  ===========================================  ==============================
what for                        private API (dependency)                     without it
==============================  ===========================================  ==============================
workers fork from our server    loky ``context.set_start_method(force=...)``   loky starts its own workers
                                (joblib's vendored loky)                     (slower start-up, same jobs)
workers exit before the report  loky ``reusable_executor._executor``          they exit at interpreter exit
a worker killed from outside    loky ``process_executor.TerminatedWorkerError``  its traceback, exit 1
a bad ``pre_dispatch`` found    joblib ``_utils.eval_expr``                  found when the sweep launches
before any run                                                               (joblib's traceback, exit 1)
the server ends with the        ``multiprocessing.forkserver._forkserver.``  it ends after its imports
command                         ``_forkserver_pid`` (CPython)
no 0.2-0.3 s in a first model   ``mlflow.utils.requirements_utils.``         MLflow builds it at the first
                                ``_init_packages_to_modules_map``            model, as before
a new store in 0.01 s, not 1-3  ``mlflow.store...SqlAlchemyStore``, and its  MLflow migrates each new store
                                schema's ``experiments`` tables (raw SQL)
a worker's run tags its source  ``mlflow.tracking.context.registry.``        runs lack MLflow's source tags
                                ``resolve_tags``
the git commit of the checkout  ``mlflow.utils.git_utils.get_git_commit``    no commit tag
the dataset input's context     ``mlflow.utils.mlflow_tags.``                the value MLflow 3 uses
                                ``MLFLOW_DATASET_CONTEXT``
many runs' loss curves at once  ``MlflowClient._tracking_client.store``,     one ``get_metric_history``
                                its ``get_metric_history_bulk`` (SQL store)  per run (2,000: about 1 s)
a new run active in 1 write,    ``mlflow.tracking.fluent._active_run_stack``  ``mlflow.start_run(run_id=...)``:
not 3 reads and writes                                                       it reads the run twice, sets it
                                                                             RUNNING again (6% of a job)
a run's first artifact without  ``mlflow.tracking._tracking_service.utils``  MLflow reads the run (or model)
reading the run back            ``._artifact_repos_cache``                   back to find its artifact URI
a worker's jobs share Hydra's   ``hydra.core.singleton.Singleton``           every job scans Hydra's plugin
plugin registry                 ``._instances`` (its ``set_state`` wrapped)   modules again (17 ms a job)
a store's file back in its      ``SqlAlchemyStore._engine_map`` of MLflow's   the file stays in WAL mode
journal at a command's end      tracking and model registry stores           until a later command's end
==============================  ===========================================  ==============================

``tests/test_compat.py`` checks each one against the installed versions and fails naming the
dependency when one has moved. ``tests/test_pipeline_structure.py`` rejects a private name, or an
``mlflow.utils``/``mlflow.store`` import, anywhere else.
"""

import functools
import os
import signal
import sqlite3
from collections.abc import Sequence
from typing import Any

# ---- joblib's vendored loky ----


def loky_forks_from_server() -> bool:
    """Make loky start its workers with the "forkserver" method (ours); False where it cannot."""
    try:
        from joblib.externals.loky.backend import context

        context.set_start_method("forkserver", force=True)
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
    return True


def existing_loky_executor() -> Any:
    """loky's reusable executor if one was started in this process, else None (never starts one)."""
    try:
        from joblib.externals.loky import reusable_executor
    except ImportError:
        return None
    return getattr(reusable_executor, "_executor", None)


def terminated_worker_error() -> type[BaseException] | None:
    """The exception a joblib launcher raises when a worker process died; None if it moved."""
    try:
        from joblib.externals.loky.process_executor import TerminatedWorkerError
    except ImportError:
        return None
    return TerminatedWorkerError


def joblib_dispatch_count(pre_dispatch: str, n_jobs: int) -> float | None:
    """How many tasks joblib dispatches at once for a ``pre_dispatch`` expression ('2*n_jobs'), as it
    reckons it (``ValueError`` for one it cannot); None if joblib moved its evaluator."""
    try:
        from joblib._utils import eval_expr
    except ImportError:
        return None
    return eval_expr(pre_dispatch.replace("n_jobs", str(n_jobs)))


# ---- Hydra ----


def keep_hydra_plugins_between_jobs() -> bool:
    """In a worker process that runs many jobs, have Hydra keep its plugin registry from job to job.

    Hydra's joblib launcher calls ``Singleton.set_state`` at the start of every job, which drops the
    ``Plugins`` singleton and scans every module of ``hydra_plugins`` again: 17 ms a job, 6% of a
    worker's time in a study of small models. The scan finds the same plugins each time in one
    process, so the registry the worker's first job built is handed to the next. False if Hydra moved.
    """
    try:
        from hydra.core.plugins import Plugins
        from hydra.core.singleton import Singleton

        instances = Singleton._instances
        set_state = Singleton.set_state
    except (ImportError, AttributeError):
        return False
    if not isinstance(instances, dict) or not callable(set_state):
        return False
    if getattr(set_state, "keeps_plugins", False):
        return True

    def set_state_keeping_plugins(state: Any) -> None:
        plugins = Singleton._instances.get(Plugins)
        if plugins is not None and isinstance(state, dict) and isinstance(state.get("instances"), dict):
            state["instances"].setdefault(Plugins, plugins)
        set_state(state)

    set_state_keeping_plugins.keeps_plugins = True  # type: ignore[attr-defined]
    Singleton.set_state = staticmethod(set_state_keeping_plugins)  # type: ignore[method-assign]
    return True


# ---- CPython's multiprocessing ----


def kill_forkserver() -> None:
    """End this process's multiprocessing fork server at once (SIGKILL), if it runs."""
    from multiprocessing import forkserver

    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---- MLflow ----

DATASET_CONTEXT_TAG = "mlflow.data.context"  # MLflow 3's value, if the constant moves


def dataset_context_tag() -> str:
    try:
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
    except ImportError:
        return DATASET_CONTEXT_TAG
    return MLFLOW_DATASET_CONTEXT


def warm_mlflow_requirements_map() -> None:
    """Build MLflow's installed-package map now (a fork server's import), not at the first model."""
    try:
        from mlflow.utils.requirements_utils import _init_packages_to_modules_map
    except ImportError:
        return
    _init_packages_to_modules_map()


def warm_mlflow_sql_store() -> None:
    """Import MLflow's SQL store module (and SQLAlchemy's mappers) ahead of the first query."""
    try:
        from mlflow.store.tracking import sqlalchemy_store  # noqa: F401
    except ImportError:
        return
    from sqlalchemy.orm import configure_mappers

    configure_mappers()


def activate_new_run(run: Any) -> Any:
    """Make ``run``, just created by ``MlflowClient.create_run`` (RUNNING), the active run of MLflow's
    fluent API in this thread, as ``mlflow.start_run(run_id=...)`` does; returns the ``ActiveRun``.

    ``start_run`` would read the run back, set it RUNNING (it is), and read it again: three store
    round trips, 6% of a worker's time in a study of small models. It is still what runs when
    another run is active in this thread, when system metrics are to be logged, or when MLflow moved.
    """
    import mlflow
    from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING

    try:
        from mlflow.tracking.fluent import ActiveRun, _active_run_stack

        stack = _active_run_stack.get()
    except (ImportError, AttributeError):
        stack = None
    if not isinstance(stack, list) or stack or MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.get():
        return mlflow.start_run(run_id=run.info.run_id)
    stack.append(ActiveRun(run))
    return stack[-1]


ARTIFACT_REPOS_KEPT = 1024  # as MLflow's own cache


def remember_artifact_location(resource_id: str, artifact_uri: str, tracking_uri: str) -> None:
    """Tell MLflow's client where the artifacts of a run or logged model just created go.

    At the first artifact of each (a job's config, its model's files) MLflow otherwise reads it back
    from the store for its artifact URI: a ``get_run`` and a ``get_logged_model``, 3.5% of a
    worker's time in a study of small models. Databricks URIs, which MLflow rewrites, are left to it.
    """
    if "databricks" in tracking_uri or "databricks" in artifact_uri:
        return
    try:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        from mlflow.tracking._tracking_service import utils

        cache = utils._artifact_repos_cache
    except (ImportError, AttributeError):
        return
    if not hasattr(cache, "popitem") or resource_id in cache:
        return
    repository = get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
    if len(cache) > ARTIFACT_REPOS_KEPT:
        cache.popitem(last=False)
    cache[resource_id] = repository


def source_tags(tags: dict[str, str]) -> dict[str, str]:
    """``tags`` plus MLflow's own source tags (user, source name and type), as ``mlflow.start_run`` adds."""
    return {**_context_tags(), **tags}


@functools.cache
def _context_tags() -> dict[str, str]:
    # Resolved once per process: they describe the process (its user, entry point and commit), and
    # resolving them asks git each time (3-4 ms a job, twice: the run and its model).
    try:
        from mlflow.tracking.context.registry import resolve_tags
    except ImportError:
        return {}
    return resolve_tags({})


@functools.cache  # once per process: the commit its code was loaded from
def git_commit(path: str | os.PathLike) -> str | None:
    """The commit of the git checkout holding ``path``, or None."""
    try:
        from mlflow.utils.git_utils import get_git_commit
    except ImportError:
        return None
    return get_git_commit(str(path))


TAG_VALUES_INDEX = "fnn_sweep_tag_values"


def index_tag_values(db_path: str | os.PathLike) -> None:
    """Index the run tags of MLflow's SQLite store at ``db_path`` by (key, value), if not yet.

    Every look-up by tag (a config's runs by hash, a sweep's by id or parent run) otherwise reads
    every run's tag of that key: in a store of 3,000 runs, one sweep's 101 runs took 268 ms to
    find, 82 ms with the index. MLflow's schema has no such index; an upgrade that rebuilds the
    table drops it, and the next command makes it again. No-op if the table is not there.
    """
    with sqlite3.connect(db_path, timeout=30) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "tags" in tables:
            connection.execute(f"CREATE INDEX IF NOT EXISTS {TAG_VALUES_INDEX} ON tags (key, value)")
    connection.close()


def close_idle_sql_connections(db_path: str | os.PathLike) -> bool:
    """Close the connections to the SQLite file ``db_path`` that MLflow's SQL stores (tracking, model
    registry) keep idle in their pools in this process; they reopen at the next use. False where
    MLflow keeps its engines elsewhere: they then stay open until the process ends."""
    try:
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

        engines = [*TrackingStore._engine_map.values(), *RegistryStore._engine_map.values()]
    except (ImportError, AttributeError):
        return False
    target = os.path.realpath(db_path)
    for engine in engines:
        database = getattr(getattr(engine, "url", None), "database", None)
        if engine.dialect.name == "sqlite" and database and os.path.realpath(database) == target:
            engine.dispose()
    return True


def make_empty_sqlite_store(db_path: str | os.PathLike, artifact_root: str | os.PathLike) -> None:
    """Create a fully migrated MLflow SQLite store at ``db_path`` without its Default experiment.

    Raises whatever MLflow or SQLite raise: the caller then lets MLflow create stores as usual.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db_path}", str(artifact_root))
    store.engine.dispose()
    with sqlite3.connect(db_path) as connection:
        connection.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
        connection.execute("DELETE FROM experiments WHERE experiment_id = 0")
    connection.close()


HISTORY_BULK_RUNS = 500  # run ids per query: well under SQLite's limit of bound parameters


def metric_histories(client: Any, run_ids: Sequence[str], key: str) -> dict[str, list[float]]:
    """{run id: the values of metric ``key``, in step order} for every run of ``run_ids`` (an empty
    list for a run without it), as ``MlflowClient.get_metric_history`` gives them run by run.

    A SQL store reads them in one query per ``HISTORY_BULK_RUNS`` runs; any other store (a tracking
    server's REST client) run by run, through the public API.
    """
    histories: dict[str, list] = {run_id: [] for run_id in run_ids}
    bulk = getattr(getattr(getattr(client, "_tracking_client", None), "store", None), "get_metric_history_bulk", None)
    if bulk is None:
        for run_id in histories:
            histories[run_id] = list(client.get_metric_history(run_id, key))
    else:
        ids = list(histories)
        for start in range(0, len(ids), HISTORY_BULK_RUNS):
            chunk = ids[start : start + HISTORY_BULK_RUNS]
            for item in bulk(chunk, key, max_results=2**31 - 1):  # by run, then timestamp, as run by run
                histories[item.run_id].append(item)  # a Metric with its run id
    # A stable sort: points logged again at one step (a resumed job) keep their order in time.
    return {run_id: [m.value for m in sorted(points, key=lambda m: m.step)] for run_id, points in histories.items()}
