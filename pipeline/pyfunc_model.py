"""MLflow pyfunc wrapper of a saved fnn_core network, logged as "models from code".

MLflow runs this file when the model is loaded (``mlflow models predict``,
``mlflow.pyfunc.load_model``); fnn_core travels with the model in code_paths.
"""

import warnings

import mlflow
import numpy as np

from fnn_core import FNN

with warnings.catch_warnings():
    # Rows of floats in, labels out: MLflow's type-hint validation would add
    # nothing but a warning at every class definition.
    warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")

    class FNNModel(mlflow.pyfunc.PythonModel):
        """Predicts labels (classification) or values (regression) from rows of features."""

        def load_context(self, context):
            self.net = FNN.load(context.artifacts["weights"])

        def predict(self, context, model_input, params=None):
            return self.net.predict(np.asarray(model_input, dtype=self.net.dtype))


mlflow.models.set_model(FNNModel())
