"""Hidden-layer activations: one registry, forward and derivative side by side.

Derivative convention: every derivative is written in terms of the
activation's *output* ``a = f(z)`` (never the pre-activation), so the forward
pass keeps only one array per layer. ``backward(a, delta)`` multiplies
``delta`` by ``f'(z)`` in place.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

ELU_ALPHA = 1.0
LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class Activation:
    """An elementwise activation.

    forward : callable(z) -> None
        Overwrites ``z`` (ndarray of shape (n_samples, n_units)) with f(z).
    backward : callable(a, delta) -> None
        Multiplies ``delta`` in place by f'(z), computed from ``a = f(z)``.
    default_init : str
        The initialiser that ``init="auto"`` picks for layers feeding this activation.
    """

    forward: Callable[[np.ndarray], None]
    backward: Callable[[np.ndarray, np.ndarray], None]
    default_init: str


def sigmoid_inplace(z: np.ndarray) -> None:
    # 1/2 (1 + tanh(z/2)) equals 1/(1+exp(-z)) but cannot overflow for any
    # finite z, so NumPy never warns, and it costs one transcendental call.
    np.multiply(z, 0.5, out=z)
    np.tanh(z, out=z)
    np.multiply(z, 0.5, out=z)
    np.add(z, 0.5, out=z)


def _sigmoid_backward(a, delta):
    delta *= a
    delta *= 1 - a


def _tanh_forward(z):
    np.tanh(z, out=z)


def _tanh_backward(a, delta):
    delta *= 1 - a * a


def _relu_forward(z):
    np.maximum(z, 0, out=z)


def _relu_backward(a, delta):
    np.multiply(delta, a > 0, out=delta)


def _leaky_relu_forward(z):
    np.maximum(z, z * LEAKY_SLOPE, out=z)


def _leaky_relu_backward(a, delta):
    # a > 0 exactly where z > 0 because the slope is positive.
    delta *= np.where(a > 0, 1.0, LEAKY_SLOPE).astype(delta.dtype, copy=False)


def _elu_forward(z):
    negative = z < 0
    # exp only where z < 0: exp of a large positive z would overflow.
    np.expm1(z, out=z, where=negative)
    np.multiply(z, ELU_ALPHA, out=z, where=negative)


def _elu_backward(a, delta):
    # For z < 0, d/dz alpha (e^z - 1) = alpha e^z = a + alpha.
    np.multiply(delta, a + ELU_ALPHA, out=delta, where=a < 0)


def _identity_forward(z):
    pass


def _identity_backward(a, delta):
    pass


ACTIVATIONS = {
    "sigmoid": Activation(sigmoid_inplace, _sigmoid_backward, "xavier"),
    "relu": Activation(_relu_forward, _relu_backward, "he"),
    "tanh": Activation(_tanh_forward, _tanh_backward, "xavier"),
    "leaky_relu": Activation(_leaky_relu_forward, _leaky_relu_backward, "he"),
    "elu": Activation(_elu_forward, _elu_backward, "he"),
    "identity": Activation(_identity_forward, _identity_backward, "xavier"),
}
