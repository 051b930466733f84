"""Output activation + loss pairs, chosen together so the gradient is fused.

Each pair computes, from the output layer's pre-activation ``z`` of shape
(n_samples, n_outputs), the batch-mean loss and overwrites ``z`` with
dLoss/dz, which for every pair here is (prediction - target) scaled by the
batch size: the canonical link makes the output derivative cancel.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .activations import sigmoid_inplace


@dataclass(frozen=True)
class Output:
    """An output activation with its matching loss.

    task : {"multiclass", "binary", "regression"}
    activate : callable(z) -> None
        Overwrites z with the output activation (probabilities or values).
    loss_and_delta : callable(z, y, scale=1.0) -> float
        Batch-mean loss; overwrites z with ``scale`` times the fused gradient dLoss/dz.
    loss : callable(z, y) -> float
        Batch-mean loss only; ``z`` may be overwritten.
    n_correct : callable(z, y) -> int, or None for regression
        How many rows of ``z`` (pre-activation) predict their label.
    decide : callable(p) -> ndarray of shape (n_samples,) or (n_samples, n_outputs)
        Predictions from the activated outputs ``p``.
    """

    task: str
    activate: Callable[[np.ndarray], None]
    loss_and_delta: Callable[..., float]
    loss: Callable[[np.ndarray, np.ndarray], float]
    n_correct: Optional[Callable[[np.ndarray, np.ndarray], int]]
    decide: Callable[[np.ndarray], np.ndarray]


def _softmax_inplace(z):
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)


_ROW_STARTS: dict[tuple[int, int], np.ndarray] = {}  # (n_rows, n_columns) -> flat index of each row's first element


def _row_starts(z):
    starts = _ROW_STARTS.get(z.shape)
    if starts is None:
        if len(_ROW_STARTS) > 8:  # a few batch sizes per fit: the last batch is smaller
            _ROW_STARTS.clear()
        starts = _ROW_STARTS[z.shape] = np.arange(0, z.size, z.shape[1])
    return starts


def _shift_and_pick_labels(z, y):
    """Shift z by its row max in place; return (flat positions of the labels, their shifted z).

    The row max is picked at argmax: the same value as z.max(axis=1) (NaN included), three times
    faster on a batch of 10 classes. Flat positions are cheaper than z[arange(n), y].
    """
    flat, starts = z.reshape(-1), _row_starts(z)
    z -= flat[starts + z.argmax(axis=1)][:, None]
    positions = starts + y
    return positions, flat[positions]


def _cross_entropy(z, y):
    # Loss from log-softmax, never log(p): exact and finite even when a
    # probability rounds to zero, so no clipping is needed on this path.
    _, picked = _shift_and_pick_labels(z, y)
    log_sums = np.log(np.exp(z).sum(axis=1))
    return float((log_sums - picked).mean())


def _cross_entropy_and_delta(z, y, scale=1.0):
    positions, picked = _shift_and_pick_labels(z, y)
    np.exp(z, out=z)
    sums = np.add.reduce(z, axis=1)  # z.sum and .mean without their Python wrappers
    log_sums = np.log(sums)
    log_sums -= picked
    loss = float(np.add.reduce(log_sums)) / len(log_sums)
    # softmax, batch mean and scale in one pass: p * scale / n, then - scale / n at the labels.
    z *= (scale / len(y) / sums)[:, None]
    z.reshape(-1)[positions] -= scale / len(y)
    return loss


def _binary_cross_entropy(z, y):
    # log(1 + e^-|z|) + max(z, 0) - y z: softplus form, finite for all z.
    z = z[:, 0]
    return float(np.mean(np.logaddexp(0, -np.abs(z)) + np.maximum(z, 0) - y * z))


def _binary_cross_entropy_and_delta(z, y, scale=1.0):
    loss = _binary_cross_entropy(z, y)
    sigmoid_inplace(z)
    z[:, 0] -= y
    z *= scale / len(y)
    return loss


def _identity(z):
    pass


def _squared_error(z, y):
    return float(np.mean(np.square(z - y)))


def _squared_error_and_delta(z, y, scale=1.0):
    z -= y
    loss = float(np.mean(np.square(z)))
    z *= 2 * scale / z.size
    return loss


def _argmax_correct(z, y):
    return int(np.count_nonzero(z.argmax(axis=1) == y))


def _threshold_correct(z, y):
    # sigmoid(z) >= 0.5 exactly when z >= 0.
    return int(np.count_nonzero((z[:, 0] >= 0) == (y == 1)))


def _argmax(p):
    return p.argmax(axis=1)


def _threshold(p):
    return (p[:, 0] >= 0.5).astype(np.int64)


def _values(p):
    return p[:, 0] if p.shape[1] == 1 else p


OUTPUTS = {
    "softmax": Output(
        "multiclass", _softmax_inplace, _cross_entropy_and_delta, _cross_entropy, _argmax_correct, _argmax
    ),
    "sigmoid": Output(
        "binary",
        sigmoid_inplace,
        _binary_cross_entropy_and_delta,
        _binary_cross_entropy,
        _threshold_correct,
        _threshold,
    ),
    "identity": Output("regression", _identity, _squared_error_and_delta, _squared_error, None, _values),
}
