"""The cluster path, for real: an MLflow server on PostgreSQL, MLflow's authentication, remote launchers."""

import importlib.util
import os
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from helpers import FAST, jobs_of, mlflow_runs, mlflow_server, postgres_bindir, postgres_server, run_pipeline
from pipeline.tracking import layout

pytestmark = pytest.mark.slow  # servers and sweeps
EPOCHS = 3
SWEEP = [
    "dataset=digits",
    "model.activation=relu,tanh,sigmoid",
    "model.hidden_neurons=8,16",
    f"train.epochs={EPOCHS}",
    "quiet=true",
    "report.after_sweep=false",
]


@pytest.fixture(scope="module")
def postgres_cluster():
    """One PostgreSQL cluster for the module's tests (each gets a database of its own)."""
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL's server is not installed (Debian package postgresql; .ci/run installs it)")
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg is not installed: pip install -e '.[server]'")
    with postgres_server() as new_database:
        yield new_database


@pytest.fixture
def postgres_uri(postgres_cluster):
    """A fresh, empty database's URI."""
    return postgres_cluster()


def _client_disk_is_clean(home):
    return not any((home / name).exists() for name in ("mlflow.db", "mlartifacts", "mlruns"))


@pytest.mark.readme(
    "mlflow server --app-name basic-auth --host 127.0.0.1 --port 5000 --backend-store-uri "
    "postgresql://mlflow@dbhost/mlflow --artifacts-destination /srv/mlflow/artifacts",
    "python -m pipeline.report mlflow.tracking_uri=http://HOST:5000",
)
def test_parallel_sweep_against_a_server_on_postgresql(home, tmp_path, postgres_uri):
    with mlflow_server(tmp_path / "server", backend_store_uri=postgres_uri) as url:
        result = run_pipeline(home, "-m", *SWEEP, "hydra.launcher.n_jobs=2", f"mlflow.tracking_uri={url}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "View run" not in result.stdout  # MLflow's two links at each run's end, with a server
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("fnn-sweep")
        runs = client.search_runs([experiment.experiment_id])
        jobs = [r for r in runs if r.data.tags.get(layout.TAG_ROLE) == layout.ROLE_JOB]
        parent = [r for r in runs if r.data.tags.get(layout.TAG_ROLE) == layout.ROLE_SWEEP]
        assert len(jobs) == 6 and len(parent) == 1
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert {r.data.tags[layout.TAG_PARENT] for r in jobs} == {parent[0].info.run_id}
        for run in jobs:
            run_id = run.info.run_id
            # Every param the job logged is its config, as the config artifact on the server says.
            config = yaml.safe_load(
                client.download_artifacts(run_id, layout.ARTIFACT_CONFIG, str(tmp_path))
                and (tmp_path / layout.ARTIFACT_CONFIG).read_text()
            )
            expected = {k: str(v) for k, v in layout.job_params(config).items()}
            assert run.data.params == expected
            for metric in layout.EPOCH_METRICS.values():
                if metric.startswith(("train_", "val_loss", "val_accuracy", "epoch_time")):
                    assert [m.step for m in client.get_metric_history(run_id, metric)] == list(range(EPOCHS))
            stored = {a.path for a in client.list_artifacts(run_id)}
            assert {layout.ARTIFACT_CONFIG, layout.ARTIFACT_CONFUSION_CSV} <= stored
            assert (url.artifacts / experiment.experiment_id / run_id / "artifacts" / layout.ARTIFACT_CONFIG).is_file()
            # MLflow 3 keeps a logged model as an entity of its own, in the server's store too.
            models = client.search_logged_models(
                [experiment.experiment_id], filter_string=f"source_run_id = '{run_id}'"
            )
            assert [m.name for m in models] == [layout.ARTIFACT_MODEL]
            assert (
                url.artifacts / experiment.experiment_id / "models" / models[0].model_id / "artifacts" / "MLmodel"
            ).is_file()
        # The report, from anywhere that reaches the server.
        report = run_pipeline(
            home, f"mlflow.tracking_uri={url}", f"report.out_dir={tmp_path / 'report'}", module="pipeline.report"
        )
        assert report.returncode == 0, report.stderr[-3000:]
        assert len((tmp_path / "report" / "latest" / "table1_test_accuracy.csv").read_text().splitlines()) == 3
    # The runs are rows in PostgreSQL, not in a file of the client's.
    rows = subprocess.run(
        [str(postgres_bindir() / "psql"), postgres_uri, "-tAc", "select count(*) from runs"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert rows == "7"
    assert _client_disk_is_clean(home)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """An `mlflow server --app-name basic-auth` whose admin is fnn with a random password (one for the module:
    it takes 15-25 s to start)."""
    tmp_path = tmp_path_factory.mktemp("auth")
    password = secrets.token_urlsafe(16)
    ini = tmp_path / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path}/auth.db\nadmin_username = fnn\nadmin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    with mlflow_server(tmp_path / "server", "--app-name", "basic-auth", env=env) as url:
        yield url, password


@pytest.mark.parametrize("credentials, accepted", [("right", True), ("none", False), ("wrong", False)])
@pytest.mark.readme(
    "mlflow server --app-name basic-auth --host 127.0.0.1 --port 5000 --backend-store-uri "
    "postgresql://mlflow@dbhost/mlflow --artifacts-destination /srv/mlflow/artifacts"
)
def test_a_shared_server_lets_in_only_valid_credentials(home, auth_server, credentials, accepted, monkeypatch):
    url, password = auth_server
    env = {
        "none": {},
        "right": {"MLFLOW_TRACKING_USERNAME": "fnn", "MLFLOW_TRACKING_PASSWORD": password},
        "wrong": {"MLFLOW_TRACKING_USERNAME": "fnn", "MLFLOW_TRACKING_PASSWORD": "not-" + password},
    }[credentials]
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "fnn")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    before = _run_ids(url)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    result = run_pipeline(
        home,
        "-m",
        "dataset=digits",
        "model.activation=relu,tanh",
        "model.hidden_neurons=8",
        "train.epochs=1",
        *FAST,
        "report.after_sweep=false",
        f"mlflow.tracking_uri={url}",
        env=env,
    )
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "fnn")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    experiment = MlflowClient(url).get_experiment_by_name("fnn-sweep")
    runs = [
        r
        for r in (MlflowClient(url).search_runs([experiment.experiment_id]) if experiment else [])
        if r.info.run_id not in before
    ]
    if accepted:
        assert result.returncode == 0, result.stderr[-3000:]
        assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
        assert not any(password in str(r.data.params) for r in runs)  # credentials never land in params
    else:
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"error: the tracking server {url} refused the credentials (HTTP 401): set MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD, or put them in ~/.mlflow/credentials"
        ]
        assert runs == []  # stopped before training: no new run
    assert _client_disk_is_clean(home)


