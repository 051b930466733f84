"""The trained network as an MLflow pyfunc model ("models from code": pyfunc_model.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np

from pipeline.tracking import layout

if TYPE_CHECKING:
    from fnn_core.network import FNN

TRACKING_DIR = Path(__file__).resolve().parent
FNN_CORE_DIR = TRACKING_DIR.parents[1] / "fnn_core"


def log_pyfunc_model(net: FNN, example_rows: np.ndarray) -> None:
    """Log the network as the run's model: ``mlflow.pyfunc.load_model(uri).predict(X)``, serve, predict.

    ``example_rows``: (k, n_features), a few rows of X; they become the input example.
    The signature is one float32 tensor (-1, n_features) plus the param ``output``
    ("label", or "proba" for class probabilities).
    """
    from mlflow.models import infer_signature

    example = np.asarray(example_rows, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "fnn.npz"
        net.save(weights)
        mlflow.pyfunc.log_model(
            name=layout.ARTIFACT_MODEL,
            python_model=str(TRACKING_DIR / "pyfunc_model.py"),
            artifacts={"weights": str(weights)},
            code_paths=[str(FNN_CORE_DIR)],
            signature=infer_signature(example, net.predict(example), params={"output": "label"}),
            input_example=example,
            pip_requirements=[f"numpy=={np.__version__}", f"mlflow=={mlflow.__version__}"],
        )
