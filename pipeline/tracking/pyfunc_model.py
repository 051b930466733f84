"""MLflow pyfunc wrapper of a saved fnn_core network, logged as "models from code".

MLflow runs this file when the model is loaded (``mlflow models predict``,
``mlflow.pyfunc.load_model``, ``mlflow models serve``); fnn_core travels with
the model in code_paths. The signature is one float32 tensor (-1, n_features),
so a float32 NumPy array, a DataFrame of float32 columns with any names and a
REST body ``{"inputs": [[...], ...]}`` all work (MLflow refuses other dtypes).
"""

from typing import Any

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from fnn_core import FNN

OUTPUTS = ("label", "proba")  # params={"output": ...}; "proba" is for classifiers only


class FNNModel(PythonModel):
    """Predicts labels (classification) or values (regression); ``output="proba"``: class probabilities."""

    def load_context(self, context: Any) -> None:
        self.net = FNN.load(context.artifacts["weights"])

    # The hint tells MLflow the signature is logged, not inferred from hints (and silences its warning).
    def predict(self, context: Any, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        """model_input: (n, n_features) array-like. Returns (n,) labels or values, or (n, classes) probabilities."""
        output = (params or {}).get("output", "label")
        if output not in OUTPUTS:
            raise ValueError(f"output={output!r} is not valid; choose one of: {', '.join(OUTPUTS)}")
        X = np.asarray(model_input, dtype=self.net.dtype)
        if output == "proba":
            if self.net.output == "identity":
                raise ValueError("output='proba' needs a classification model; this one predicts values")
            return self.net.predict_proba(X)
        return self.net.predict(X)


set_model(FNNModel())