def _run_ids(url):
    experiment = MlflowClient(url).get_experiment_by_name("fnn-sweep")
    return {r.info.run_id for r in MlflowClient(url).search_runs([experiment.experiment_id])} if experiment else set()


@pytest.mark.readme("python -m pipeline -m mlflow.tracking_uri=http://alice:SECRET@HOST:5000")
def test_a_password_in_the_tracking_uri_reaches_no_param_tag_artifact_file_or_line(home, auth_server, monkeypatch):
    """The URI's password connects, and is nowhere: runs, artifacts, Hydra's files and logs, the console.
    The sweep takes the URI from MLflow's MLFLOW_TRACKING_URI, the report from its command line."""
    url, password = auth_server
    secret_uri = url.replace("http://", f"http://fnn:{password}@")
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    env = {"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""}  # only the URI has them
    before = _run_ids_as_admin(url, password, monkeypatch)
    sweep = run_pipeline(
        home,
        "-m",
        "dataset=digits",
        "model.activation=relu",
        "model.hidden_neurons=8",
        "optimizer.lr=0.1,1e308",
        "train.epochs=1",
        "quiet=true",
        env={**env, "MLFLOW_TRACKING_URI": secret_uri},
    )  # the lr 1e308 job fails: its reason and job.log are searched too
    report = run_pipeline(home, f"mlflow.tracking_uri={secret_uri}", module="pipeline.report", env=env)
    assert sweep.returncode == 1 and report.returncode == 0, sweep.stderr[-2000:] + report.stderr[-2000:]
    assert (
        "mlflow.tracking_uri=http://fnn:***@127.0.0.1" in next((home / "outputs").rglob("overrides.yaml")).read_text()
    )
    console = sweep.stdout + sweep.stderr + report.stdout + report.stderr
    assert password not in console
    files = [p for p in home.rglob("*") if p.is_file()]
    assert files and not [p for p in files if password.encode() in p.read_bytes()]
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "fnn")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    client = MlflowClient(url)
    runs = [
        r
        for r in client.search_runs([client.get_experiment_by_name("fnn-sweep").experiment_id])
        if r.info.run_id not in before
    ]
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED", "FAILED"}
    for run in runs:
        assert password not in str(run.data.params) + str(run.data.tags)
        for artifact in client.list_artifacts(run.info.run_id):
            if not artifact.is_dir:
                assert (
                    password.encode()
                    not in Path(
                        client.download_artifacts(run.info.run_id, artifact.path, str(home / "dl"))
                    ).read_bytes()
                )
    assert any(r.data.params.get("mlflow.tracking_uri", "").startswith("http://fnn:***@") for r in runs)


