"""The trained network as an MLflow pyfunc model ("models from code": pyfunc_model.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
import numpy as np

from pipeline.runtime import compat
from pipeline.tracking import layout, runs

if TYPE_CHECKING:
    from fnn_core.network import FNN
    from pipeline.tracking.store import Store

TRACKING_DIR = Path(__file__).resolve().parent
FNN_CORE_DIR = TRACKING_DIR.parents[1] / "fnn_core"


def log_pyfunc_model(tracking: Store, net: FNN, example_rows: np.ndarray, params: Mapping[str, object]) -> str:
    """Log the network as the active run's model: ``mlflow.pyfunc.load_model(uri).predict(X)``, serve, predict;
    returns the logged model's id, to link the run's results to it (``log_metrics(model_id=...)``).

    ``example_rows``: (k, n_features), a few rows of X; they become the input example.
    The signature is one float32 tensor (-1, n_features) plus the param ``output``
    ("label", or "proba" for class probabilities). ``params``: the run's params, which the model
    page shows too.

    The steps of ``mlflow.pyfunc.log_model``, through MLflow's public LoggedModel API, less two that
    cost 45 of its 85 ms a job here: loading the saved model once more to serve its input example
    (``save_model`` has just checked the example against the signature, loading it), and reading the
    run's whole metric history back to copy its step-0 points to the model (the results are logged
    with the model's id instead). When the model's artifact location is a local directory (a store
    on this machine), the model is saved there directly instead of into a temporary directory that
    is then copied there and deleted: its 20 files are written once.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model, infer_signature

    example = np.asarray(example_rows, dtype=np.float32)
    run = runs.active_run()
    client, run_id = tracking.client, run.info.run_id
    model = client.create_logged_model(
        experiment_id=run.info.experiment_id,
        name=layout.ARTIFACT_MODEL,
        source_run_id=run_id,
        tags=compat.source_tags({}),
        params={key: str(value) for key, value in params.items()},
    )
    # On this machine's disk the model is written where its artifacts go; elsewhere it is uploaded.
    local = local_directory(model.artifact_location)
    if local is None:
        compat.remember_artifact_location(model.model_id, model.artifact_location, tracking.uri)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "fnn.npz"
            path = local if local is not None else Path(tmp) / layout.ARTIFACT_MODEL
            net.save(weights)
            mlflow.pyfunc.save_model(
                str(path),
                python_model=str(TRACKING_DIR / "pyfunc_model.py"),
                artifacts={"weights": str(weights)},
                code_paths=[str(FNN_CORE_DIR)],
                signature=infer_signature(example, net.predict(example), params={"output": "label"}),
                input_example=example,
                pip_requirements=[f"numpy=={np.__version__}", f"mlflow=={mlflow.__version__}"],
                mlflow_model=Model(
                    artifact_path=model.artifact_location,
                    model_uuid=model.model_id,
                    run_id=run_id,
                    model_id=model.model_id,
                ),
            )
            if local is None:
                client.log_model_artifacts(model.model_id, str(path))
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    except BaseException:
        if local is not None:  # no half-written model where a FAILED one's files would be
            shutil.rmtree(local, ignore_errors=True)
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return model.model_id


def local_directory(artifact_location: str) -> Path | None:
    """The directory an artifact location names on this machine (a path or a ``file:`` URI), else None."""
    parsed = urlparse(artifact_location)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" and Path(artifact_location).is_absolute():
        return Path(artifact_location)
    return None
