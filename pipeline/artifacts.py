"""Per-run artifacts: resolved config, loss curve, confusion matrix, pyfunc model."""

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

PACKAGE_DIR = Path(__file__).resolve().parent
FNN_CORE_DIR = PACKAGE_DIR.parent / "fnn_core"


def log_config(resolved_config):
    mlflow.log_text(yaml.safe_dump(resolved_config, sort_keys=False), "config.yaml")


def log_loss_curve(history, title):
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, history.epochs + 1)
    ax.plot(epochs, history["loss"], marker="o", label="train")
    if "val_loss" in history:
        ax.plot(epochs, history["val_loss"], marker="o", label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.legend()
    fig.tight_layout()
    mlflow.log_figure(fig, "loss_curve.png")
    plt.close(fig)


def log_confusion_matrix(y_true, y_pred, n_classes):
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    header = "true\\predicted," + ",".join(map(str, range(n_classes)))
    rows = [f"{i}," + ",".join(map(str, row)) for i, row in enumerate(matrix)]
    mlflow.log_text("\n".join([header, *rows]) + "\n", "confusion_matrix.csv")
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test set)",
           xticks=range(n_classes), yticks=range(n_classes))
    if n_classes <= 12:
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, count, ha="center", va="center", fontsize=7,
                    color="white" if count > matrix.max() / 2 else "black")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    mlflow.log_figure(fig, "confusion_matrix.png")
    plt.close(fig)
    return matrix


def feature_frame(X):
    """Rows of features as the model's input: columns f0 ... f{n-1}."""
    import pandas as pd

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
            name="model",
            python_model=str(PACKAGE_DIR / "pyfunc_model.py"),
            artifacts={"weights": str(weights)},
            code_paths=[str(FNN_CORE_DIR)],
            signature=infer_signature(example, net.predict(example_rows)),
            input_example=example,
            pip_requirements=[f"numpy=={np.__version__}", f"mlflow=={mlflow.__version__}"],
        )
