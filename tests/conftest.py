"""Shared fixtures. Real MNIST digits come from one place: the ``mnist_dir`` fixture."""

import os
from pathlib import Path

import pytest

from helpers import MLFLOW_DEFAULTS, REPO

# A developer's MLflow variables would send the tests' runs elsewhere (MLFLOW_RUN_ID, MLFLOW_EXPERIMENT_ID).
for _name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _no_mlflow_defaults():
    """Each test starts and ends without MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME, the defaults of
    mlflow.tracking_uri and mlflow.experiment_name: a developer's would send the runs to their server,
    and MLflow's set_tracking_uri, which in-process tests call, exports the URI it is given."""
    for name in MLFLOW_DEFAULTS:
        os.environ.pop(name, None)
    yield
    for name in MLFLOW_DEFAULTS:
        os.environ.pop(name, None)


MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _candidate_mnist_dirs():
    if os.environ.get("FNN_SWEEP_TEST_MNIST"):
        yield Path(os.environ["FNN_SWEEP_TEST_MNIST"])
    # The workplace's offline digits, beside the project checkout.
    yield REPO.parent / "shared" / "data" / "mnist-offline"
    # A user's clone: the MNIST cache the pipeline downloads into.
    cache = os.environ.get("FNN_SWEEP_DATA_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "fnn-sweep"
    )
    yield Path(cache) / "mnist"


@pytest.fixture(scope="session")
def mnist_dir():
    """A directory with the four MNIST IDX files, or skip with the reason."""
    tried = []
    for directory in _candidate_mnist_dirs():
        if all((directory / name).is_file() for name in MNIST_FILES):
            return directory
        tried.append(str(directory))
    pytest.skip(
        "no MNIST IDX files found (looked in: "
        + ", ".join(tried)
        + "); set FNN_SWEEP_TEST_MNIST to a directory holding them"
    )


@pytest.fixture(scope="session")
def mnist_arrays(mnist_dir):
    """(X_train, y_train, X_test, y_test): float32 pixels in [0, 1], int labels."""
    from pipeline.data import load_idx_arrays

    return load_idx_arrays(mnist_dir)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh FNN_SWEEP_HOME: the MLflow store, Hydra outputs and reports all go there."""
    monkeypatch.setenv("FNN_SWEEP_HOME", str(tmp_path))
    return tmp_path
