"""fnn-sweep pipeline: Hydra configs, data, MLflow tracking and reports around fnn_core."""
