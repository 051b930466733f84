"""The model consumer's and the UI user's path, on one real sweep: datasets as run inputs, models that take
arrays and any DataFrame, served over REST, the best one registered, and the MLflow UI in a real browser."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from helpers import free_port, jobs_of, mlflow_runs, run_pipeline, stop, store_uri, wait_for_http

pytestmark = pytest.mark.slow  # real sweeps, servers and a browser
MODEL_NAME = "digits-best"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, mnist_dir):
    """A 2-job sweep on real digits with models, registering its best; yields (home, stdout, jobs, data)."""
    from pipeline.data import load_dataset

    home = tmp_path_factory.mktemp("home")
    result = run_pipeline(
        home,
        "-m",
        f"dataset.dir={mnist_dir}",
        "model.activation=relu,tanh",
        "model.hidden_neurons=32",
        "train.epochs=2",
        "quiet=true",
        "mlflow.log_figures=true",  # each run's PNGs too, which the UI test opens
        f"report.register_best={MODEL_NAME}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = load_dataset({"name": "mnist", "dir": str(mnist_dir)}, val_fraction=0.1, seed=0)
    return home, result.stdout, jobs_of(mlflow_runs(home)), data


def test_the_sweep_ends_saying_how_to_see_it(sweep):
    home, stdout, jobs, _ = sweep
    experiment_id = jobs["experiment_id"].iloc[0]
    assert f"mlflow ui --backend-store-uri {store_uri(home)}" in stdout
    assert f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning" in stdout
    report = (home / "reports" / "latest").resolve() / "report.md"  # the sweep's own folder
    assert f"Report: {report}" in stdout and report.parent.name.startswith("sweep-") and report.is_file()


def test_every_run_logs_its_dataset_as_an_input(sweep):
    home, _, jobs, data = sweep
    client = MlflowClient(store_uri(home))
    for run_id, digest in zip(jobs["run_id"], jobs["tags.dataset_hash"]):
        (logged,) = client.get_run(run_id).inputs.dataset_inputs
        assert logged.dataset.name == "mnist" and logged.dataset.digest == digest == data.content_hash()
        profile = json.loads(logged.dataset.profile)
        assert (profile["train_rows"], profile["validation_rows"], profile["test_rows"]) == (
            len(data.X_train),
            len(data.X_val),
            len(data.X_test),
        )
        assert json.loads(logged.dataset.source)["uri"].endswith("mnist-offline")
        assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "training"}


def test_each_run_has_one_ready_logged_model_with_its_params_results_and_serving_example(sweep):
    """The model page of MLflow 3's UI: the run's params, its test results linked to the model, READY."""
    from mlflow.entities import LoggedModelStatus

    home, _, jobs, _ = sweep
    client = MlflowClient(store_uri(home))
    mlflow.set_tracking_uri(store_uri(home))
    for run_id in jobs["run_id"]:
        run = client.get_run(run_id)
        (output,) = run.outputs.model_outputs
        model = client.get_logged_model(output.model_id)
        assert (model.name, model.source_run_id, model.status) == ("model", run_id, LoggedModelStatus.READY)
        assert model.params == run.data.params
        linked = {m.key: m.value for m in model.metrics}
        assert linked["test_accuracy"] == run.data.metrics["test_accuracy"]
        assert {"training_time_s", "test_loss"} <= set(linked) and not any(k.startswith("val_") for k in linked)
        assert model.tags["mlflow.user"] == run.data.tags["mlflow.user"]
        files = {f.path for f in client.list_logged_model_artifacts(model.model_id)}
        assert {"MLmodel", "serving_input_example.json", "artifacts", "code", "requirements.txt"} <= files
        mlmodel = mlflow.models.Model.load(f"models:/{model.model_id}")
        assert (mlmodel.run_id, mlmodel.model_id) == (run_id, model.model_id)


def test_the_model_takes_arrays_and_any_dataframe_and_reproduces_test_accuracy(sweep):
    home, _, jobs, data = sweep
    mlflow.set_tracking_uri(store_uri(home))
    for run_id, accuracy in zip(jobs["run_id"], jobs["metrics.test_accuracy"]):
        model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
        labels = model.predict(data.X_test)
        assert np.mean(labels == data.y_test) == pytest.approx(accuracy, abs=1e-12)
        pixels = pd.DataFrame(data.X_test, columns=[f"pixel{i}" for i in range(data.n_features)])
        np.testing.assert_array_equal(model.predict(pixels), labels)
        proba = model.predict(data.X_test[:20], params={"output": "proba"})
        assert proba.shape == (20, 10)
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
        np.testing.assert_array_equal(proba.argmax(axis=1), labels[:20])
    with pytest.raises(Exception, match="output='logits' is not valid; choose one of: label, proba"):
        model.predict(data.X_test[:2], params={"output": "logits"})


@pytest.mark.readme(
    "python -m pipeline.report",
    "python -m pipeline.report report.register_best=mnist-mlp",
    "python -m pipeline -m report.register_best=mnist-mlp",
)
def test_the_best_run_by_validation_is_registered(sweep):
    home, stdout, jobs, _ = sweep
    client = MlflowClient(store_uri(home))
    best = jobs.loc[jobs["metrics.val_accuracy"].astype(float).idxmax()]
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.run_id == best["run_id"] and version.tags["fnn_sweep.selected_by"] == "val_accuracy"
    assert "validation, not test" in version.description
    assert f"Registered model '{MODEL_NAME}' version 1: run {best['tags.mlflow.runName']}" in stdout
    # Again from the report command, which also rewrites the latest sweep's report: a new version.
    (home / "reports" / "latest" / "report.md").unlink()
    result = run_pipeline(home, f"report.register_best={MODEL_NAME}", module="pipeline.report")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (home / "reports" / "latest" / "report.md").is_file()
    assert client.get_model_version(MODEL_NAME, "2").run_id == best["run_id"]
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/2")
    assert loaded.metadata.run_id == best["run_id"]


def test_registering_without_models_registers_nothing_and_says_why(tmp_path):
    empty = tmp_path / "empty"
    result = run_pipeline(empty, "+experiment=xor", "train.epochs=1", "quiet=true", "mlflow.log_model=false")
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_pipeline(empty, "report.register_best=xor-best", "report.sweep_id=all", module="pipeline.report")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: no run of all runs of the experiment logged a model (mlflow.log_model=false?); nothing registered"
    )
    assert MlflowClient(store_uri(empty)).search_registered_models() == []


@pytest.mark.readme(
    "MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db mlflow models serve -m runs:/RUN_ID/model --env-manager local "
    "-h 127.0.0.1 -p 5001",
    "curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d @rows.json",
)
def test_mlflow_models_serve_answers_invocations_like_the_loaded_model(sweep, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install -y curl; .ci/run installs it)")
    home, _, jobs, data = sweep
    run_id = jobs["run_id"].iloc[0]
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"runs:/{run_id}/model",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        # MLflow runs `exec uvicorn` from PATH: the venv's, as README's activated shell has it, also when
        # the tests run as .venv/bin/python without activating it.
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": store_uri(home),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        },
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "w"),
        start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server, seconds=120)
        rows = data.X_test[:50]
        for params, key in (({}, "label"), ({"output": "proba"}, "proba")):
            (tmp_path / "rows.json").write_text(
                json.dumps({"inputs": rows.tolist(), **({"params": params} if params else {})})
            )
            # README's curl command, word for word but the port.
            curl = subprocess.run(
                [
                    "curl",
                    "-s",
                    f"http://127.0.0.1:{port}/invocations",
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    "@rows.json",
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert curl.returncode == 0, curl.stderr
            answer = np.array(json.loads(curl.stdout)["predictions"])
            mlflow.set_tracking_uri(store_uri(home))
            expected = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(rows, params=params or None)
            if key == "label":
                np.testing.assert_array_equal(answer, expected)
            else:
                np.testing.assert_allclose(answer, expected, rtol=1e-5)
    finally:
        stop(server)
    assert server.returncode is not None


BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.readme("mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db")
def test_the_mlflow_ui_shows_the_sweep_in_a_real_browser(sweep, tmp_path):
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium)")
    home, stdout, jobs, _ = sweep
    experiment_id = jobs["experiment_id"].iloc[0]
    sweep_id = jobs["tags.sweep_id"].iloc[0]
    port = free_port()
    # The command the sweep printed, on a free port.
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            store_uri(home),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "ui.log", "w"),
        start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # as helpers.mlflow_server
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", ui, seconds=60)
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=chromium,
                headless=True,
                args=BROWSER_FLAGS,
                viewport={"width": 1600, "height": 1000},
            )
            try:
                page = browser.new_page()
                page.goto(f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
                parent = page.get_by_role("row").filter(has_text=sweep_id)
                parent.wait_for(timeout=60_000)
                parent.locator('[col-id="attributes.`Run Name`"] button').click()  # children are collapsed
                for name, digest in zip(jobs["tags.mlflow.runName"], jobs["tags.dataset_hash"]):
                    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))
                    row.wait_for(timeout=30_000)
                    # The grid draws pinned and scrolling columns as separate rows with one row-index.
                    cells = page.locator(f'[role=row][row-index="{row.get_attribute("row-index")}"]')
                    assert f"mnist ({digest})" in " ".join(cells.all_inner_texts())  # the Dataset column
                page.screenshot(path=str(tmp_path / "runs.png"))

                run_id, accuracy = jobs["run_id"].iloc[0], jobs["metrics.test_accuracy"].iloc[0]
                page.goto(f"{base}/#/experiments/{experiment_id}/runs/{run_id}")
                metric = page.get_by_role("row").filter(has_text="test_accuracy")
                metric.first.wait_for(timeout=30_000)
                shown = metric.first.inner_text().split("\n")  # name, value, ...
                assert float(shown[1]) == pytest.approx(accuracy, abs=1e-4)
                page.goto(f"{base}/#/experiments/{experiment_id}/runs/{run_id}/artifacts")
                page.get_by_text("loss_curve.png", exact=True).first.click(timeout=30_000)
                image = page.locator('img[alt="loss_curve.png"]')
                image.wait_for(timeout=30_000)
                page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=image.element_handle())
                page.screenshot(path=str(tmp_path / "artifact.png"))
            finally:
                browser.close()
    finally:
        stop(ui)
    assert (tmp_path / "runs.png").stat().st_size > 10_000 and (tmp_path / "artifact.png").is_file()
