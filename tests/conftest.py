"""Shared fixtures. Real MNIST digits come from one place: the ``mnist_dir`` fixture."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _candidate_mnist_dirs():
    if os.environ.get("FNN_SWEEP_TEST_MNIST"):
        yield Path(os.environ["FNN_SWEEP_TEST_MNIST"])
    # The workplace's offline digits, beside the project checkout.
    yield REPO.parent / "shared" / "data" / "mnist-offline"
    # A user's clone: the MNIST cache the pipeline downloads into.
    cache = os.environ.get("FNN_SWEEP_DATA_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "fnn-sweep")
    yield Path(cache) / "mnist"


@pytest.fixture(scope="session")
def mnist_dir():
    """A directory with the four MNIST IDX files, or skip with the reason."""
    tried = []
    for directory in _candidate_mnist_dirs():
        if all((directory / name).is_file() for name in MNIST_FILES):
            return directory
        tried.append(str(directory))
    pytest.skip("no MNIST IDX files found (looked in: " + ", ".join(tried)
                + "); set FNN_SWEEP_TEST_MNIST to a directory holding them")


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@pytest.fixture(scope="session")
def mnist_arrays(mnist_dir):
    """(X_train, y_train, X_test, y_test): float32 pixels in [0, 1], int labels."""
    X, y, X_test, y_test = (_read_idx(mnist_dir / name) for name in MNIST_FILES)
    scale = np.float32(1 / 255)
    return (X.reshape(len(X), -1) * scale, y.astype(np.int64),
            X_test.reshape(len(X_test), -1) * scale, y_test.astype(np.int64))
