"""Optimizers: objects that hold their own state and update parameters in place.

``start(params)`` (called by ``FNN.fit``) creates fresh state with
``zeros_like``; ``step(params, grads)`` updates ``params`` in place and may
overwrite ``grads`` (they are scratch buffers owned by the network).

An optimizer whose update is exactly ``w -= lr * g`` says so with
``folds_lr``: the network then folds ``lr`` into the (small) output delta, so
the gradients arrive already scaled and ``step(..., lr_applied=True)``
subtracts them in one pass over each weight matrix instead of two.
"""

import math

import numpy as np


class Optimizer:
    """Shared options: L2 weight decay and global gradient-norm clipping.

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    weight_decay : float
        L2 coefficient: ``weight_decay * w`` is added to each gradient.
    clip_norm : float or None
        When set, gradients are rescaled so their global L2 norm is at most this.
    """

    def __init__(self, lr: float, weight_decay: float = 0.0, clip_norm: float | None = None):
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if clip_norm is not None and clip_norm <= 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {clip_norm!r}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.clip_norm = clip_norm

    def start(self, params: list[np.ndarray]) -> None:
        """Reset the state for a new fit of ``params`` (list of ndarrays)."""

    @property
    def folds_lr(self) -> bool:
        """True when the update is exactly ``w -= lr * g`` (see the module docstring)."""
        return False

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], lr_applied: bool = False) -> None:
        """Update ``params`` in place from ``grads`` (same order and shapes).

        With ``lr_applied`` (only where ``folds_lr``), ``grads`` are already ``lr * g``.
        """
        if lr_applied:
            if not self.folds_lr:
                raise ValueError(f"{self!r} cannot take gradients with the learning rate applied")
            for p, g in zip(params, grads):
                p -= g
            return
        if self.weight_decay:
            for p, g in zip(params, grads):
                g += self.weight_decay * p
        if self.clip_norm is not None:
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
            if norm > self.clip_norm:
                for g in grads:
                    g *= self.clip_norm / norm
        self._update(params, grads)

    def _update(self, params, grads):
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    With velocity v: ``v = momentum * v - lr * g``; then ``w += v``, or for
    Nesterov ``w += momentum * v - lr * g`` (the form scikit-learn uses).
    """

    def __init__(
        self,
        lr: float = 0.1,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
    ):
        super().__init__(lr, weight_decay, clip_norm)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._velocities: list[np.ndarray] | None = None

    def start(self, params: list[np.ndarray]) -> None:
        self._velocities = [np.zeros_like(p) for p in params] if self.momentum else None

    @property
    def folds_lr(self) -> bool:
        return not (self.momentum or self.weight_decay or self.clip_norm)

    def _update(self, params, grads):
        lr = self.lr
        if self._velocities is None:
            for p, g in zip(params, grads):
                g *= lr
                p -= g
            return
        mu = self.momentum
        for p, g, v in zip(params, grads, self._velocities):
            v *= mu
            g *= lr
            v -= g
            if self.nesterov:
                p += mu * v
                p -= g
            else:
                p += v


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction folded into the step size."""

    def __init__(
        self,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
    ):
        super().__init__(lr, weight_decay, clip_norm)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self._t = 0
        self._m: list[np.ndarray] | None = None
        self._v: list[np.ndarray] | None = None

    def start(self, params: list[np.ndarray]) -> None:
        self._t = 0
        self._m = [np.zeros_like(p) for p in params]
        self._v = [np.zeros_like(p) for p in params]

    def _update(self, params, grads):
        self._t += 1
        b1, b2 = self.beta1, self.beta2
        step = self.lr * math.sqrt(1 - b2**self._t) / (1 - b1**self._t)
        for p, g, m, v in zip(params, grads, self._m, self._v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            g *= g
            g *= 1 - b2
            v += g
            np.sqrt(v, out=g)
            g += self.eps
            np.divide(m, g, out=g)
            g *= step
            p -= g


OPTIMIZERS = {"sgd": SGD, "adam": Adam}
