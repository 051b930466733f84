"""The trained network as an MLflow pyfunc model ("models from code": pyfunc_model.py)."""

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from pipeline.tracking import layout

TRACKING_DIR = Path(__file__).resolve().parent
FNN_CORE_DIR = TRACKING_DIR.parents[1] / "fnn_core"


def feature_frame(X):
    """Rows of features as the model's input: columns f0 ... f{n-1}."""
    return pd.DataFrame(np.asarray(X, dtype=np.float64), columns=[f"f{i}" for i in range(np.shape(X)[1])])


def log_pyfunc_model(net, example_rows):
    """Log the network so `mlflow models predict -m runs:/ID/model` works on a CSV with columns f0, f1, ...

    ``example_rows`` (a few rows of X) become the model's input example and signature.
    """
    from mlflow.models import infer_signature

    example = feature_frame(example_rows)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "fnn.npz"
        net.save(weights)
        mlflow.pyfunc.log_model(
            name=layout.ARTIFACT_MODEL,
            python_model=str(TRACKING_DIR / "pyfunc_model.py"),
            artifacts={"weights": str(weights)},
            code_paths=[str(FNN_CORE_DIR)],
            signature=infer_signature(example, net.predict(example_rows)),
            input_example=example,
            pip_requirements=[f"numpy=={np.__version__}", f"mlflow=={mlflow.__version__}"],
        )
