"""A dataset split three ways, and the loader that builds one from the registry.

Every loader returns a ``Dataset`` with float32 features. Errors a user can
fix (missing files, no network, a corrupt file) raise ``DataError`` with one
line that says what to do.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.checks import check_dataset, check_labels, check_split
from pipeline.data.decoded import cached_split, content_hash_file, keep_hash, kept_hash, split_dir
from pipeline.data.errors import DataError
from pipeline.data.registry import DATASETS, split_test


@dataclass
class Dataset:
    """A dataset split three ways. X arrays: (n, n_features) float32.

    y arrays: (n,) int64 class labels, or (n,) float32 targets for regression.
    """

    name: str
    task: str  # "multiclass" or "regression"
    n_classes: int | None
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.task == "multiclass" and self.n_classes else 1

    # Where the hash of a dataset mapped from the decoded-data cache is kept, beside its split: the
    # sweep's pre-flight hashes it, and each worker reads 16 characters instead of hashing 200 MB.
    hash_file: Path | None = field(default=None, repr=False, compare=False)

    def content_hash(self) -> str:
        """SHA-256 (first 16 hex digits) over every array, so runs on the same data can be matched."""
        return self._content_hash

    @cached_property
    def _content_hash(self):  # a few hundred MB to hash: once per loaded dataset, or per cached split
        kept = kept_hash(self.hash_file)
        if kept is not None:
            return kept
        digest = hashlib.sha256()
        for array in (self.X_train, self.y_train, self.X_val, self.y_val, self.X_test, self.y_test):
            digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # no copy, unlike tobytes()
        value = digest.hexdigest()[:16]
        if self.hash_file is not None:
            keep_hash(self.hash_file, value)
        return value


def load_dataset(
    cfg: Mapping[str, Any], val_fraction: float, seed: int, cache_dir: str | os.PathLike | None = None
) -> Dataset:
    """Load the dataset named ``cfg["name"]`` and hold out a validation split.

    Parameters
    ----------
    cfg : mapping
        The ``dataset`` config: name, dir, test_fraction, standardize, target_transform.
    val_fraction : float in [0, 1)
        Share of the training set held out for validation (stratified, seeded).
    seed : int
    """
    name = cfg["name"]
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    task, n_classes, X, y, X_test, y_test, source = DATASETS[name](cfg, seed, cache_dir)
    if task == "multiclass":
        for part, labels in (("train", y), ("test", y_test)):
            check_labels(np.asarray(labels), n_classes, part, name, source)
    n_val = int(round(len(X) * val_fraction))
    check_split(y, n_val, task == "multiclass", "train.val_fraction", val_fraction, name)
    hash_file = None
    if n_val:  # before the float32 conversion: that would hide a cached array's file (values are the same)
        split_at = split_dir(X, n_val, seed, task == "multiclass")
        if split_at is not None and task == "multiclass":  # the six arrays follow from the split's name
            hash_file = content_hash_file(split_at, bool(cfg.get("standardize")))
        X, y, X_val, y_val = cached_split(X, y, n_val, seed, task == "multiclass", split_test)
    else:
        X_val, y_val = X[:0], y[:0]
    X, X_val, X_test = (np.asarray(part, np.float32) for part in (X, X_val, X_test))
    if cfg.get("standardize"):
        mean, std = X.mean(axis=0), X.std(axis=0)
        std[std == 0] = 1
        X, X_val, X_test = ((part - mean) / std for part in (X, X_val, X_test))
    if task == "regression":
        y, y_val, y_test = _transform_targets(cfg.get("target_transform", "none"), y, y_val, y_test)
    data = Dataset(name, task, n_classes, X, y, X_val, y_val, X_test, y_test, source, hash_file)
    check_dataset(data)
    return data


def _transform_targets(transform, y, y_val, y_test):
    parts = [np.asarray(part, np.float64) for part in (y, y_val, y_test)]
    if transform == "log":
        parts = [np.log(part) for part in parts]
    elif transform == "standardize":
        mean, std = parts[0].mean(), parts[0].std()
        parts = [(part - mean) / std for part in parts]
    return [part.astype(np.float32) for part in parts]
