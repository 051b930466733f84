"""What makes data usable: rules a dataset must meet before a run trains on it.

They need the data, so they run when a dataset is loaded: in a single run
before its MLflow run exists, and in a sweep's pre-flight once for every
distinct (dataset, split fractions, seed) its jobs use. Each failure is a
``DataError`` in one line naming what to change.
"""

from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.errors import DataError

if TYPE_CHECKING:
    from pipeline.data.dataset import Dataset


def check_split(y: np.ndarray, n_held_out: int, stratify: bool, key: str, fraction: float, name: str) -> None:
    """A split of ``n_held_out`` of the rows of ``y`` leaves both parts usable.

    Stratified splits (classification) need every class at least twice and each part
    to hold at least one sample per class.

    y : ndarray of shape (n_samples,)
    key, fraction : the config key that chose the split's size and its value, for the message
    """
    n_classes = len(np.unique(y)) if stratify else 1
    n_kept = len(y) - n_held_out
    if n_kept < n_classes or (n_held_out and n_held_out < n_classes):
        small, part = (n_kept, "the training part") if n_kept < n_classes else (n_held_out, "the held-out part")
        need = f"{n_classes} classes" if stratify else "a sample"
        raise DataError(
            f"{key}={fraction} is not valid for {name}: {part} of its {len(y)} samples would hold "
            f"{small}, fewer than its {need}; choose a {'smaller' if part.endswith('training part') else 'larger'} "
            f"{key}"
        )
    if stratify:
        counts = np.bincount(np.asarray(y, dtype=np.int64) - int(np.min(y)))
        rare = int(np.flatnonzero(counts == 1)[0] + np.min(y)) if (counts == 1).any() else None
        if rare is not None:
            raise DataError(
                f"{name}: class {rare} has a single sample, too few to split it stratified ({key}={fraction})"
            )


def check_labels(y: np.ndarray, n_classes: int, part: str, name: str, source: str) -> None:
    """Class labels ``y`` (n,) are integers in [0, n_classes); checked before any split uses them."""
    bad = (y < 0) | (y >= n_classes) if np.issubdtype(y.dtype, np.integer) else np.ones(len(y), bool)
    if bad.any():
        raise DataError(
            f"{name}: {int(bad.sum())} {part} label(s) outside 0..{n_classes - 1} (e.g. {y[bad][0]}) in {source}"
        )


def check_dataset(data: "Dataset") -> None:
    """Every split of ``data`` (a ``Dataset``) is non-empty where it must be, with finite features and
    (regression) finite targets. Labels were checked before the splits (``check_labels``)."""
    for part in ("train", "test"):
        X, y = getattr(data, f"X_{part}"), getattr(data, f"y_{part}")
        if len(X) == 0:
            raise DataError(f"{data.name}: its {part} split holds no samples ({data.source})")
    for part in ("train", "val", "test"):
        X, y = getattr(data, f"X_{part}"), getattr(data, f"y_{part}")
        if X.ndim != 2 or X.shape[1] != data.n_features or len(X) != len(y):
            raise DataError(
                f"{data.name}: the {part} split has shape {X.shape} with {len(y)} targets; "
                f"expected (n, {data.n_features}) with n targets ({data.source})"
            )
        if not len(X):
            continue
        low, high = float(np.min(X)), float(np.max(X))  # NaN or inf anywhere shows in one of them
        if not (np.isfinite(low) and np.isfinite(high)):
            raise DataError(f"{data.name}: the {part} features hold NaN or infinite values ({data.source})")
        if data.task == "regression" and not np.isfinite(y).all():
            raise DataError(
                f"{data.name}: the {part} targets hold NaN or infinite values "
                f"(dataset.target_transform=log of a value <= 0?) ({data.source})"
            )
