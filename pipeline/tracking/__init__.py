"""MLflow: the store (store), the run layout (layout), runs (runs), artifacts and the model."""