def _run_ids_as_admin(url, password, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "fnn")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    try:
        return _run_ids(url)
    finally:
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            monkeypatch.delenv(name, raising=False)


def _two_jobs_nested_in_mlflow(home, launcher, *settings, epochs=1):
    """A 2-job sweep through ``launcher``: both runs FINISHED under one parent; returns the job runs."""
    result = run_pipeline(
        home,
        "-m",
        f"hydra/launcher={launcher}",
        *settings,
        "dataset=digits",
        "model.activation=relu,tanh",
        "model.hidden_neurons=8",
        f"train.epochs={epochs}",
        *FAST,
        "report.after_sweep=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow_runs(home)
    jobs = jobs_of(runs)
    assert len(jobs) == 2 and set(jobs["status"]) == {"FINISHED"}
    assert set(jobs["tags.mlflow.parentRunId"]) == {runs[runs["tags.fnn_sweep.role"] == "sweep"]["run_id"].item()}
    return jobs


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra-submitit-launcher is not installed: pip install -e '.[slurm]'",
)
@pytest.mark.readme("python -m pipeline -m hydra/launcher=submitit_local")
def test_submitit_local_launcher_runs_jobs_that_nest_in_mlflow(home):
    # With the grid's early stopping (the two activations compete after epoch 1): its rounds run on
    # submitit too, and the survivor is continued in a process of its own.
    halving = ("hydra.sweeper.halving.rungs=[1]", "hydra.sweeper.halving.compete=[model.activation]")
    jobs = _two_jobs_nested_in_mlflow(home, "submitit_local", *halving, epochs=2)
    assert len(set(jobs["tags.pid"]) | {str(os.getpid())}) == 3  # each job in a process of its own
    assert sorted(jobs["tags.pruned"].fillna("none")) == ["1", "none"]
    assert sorted(jobs["metrics.epochs_run"]) == [1, 2]


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra-submitit-launcher is not installed: pip install -e '.[slurm]'",
)
@pytest.mark.readme(
    "python -m pipeline -m hydra/launcher=slurm hydra.launcher.partition=cpu mlflow.tracking_uri=http://HOST:5000"
)
def test_slurm_command_composes_the_submitit_slurm_launcher(home):
    # Submitting needs a SLURM cluster (sbatch); here the command is run up to its composed launcher config,
    # and the same launcher plugin runs real jobs in test_submitit_local_launcher_runs_jobs_that_nest_in_mlflow.
    result = run_pipeline(
        home,
        "hydra/launcher=slurm",
        "hydra.launcher.partition=cpu",
        "mlflow.tracking_uri=http://HOST:5000",
        "--cfg",
        "hydra",
        "--package",
        "hydra.launcher",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    launcher = yaml.safe_load(result.stdout)  # the hydra.launcher package alone
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher["partition"] == "cpu" and launcher["cpus_per_task"] == 2


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="hydra-ray-launcher is not installed: pip install -e '.[ray]' (see README: Scaling out)",
)
@pytest.mark.readme(
    "python -m pipeline -m hydra/launcher=ray mlflow.tracking_uri=http://HOST:5000",
    "python -m pipeline -m hydra/launcher=ray +hydra.launcher.ray.init.address=auto mlflow.tracking_uri=http://HOST:5000",
)
def test_ray_launcher_runs_jobs_that_nest_in_mlflow(home):
    # A local Ray instance on loopback only, without its dashboard.
    jobs = _two_jobs_nested_in_mlflow(
        home,
        "ray",
        "+hydra.launcher.ray.init._node_ip_address=127.0.0.1",
        "+hydra.launcher.ray.init.include_dashboard=false",
    )
    # Ray gives each job one CPU (num_cpus 1) and runs one per core: one BLAS thread each.
    assert set(jobs["params.compute.blas_threads"]) == {"1"}


def test_a_search_keeps_its_study_in_postgresql_and_its_password_nowhere(home, postgres_uri):
    """hydra.sweeper.storage on a database server: the sweeper and the pruning workers reach it with
    the URI's password, which no run, file or line holds."""
    import optuna

    password = "S3cret-study-pw"
    storage = postgres_uri.replace("postgresql://fnn@", f"postgresql://fnn:{password}@")
    result = run_pipeline(
        home,
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.pruner=median",
        f"hydra.sweeper.storage={storage}",
        "dataset=digits",
        "model.activation=relu",
        "model.hidden_neurons=8",
        "optimizer.lr=interval(0.05, 0.5)",
        "train.epochs=2",
        *FAST,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [name] = optuna.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(len(t.intermediate_values) == 2 for t in trials)  # reported by the jobs, through the server
    assert not (home / "optuna.db").exists()
    assert password not in result.stdout + result.stderr
    files = [p for p in home.rglob("*") if p.is_file()]
    assert files and not [p for p in files if password.encode() in p.read_bytes()]
