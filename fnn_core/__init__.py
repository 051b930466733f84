"""fnn_core: a feed-forward neural network in NumPy alone.

>>> from fnn_core import FNN, SGD
>>> net = FNN(n_inputs=784, hidden=[128], n_outputs=10, activation="relu")
>>> history = net.fit(X, y, epochs=10, batch_size=64, optimizer=SGD(lr=0.1))  # doctest: +SKIP

Registries (name -> implementation) define the valid names everywhere:
``ACTIVATIONS``, ``OUTPUTS``, ``INITIALIZERS`` (plus "auto"), ``OPTIMIZERS``.
"""

from typing import Any

from .activations import ACTIVATIONS
from .history import History
from .initializers import INITIALIZERS
from .network import FNN
from .optimizers import OPTIMIZERS, SGD, Adam, Optimizer
from .outputs import OUTPUTS
from .registry import lookup

INIT_CHOICES = ("auto", *INITIALIZERS)


def make_optimizer(name: str, **options: Any) -> Optimizer:
    """Build an optimizer from its registry name, e.g. ``make_optimizer("sgd", lr=0.1)``."""
    return lookup(OPTIMIZERS, name, "optimizer")(**options)


__all__ = [
    "FNN",
    "SGD",
    "Adam",
    "Optimizer",
    "History",
    "ACTIVATIONS",
    "OUTPUTS",
    "INITIALIZERS",
    "INIT_CHOICES",
    "OPTIMIZERS",
    "make_optimizer",
    "lookup",
]
