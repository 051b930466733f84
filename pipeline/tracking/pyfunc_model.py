"""MLflow pyfunc wrapper of a saved fnn_core network, logged as "models from code".

MLflow runs this file when the model is loaded (``mlflow models predict``,
``mlflow.pyfunc.load_model``); fnn_core travels with the model in code_paths.
"""

import mlflow
import numpy as np
import pandas as pd

from fnn_core import FNN


class FNNModel(mlflow.pyfunc.PythonModel):
    """Predicts labels (classification) or values (regression) from rows of features."""

    def load_context(self, context):
        self.net = FNN.load(context.artifacts["weights"])

    # The type hint is what MLflow asks for; a DataFrame of feature columns is what it gets.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self.net.predict(np.asarray(model_input, dtype=self.net.dtype))


mlflow.models.set_model(FNNModel())
