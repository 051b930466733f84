"""The model registry: a sweep's best model, registered by name (the UI's Models page)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd

from pipeline.errors import InputError
from pipeline.tracking import layout, store

if TYPE_CHECKING:
    from pipeline.tracking.store import Store

log = logging.getLogger("pipeline")


def best_job(jobs: pd.DataFrame) -> tuple[Any, str]:
    """The FINISHED job with the best final validation score; returns (row, metric).

    jobs: a ``layout.read_runs`` frame of job runs. Ties go to the earliest run.
    """
    finished = jobs[jobs["status"] == "FINISHED"]
    # Chosen on validation, never on test: the test score of the chosen model stays an honest estimate.
    for best, metric in layout.VALIDATION_METRIC.items():
        if metric in finished and finished[metric].notna().any():
            scores = finished[metric].astype(float)
            index = scores.idxmax() if best == "max" else scores.idxmin()
            return finished.loc[index], metric
    raise InputError("no finished run has a validation score to choose by (train.val_fraction=0?); nothing registered")


def register_best(tracking: Store, experiment_id: str, jobs: pd.DataFrame, name: str, selection: str) -> Any:
    """Register the model of the best job under ``name`` (a new version each time) in ``tracking`` (a
    ``tracking.store.Store``); returns the version.

    Only runs that logged a model (``mlflow.log_model=true``) compete. ``mlflow.register_model`` is
    fluent: it registers in the store ``open_store`` pointed MLflow at.
    """
    models: list = []
    token = None
    while True:  # every page: a large sweep logs many models
        page = tracking.client.search_logged_models(experiment_ids=[experiment_id], page_token=token)
        models += page
        token = page.token
        if not token:
            break
    model_of_run = {m.source_run_id: m.model_id for m in models if m.name == layout.ARTIFACT_MODEL}
    candidates = jobs[jobs["run_id"].isin(model_of_run)]
    if candidates.empty:
        raise InputError(f"no run of {selection} logged a model (mlflow.log_model=false?); nothing registered")
    row, metric = best_job(candidates)
    # models:/<id> names the logged model itself, so the version links to it and to its run.
    try:
        version = mlflow.register_model(
            f"models:/{model_of_run[row['run_id']]}",
            name,
            tags={layout.TAG_SELECTION: selection, layout.TAG_SELECTED_BY: metric},
        )
    except mlflow.MlflowException as exc:  # a name or permission the registry refuses: one line
        raise InputError(f"model '{name}' not registered: {str(exc).strip().splitlines()[0][:300]}") from None
    scores = f"{metric} {row[metric]:.4f}"
    test = next((m for m in (layout.TEST_ACCURACY, layout.TEST_MSE) if m in row and pd.notna(row[m])), None)
    if test:
        scores += f", {test} {row[test]:.4f}"
    tracking.client.update_model_version(
        name,
        version.version,
        description=(
            f"Best of {selection} by final {metric} (validation, not test): run {row['run_name']} "
            f"({row['run_id']}); {scores}."
        ),
    )
    log.info(
        f"Registered model '{name}' version {version.version}: run {row['run_name']} ({scores}); "
        f"models:/{name}/{version.version}, in the UI: {store.models_page(tracking.uri, name)}"
    )
    return version
