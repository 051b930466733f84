"""The feed-forward network: dense layers, mini-batch training, backpropagation."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, overload

import numpy as np

from .activations import ACTIVATIONS
from .history import History
from .initializers import INITIALIZERS
from .optimizers import SGD
from .outputs import OUTPUTS
from .registry import lookup

if TYPE_CHECKING:
    import os

    from fnn_core.optimizers import Optimizer

SAVE_FORMAT = 1
DTYPES = ("float32", "float64")
PREDICT_CHUNK = 8192  # rows per forward pass outside training, to bound memory


class FNN:
    """A fully connected feed-forward network.

    Parameters
    ----------
    n_inputs : int
        Number of input features.
    hidden : sequence of int
        Width of each hidden layer, input side first (may be empty).
    n_outputs : int
        Output units: classes for "softmax", 1 for "sigmoid", targets for "identity".
    activation : str
        Hidden activation, a key of ``ACTIVATIONS``.
    output : str
        Output activation + loss pair, a key of ``OUTPUTS``: "softmax"
        (cross-entropy), "sigmoid" (binary cross-entropy), "identity" (MSE).
    init : str
        "auto" (the activation's default: He for the ReLU family, Xavier
        otherwise) or a key of ``INITIALIZERS``.
    seed : int or None
        Seeds the initialisation and the per-epoch shuffling.
    dtype : {"float32", "float64"}
    """

    def __init__(
        self,
        n_inputs: int,
        hidden: Sequence[int],
        n_outputs: int,
        activation: str = "relu",
        output: str = "softmax",
        init: str = "auto",
        seed: int | None = None,
        dtype: str = "float32",
    ):
        hidden = list(hidden)
        for name, value in [("n_inputs", n_inputs), ("n_outputs", n_outputs)] + [
            (f"hidden[{i}]", h) for i, h in enumerate(hidden)
        ]:
            _check_positive_int(name, value)
        self._activation = lookup(ACTIVATIONS, activation, "activation")
        self._output = lookup(OUTPUTS, output, "output")
        if self._output.task == "binary" and n_outputs != 1:
            raise ValueError(f"output 'sigmoid' (binary) needs n_outputs=1, got {n_outputs}")
        if self._output.task == "multiclass" and n_outputs < 2:
            raise ValueError(f"output 'softmax' needs n_outputs >= 2, got {n_outputs}")
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        if init != "auto":
            lookup(INITIALIZERS, init, "init")

        self.n_inputs, self.hidden, self.n_outputs = int(n_inputs), [int(h) for h in hidden], int(n_outputs)
        self.activation, self.output, self.init, self.dtype = activation, output, init, np.dtype(dtype)
        self.seed = seed
        init_seed, shuffle_seed = np.random.SeedSequence(seed).spawn(2)
        self._shuffle_rng = np.random.default_rng(shuffle_seed)
        self.weights, self.biases = self._initial_parameters(np.random.default_rng(init_seed))
        self._grads: list[np.ndarray] | None = None
        self._workspaces: dict[int, tuple] = {}

    def __getstate__(self):
        # Pickled (a checkpoint to resume from): weights, biases and the shuffling's state; the
        # scratch buffers are rebuilt on use.
        return {**self.__dict__, "_grads": None, "_workspaces": {}}

    @property
    def layer_sizes(self) -> list[int]:
        """[n_inputs, *hidden, n_outputs]."""
        return [self.n_inputs, *self.hidden, self.n_outputs]

    def _initial_parameters(self, rng):
        sizes = self.layer_sizes
        weights, biases = [], []
        for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            is_output = layer == len(sizes) - 2
            name = self.init
            if name == "auto":
                name = "xavier" if is_output else self._activation.default_init
            W, b = INITIALIZERS[name](rng, n_in, n_out, self.dtype)
            weights.append(W)
            biases.append(b)
        return weights, biases

    def parameters(self) -> list[np.ndarray]:
        """Weights and biases as [W0, b0, W1, b1, ...]; writable in place.

        W_l has shape (n_in, n_out) and b_l shape (n_out,).
        """
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    @property
    def n_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def __repr__(self):
        return (
            f"FNN({'-'.join(map(str, self.layer_sizes))}, activation={self.activation!r}, "
            f"output={self.output!r}, init={self.init!r}, dtype={self.dtype.name!r})"
        )

    # ---- forward and backward on preallocated buffers (the hot path) ----

    def _workspace(self, m):
        """Activation buffers for a batch of m rows: [(m, n_1), ..., (m, n_out)]."""
        ws = self._workspaces.get(m)
        if ws is None:
            if len(self._workspaces) > 4:
                self._workspaces.clear()
            x = np.empty((m, self.n_inputs), self.dtype)
            acts = [np.empty((m, n), self.dtype) for n in self.layer_sizes[1:]]
            deltas = [np.empty((m, n), self.dtype) for n in self.hidden]
            ws = self._workspaces[m] = (x, acts, deltas)
        return ws

    def _forward(self, x, acts):
        """Fill ``acts`` with each layer's output; the last holds the output pre-activation."""
        a = x
        last = len(self.weights) - 1
        for layer, (W, b, out) in enumerate(zip(self.weights, self.biases, acts)):
            np.matmul(a, W, out=out)
            out += b
            if layer < last:
                self._activation.forward(out)
            a = out
        return a

    def _backward(self, x, acts, deltas, grads):
        """Fill ``grads`` from the output delta held in acts[-1]; acts[l] are layer outputs."""
        delta = acts[-1]
        for layer in range(len(self.weights) - 1, -1, -1):
            inputs = acts[layer - 1] if layer else x
            np.matmul(inputs.T, delta, out=grads[2 * layer])
            np.add.reduce(delta, axis=0, out=grads[2 * layer + 1])  # np.sum without its Python wrapper
            if layer:
                # The input layer needs no delta: skipping it saves a third of its matmuls.
                prev = deltas[layer - 1]
                np.matmul(delta, self.weights[layer].T, out=prev)
                self._activation.backward(inputs, prev)
                delta = prev

    def _gradient_buffers(self):
        if self._grads is None:
            self._grads = [np.empty_like(p) for p in self.parameters()]
        return self._grads

    def loss_and_gradients(self, X: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Batch-mean loss and its gradient for every parameter.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_inputs)
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        loss : float
        grads : list of ndarray, same order and shapes as ``parameters()``
        """
        X, y = self._check_Xy(X, y)
        _, acts, deltas = self._workspace(len(X))
        self._forward(X, acts)
        loss = self._output.loss_and_delta(acts[-1], y)
        grads = [np.empty_like(p) for p in self.parameters()]
        self._backward(X, acts, deltas, grads)
        return loss, grads

    # ---- training ----

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        epochs: int = 10,
        batch_size: int = 32,
        optimizer: Optimizer | None = None,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        callbacks: Sequence[Callable[[int, dict], bool | None]] = (),
        patience: int | None = None,
        shuffle: bool = True,
        initial_epoch: int = 0,
    ) -> History:
        """Train with mini-batches, reshuffled every epoch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_inputs)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Integer labels (softmax; one-hot also accepted), 0/1 (sigmoid) or
            float targets (identity).
        epochs, batch_size : int, >= 1
        optimizer : Optimizer, default SGD(lr=0.1)
            Its state is reset at the start of this fit (kept when resuming, see ``initial_epoch``).
        validation_data : (X_val, y_val) or None
            Evaluated after every epoch into ``val_loss`` / ``val_accuracy``.
        callbacks : sequence of callable(epoch, logs)
            Called after every epoch with its index (from 0) and that epoch's
            figures; returning True stops training.
        patience : int or None
            Early stopping: stop once ``val_loss`` has not improved for this
            many epochs, and restore the best weights. Needs validation_data.
        shuffle : bool
        initial_epoch : int, 0 <= initial_epoch < epochs
            Resume a fit that stopped after this many epochs (Keras' meaning): train epochs
            ``initial_epoch`` to ``epochs - 1``, keeping ``optimizer``'s state from that fit. A
            network and optimizer saved (pickled) after ``k`` epochs and resumed with
            ``initial_epoch=k`` train exactly as an uninterrupted fit: the shuffling continues too.
            ``patience`` counts from ``initial_epoch``.

        Returns
        -------
        History
            ``loss``, ``accuracy`` (classification), ``val_loss``,
            ``val_accuracy``, ``epoch_time_s`` per epoch. ``loss`` and
            ``accuracy`` are means over the epoch's batches, taken before each
            update; ``epoch_time_s`` times the training pass only. Resumed, only the epochs
            of this fit.
        """
        _check_positive_int("epochs", epochs)
        if not (isinstance(initial_epoch, (int, np.integer)) and 0 <= initial_epoch < epochs):
            raise ValueError(f"initial_epoch must be an integer in [0, epochs), got {initial_epoch!r}")
        _check_positive_int("batch_size", batch_size)
        if patience is not None:
            _check_positive_int("patience", patience)
            if validation_data is None:
                raise ValueError("patience (early stopping) needs validation_data")
        X, y = self._check_Xy(X, y)
        if validation_data is not None:
            X_val, y_val = self._check_Xy(*validation_data, what="validation ")
        optimizer = SGD(lr=0.1) if optimizer is None else optimizer
        params = self.parameters()
        grads = self._gradient_buffers()
        if initial_epoch == 0:
            optimizer.start(params)

        history = History()
        best_loss, best_params, since_best = math.inf, None, 0
        n = len(X)
        classify = self._output.n_correct is not None
        for epoch in range(initial_epoch, epochs):
            start_time = time.perf_counter()
            order = self._shuffle_rng.permutation(n) if shuffle else np.arange(n)
            # Overflow while training surfaces as a non-finite loss, which stops
            # training and is reported in the history: NumPy need not warn too.
            with np.errstate(over="ignore", invalid="ignore"):
                total_loss, total_correct = self._train_epoch(X, y, order, batch_size, optimizer, params, grads)
            if not math.isfinite(total_loss):
                history.diverged = True
                history.stop_reason = f"diverged: training loss became {total_loss} in epoch {epoch}"
                break
            logs = {"loss": total_loss / n}
            if classify:
                logs["accuracy"] = total_correct / n
            logs["epoch_time_s"] = time.perf_counter() - start_time
            if validation_data is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate_checked(X_val, y_val).items()})
            history.append(logs)

            stop = any([callback(epoch, dict(logs)) is True for callback in callbacks])
            if stop:
                history.stop_reason = f"stopped by callback after epoch {epoch}"
            if patience is not None:
                if logs["val_loss"] < best_loss:
                    best_loss, since_best, history.best_epoch = logs["val_loss"], 0, epoch
                    best_params = [p.copy() for p in params]
                else:
                    since_best += 1
                    if since_best >= patience:
                        history.stop_reason = (
                            f"early stopping after epoch {epoch}: val_loss did not improve for {patience} epochs"
                        )
                        stop = True
            if stop:
                break
        if best_params is not None:
            for p, best in zip(params, best_params):
                p[...] = best
        return history

    def _train_epoch(self, X, y, order, batch_size, optimizer, params, grads):
        """One pass over X in the given row order; returns (summed loss, correct count).

        Stops at the first batch whose loss is not finite and returns that loss.
        """
        total_loss, total_correct = 0.0, 0
        n_correct = self._output.n_correct
        lr_applied = optimizer.folds_lr
        scale = optimizer.lr if lr_applied else 1.0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            x, acts, deltas = self._workspace(len(rows))
            # mode="clip" lets take write straight into x (the default mode buffers);
            # rows come from a permutation of range(n), so nothing is ever clipped.
            np.take(X, rows, axis=0, out=x, mode="clip")
            yb = y[rows]
            z = acts[-1]
            self._forward(x, acts)
            if n_correct is not None:
                total_correct += n_correct(z, yb)
            loss = self._output.loss_and_delta(z, yb, scale)
            if not math.isfinite(loss):
                return loss, total_correct
            total_loss += loss * len(rows)
            self._backward(x, acts, deltas, grads)
            optimizer.step(params, grads, lr_applied)
        return total_loss, total_correct

    # ---- inference ----

    def _output_preactivations(self, X):
        """Yield (row slice, output pre-activation) over chunks of X."""
        for start in range(0, len(X), PREDICT_CHUNK):
            x = X[start : start + PREDICT_CHUNK]
            acts = [np.empty((len(x), n), self.dtype) for n in self.layer_sizes[1:]]
            yield slice(start, start + len(x)), self._forward(x, acts)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Output activations.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_inputs)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)
            Class probabilities (softmax), P(y=1) (sigmoid) or values (identity).
        """
        X = self._check_X(X)
        out = np.empty((len(X), self.n_outputs), self.dtype)
        for rows, z in self._output_preactivations(X):
            self._output.activate(z)
            out[rows] = z
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Labels of shape (n_samples,) for classification; values for regression."""
        return self._output.decide(self.predict_proba(X))

    @overload
    def evaluate(
        self, X: np.ndarray, y: np.ndarray, return_predictions: Literal[False] = False
    ) -> dict[str, float]: ...
    @overload
    def evaluate(
        self, X: np.ndarray, y: np.ndarray, return_predictions: Literal[True]
    ) -> tuple[dict[str, float], np.ndarray]: ...
    def evaluate(
        self, X: np.ndarray, y: np.ndarray, return_predictions: bool = False
    ) -> dict[str, float] | tuple[dict[str, float], np.ndarray]:
        """Mean loss and, for classification, accuracy (a fraction); for regression mse and rmse.

        With ``return_predictions``: (those metrics, ``predict(X)``), from one forward pass over X.
        """
        X, y = self._check_Xy(X, y)
        return self._evaluate_checked(X, y, return_predictions)

    def _evaluate_checked(self, X, y, return_predictions=False):
        total_loss, correct = 0.0, 0
        outputs = np.empty((len(X), self.n_outputs), self.dtype) if return_predictions else None
        for rows, z in self._output_preactivations(X):
            if outputs is not None:
                outputs[rows] = z  # before the loss, which may overwrite z
            if self._output.n_correct is not None:
                correct += self._output.n_correct(z, y[rows])
            total_loss += self._output.loss(z, y[rows]) * (rows.stop - rows.start)
        loss = total_loss / len(X)
        if self._output.n_correct is None:
            metrics = {"loss": loss, "mse": loss, "rmse": math.sqrt(loss)}
        else:
            metrics = {"loss": loss, "accuracy": correct / len(X)}
        if outputs is None:
            return metrics
        self._output.activate(outputs)  # row by row, as predict_proba does chunk by chunk
        return metrics, self._output.decide(outputs)

    # ---- persistence ----

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this architecture."""
        return {
            "n_inputs": self.n_inputs,
            "hidden": self.hidden,
            "n_outputs": self.n_outputs,
            "activation": self.activation,
            "output": self.output,
            "init": self.init,
            "dtype": self.dtype.name,
        }

    def save(self, path: str | os.PathLike | BinaryIO) -> None:
        """Write architecture and weights to one .npz file (or binary file object)."""
        arrays = {f"param_{i}": p for i, p in enumerate(self.parameters())}
        header = json.dumps({"format": SAVE_FORMAT, **self.config()})
        np.savez(path, header=np.array(header), **arrays)  # type: ignore[arg-type]  # numpy types **kwds as its own flags

    @classmethod
    def load(cls, path: str | os.PathLike | BinaryIO) -> FNN:
        """Rebuild a network saved by ``save``; it predicts identically."""
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            if header.pop("format", None) != SAVE_FORMAT:
                raise ValueError(f"{path}: not an fnn_core model file of format {SAVE_FORMAT}")
            net = cls(**header)
            params = net.parameters()
            for i, p in enumerate(params):
                saved = data[f"param_{i}"]
                if saved.shape != p.shape:
                    raise ValueError(f"{path}: parameter {i} has shape {saved.shape}, expected {p.shape}")
                p[...] = saved
        return net

    # ---- input validation ----

    def _check_X(self, X, what=""):
        try:
            X = np.asarray(X, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what}X must be numeric: {exc}") from None
        if X.ndim != 2:
            raise ValueError(f"{what}X must be 2-D (n_samples, n_features), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{what}X is empty: no samples")
        if X.shape[1] != self.n_inputs:
            raise ValueError(f"{what}X has {X.shape[1]} features, but the network expects {self.n_inputs}")
        # min and max are NaN or infinite exactly when some element is: two passes and no
        # (n_samples, n_inputs) boolean temporary, ten times faster than isfinite(X).all().
        if not (np.isfinite(X.min()) and np.isfinite(X.max())):
            raise ValueError(f"{what}X contains NaN or infinity")
        return np.ascontiguousarray(X)

    def _check_Xy(self, X, y, what=""):
        X = self._check_X(X, what)
        y = np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"{what}X has {len(X)} samples but y has {len(y)}")
        task = self._output.task
        if task == "regression":
            y = y.astype(self.dtype).reshape(len(y), -1)
            if y.shape[1] != self.n_outputs:
                raise ValueError(f"{what}y has {y.shape[1]} targets per sample, expected {self.n_outputs}")
            if not np.isfinite(y).all():
                raise ValueError(f"{what}y contains NaN or infinity")
            return X, y
        if task == "multiclass" and y.ndim == 2 and y.shape[1] == self.n_outputs:
            if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
                raise ValueError(f"{what}y of shape {y.shape} is not one-hot (one 1 per row, zeros elsewhere)")
            y = y.argmax(axis=1)
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.ndim != 1:
            raise ValueError(f"{what}y must have shape (n_samples,), got {y.shape}")
        if not np.issubdtype(y.dtype, np.number) or not np.isfinite(y).all() or (y != np.round(y)).any():
            raise ValueError(f"{what}y must hold integer class labels")
        limit = 2 if task == "binary" else self.n_outputs
        if y.min() < 0 or y.max() >= limit:
            raise ValueError(
                f"{what}y labels must be in [0, {limit}) for output {self.output!r}, "
                f"got range [{y.min():g}, {y.max():g}]"
            )
        y = y.astype(np.int64)
        return X, (y.astype(self.dtype) if task == "binary" else y)


def _check_positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
