"""Weight initialisers: one registry from name to ``init(rng, n_in, n_out, dtype)``.

Each returns ``(W, b)`` with W of shape (n_in, n_out) and b of shape (n_out,).
"auto" is not an entry here: the network resolves it per layer from the
activation's ``default_init``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


def xavier(rng: np.random.Generator, n_in: int, n_out: int, dtype: DTypeLike) -> tuple[np.ndarray, np.ndarray]:
    """Glorot uniform: U(-s, s) with s = sqrt(6 / (n_in + n_out)); zero biases."""
    bound = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype), np.zeros(n_out, dtype)


def he(rng: np.random.Generator, n_in: int, n_out: int, dtype: DTypeLike) -> tuple[np.ndarray, np.ndarray]:
    """He normal: N(0, 2 / n_in); zero biases."""
    std = np.sqrt(2.0 / n_in)
    return (rng.standard_normal((n_in, n_out)) * std).astype(dtype), np.zeros(n_out, dtype)


def normal(rng: np.random.Generator, n_in: int, n_out: int, dtype: DTypeLike) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled N(0, 1) weights and biases, as in much tutorial code."""
    return rng.standard_normal((n_in, n_out)).astype(dtype), rng.standard_normal(n_out).astype(dtype)


def uniform(rng: np.random.Generator, n_in: int, n_out: int, dtype: DTypeLike) -> tuple[np.ndarray, np.ndarray]:
    """U[0, 1) weights and biases, as in the Iris and XOR tutorials."""
    return rng.random((n_in, n_out)).astype(dtype), rng.random(n_out).astype(dtype)


INITIALIZERS = {"xavier": xavier, "he": he, "normal": normal, "uniform": uniform}
