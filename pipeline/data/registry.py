"""The dataset registry: name -> loader returning (task, n_classes, X, y, X_test, y_test, source)."""

import urllib.error
from importlib.metadata import version
from pathlib import Path

import numpy as np

from pipeline.data.checks import check_split
from pipeline.data.decoded import cached_arrays, decoded_idx_arrays
from pipeline.data.download import default_cache_dir, locate_idx_dir
from pipeline.data.errors import DataError


def _idx_dataset(name):
    def load(cfg, seed, cache_dir):
        directory = locate_idx_dir(name, cfg.get("dir"), cache_dir)
        return ("multiclass", 10, *decoded_idx_arrays(directory, cache_dir or default_cache_dir()), str(directory))

    return load


def split_test(
    X: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=y if stratify else None
    )
    return X_train, y_train, X_test, y_test


def _held_out(n_samples, fraction):
    """How many rows scikit-learn's ``train_test_split(test_size=fraction)`` holds out: ceil(n * fraction)."""
    import math

    return math.ceil(n_samples * fraction)


def _sklearn_dataset(loader_name, task):
    def load(cfg, seed, cache_dir):
        test_fraction = cfg.get("test_fraction", 0.2)
        # Kept in the decoded-data cache once split (a cached test split has its validation split
        # cached beside it): scikit-learn is imported only to build them.
        key = f"scikit-learn-{version('scikit-learn')}-{loader_name}-test-{test_fraction!r}-seed-{seed}"
        X, y, X_test, y_test = cached_arrays(
            Path(cache_dir or default_cache_dir()) / "decoded" / key,
            lambda: _load_and_split(cfg, seed, cache_dir, loader_name, task, test_fraction),
        )
        classes = int(max(y.max(), y_test.max())) + 1 if task == "multiclass" else None
        return task, classes, X, y, X_test, y_test, f"scikit-learn {loader_name}"

    return load


def _load_and_split(cfg, seed, cache_dir, loader_name, task, test_fraction):
    """One of scikit-learn's datasets, its test split held out: (X_train, y_train, X_test, y_test)."""
    import sklearn.datasets

    loader = getattr(sklearn.datasets, loader_name)
    try:
        if loader_name.startswith("fetch_"):
            X, y = loader(
                return_X_y=True, data_home=cfg.get("dir") or Path(cache_dir or default_cache_dir()) / "sklearn"
            )
        else:
            X, y = loader(return_X_y=True)
    except (OSError, urllib.error.URLError) as exc:
        raise DataError(
            f"{loader_name} could not get its data ({exc}); it needs the internet once, "
            f"or scikit-learn's cached copy in dataset.dir"
        ) from None
    check_split(
        y,
        _held_out(len(y), test_fraction),
        task == "multiclass",
        "dataset.test_fraction",
        test_fraction,
        loader_name.split("_", 1)[1],
    )
    X_train, y_train, X_test, y_test = split_test(X, y, test_fraction, seed, task == "multiclass")
    return X_train, y_train, X_test, y_test


def _xor(cfg, seed, cache_dir):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    # Four points are the whole problem: the test set is the training set.
    return "multiclass", 2, X, y, X.copy(), y.copy(), "the four XOR points"


REGRESSION = ("diabetes", "california_housing")  # the datasets whose task is "regression"; the rest classify


def task_of(name: str) -> str:
    """A registered dataset's task without loading it: "regression" or "multiclass"."""
    return "regression" if name in REGRESSION else "multiclass"


DATASETS = {
    "mnist": _idx_dataset("mnist"),
    "fashion_mnist": _idx_dataset("fashion_mnist"),
    "digits": _sklearn_dataset("load_digits", "multiclass"),
    "iris": _sklearn_dataset("load_iris", "multiclass"),
    "xor": _xor,
    "diabetes": _sklearn_dataset("load_diabetes", "regression"),
    "california_housing": _sklearn_dataset("fetch_california_housing", "regression"),
}
