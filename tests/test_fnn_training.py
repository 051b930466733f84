"""Training behaviour: learning on real data, determinism, callbacks, persistence."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from fnn_core import ACTIVATIONS, FNN, SGD, Adam
from fnn_core.network import PREDICT_CHUNK


def test_learns_mnist_digits(mnist_arrays):
    X, y, X_test, y_test = mnist_arrays
    net = FNN(784, [128], 10, activation="relu", seed=0)
    history = net.fit(X, y, epochs=10, batch_size=64, optimizer=SGD(lr=0.1))
    assert net.evaluate(X_test, y_test)["accuracy"] >= 0.94
    assert history["loss"][-1] < history["loss"][0] / 2
    assert not history.diverged and history.epochs == 10


def test_learns_xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([0, 1, 1, 0])
    net = FNN(2, [3], 2, activation="tanh", output="softmax", seed=0)
    net.fit(X, y, epochs=500, batch_size=4, optimizer=SGD(lr=0.5, momentum=0.9))
    assert (net.predict(X) == y).all()


def test_learns_iris():
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    net = FNN(4, [32], 3, activation="sigmoid", seed=0)
    net.fit((X_train - mean) / std, y_train, epochs=100, batch_size=16, optimizer=Adam(lr=0.01))
    assert net.evaluate((X_test - mean) / std, y_test)["accuracy"] >= 0.9


def test_binary_and_regression_outputs_learn():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 2))
    binary = FNN(2, [8], 1, activation="relu", output="sigmoid", seed=0)
    binary.fit(X, (X[:, 0] * X[:, 1] > 0).astype(int), epochs=200, batch_size=32, optimizer=Adam(lr=0.01))
    assert binary.evaluate(X, (X[:, 0] * X[:, 1] > 0).astype(int))["accuracy"] > 0.9
    target = np.sin(X[:, 0]) + 0.5 * X[:, 1]
    regressor = FNN(2, [16], 1, activation="tanh", output="identity", seed=0)
    regressor.fit(X, target, epochs=200, batch_size=32, optimizer=Adam(lr=0.01))
    assert regressor.evaluate(X, target)["mse"] < 0.05 * target.var()
    assert regressor.predict(X).shape == (400,)


def _trained(seed, dtype="float32"):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((300, 6)), rng.integers(0, 3, 300)
    net = FNN(6, [16, 8], 3, activation="tanh", seed=seed, dtype=dtype)
    net.fit(X, y, epochs=3, batch_size=32, optimizer=SGD(lr=0.1, momentum=0.9))
    return net


def test_same_seed_gives_bit_identical_weights():
    a, b, c = _trained(7), _trained(7), _trained(8)
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.tobytes() == q.tobytes()
    assert any(p.tobytes() != q.tobytes() for p, q in zip(a.parameters(), c.parameters()))


def test_no_global_rng_use():
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    _trained(1)
    assert (np.random.get_state()[1] == state).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_everywhere(dtype):
    net = _trained(0, dtype)
    assert all(p.dtype == dtype for p in net.parameters())
    assert net.predict_proba(np.zeros((2, 6))).dtype == dtype


def test_save_load_round_trip(tmp_path):
    net = _trained(3)
    net.save(tmp_path / "m.npz")
    loaded = FNN.load(tmp_path / "m.npz")
    X = np.random.default_rng(1).standard_normal((50, 6))
    assert loaded.config() == net.config()
    assert np.array_equal(loaded.predict_proba(X), net.predict_proba(X))


def test_load_rejects_foreign_npz(tmp_path):
    np.savez(tmp_path / "other.npz", header=np.array('{"format": 99}'))
    with pytest.raises(ValueError, match="not an fnn_core model"):
        FNN.load(tmp_path / "other.npz")


def test_history_validation_and_callbacks():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 5)), rng.integers(0, 2, 200)
    seen = []
    net = FNN(5, [4], 2, seed=0)
    history = net.fit(
        X,
        y,
        epochs=3,
        batch_size=50,
        validation_data=(X[:40], y[:40]),
        callbacks=[lambda epoch, logs: seen.append((epoch, logs))],
    )
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    assert set(seen[0][1]) == {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s"}
    assert history["val_accuracy"] == [logs["val_accuracy"] for _, logs in seen]
    assert history["val_loss"][-1] == pytest.approx(net.evaluate(X[:40], y[:40])["loss"])
    assert history.stop_reason is None


def test_callback_can_stop_training():
    X, y = np.eye(4), np.arange(4)
    history = FNN(4, [3], 4, seed=0).fit(X, y, epochs=10, callbacks=[lambda epoch, logs: epoch == 1])
    assert history.epochs == 2 and "callback" in history.stop_reason


def test_early_stopping_restores_best_weights():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 10)), rng.integers(0, 3, 60)
    X_val, y_val = rng.standard_normal((60, 10)), rng.integers(0, 3, 60)  # pure noise: overfits
    net = FNN(10, [64], 3, seed=0)
    history = net.fit(
        X, y, epochs=200, batch_size=10, optimizer=SGD(lr=0.5), validation_data=(X_val, y_val), patience=3
    )
    assert history.epochs < 200 and "early stopping" in history.stop_reason
    assert history.epochs == history.best_epoch + 4
    assert net.evaluate(X_val, y_val)["loss"] == pytest.approx(min(history["val_loss"]), rel=1e-5)


def test_divergence_stops_at_once_without_nans():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)) * 100
    net = FNN(3, [8], 1, activation="relu", output="identity", seed=0)
    history = net.fit(X, X.sum(axis=1) * 1e3, epochs=50, batch_size=8, optimizer=SGD(lr=10.0))
    assert history.diverged and "diverged" in history.stop_reason
    assert history.epochs < 50
    assert all(np.isfinite(v) for values in history.metrics.values() for v in values)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_finite_and_silent_on_extreme_values(name, dtype):
    info = np.finfo(dtype)
    z = np.array([[info.min, -1e4, -50.0, 0.0, 50.0, 1e4, info.max]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        a = z.copy()
        ACTIVATIONS[name].forward(a)
        delta = np.ones_like(a)
        ACTIVATIONS[name].backward(a, delta)
    assert np.isfinite(delta).all() and not np.isnan(a).any()
    if name == "sigmoid":
        assert a[0, 0] == 0.0 and a[0, -1] == 1.0 and a[0, 3] == 0.5


@pytest.mark.parametrize("output, n_outputs", [("softmax", 10), ("sigmoid", 1), ("identity", 3)])
def test_evaluate_returns_the_predictions_of_predict_from_the_same_pass(mnist_arrays, output, n_outputs):
    """Over more rows than one forward chunk: the metrics of ``evaluate`` and the labels (or values) of
    ``predict``, exactly."""
    X_train, y_train, X_test, y_test = mnist_arrays
    X, y = np.concatenate([X_train, X_test]), np.concatenate([y_train, y_test])
    assert len(X) > PREDICT_CHUNK
    targets = {"softmax": y, "sigmoid": y % 2, "identity": np.eye(3)[y % 3]}[output]
    net = FNN(784, [32], n_outputs, activation="tanh", output=output, seed=0)
    net.fit(X, targets, epochs=1, batch_size=128, optimizer=SGD(lr=0.05))
    metrics, predicted = net.evaluate(X, targets, return_predictions=True)
    assert metrics == net.evaluate(X, targets)
    assert predicted.dtype == net.predict(X).dtype and np.array_equal(predicted, net.predict(X))
    if output != "identity":
        assert 0.5 < (predicted == targets).mean() == pytest.approx(metrics["accuracy"])


def test_saturated_network_predicts_without_warnings():
    X = np.array([[1e6, -1e6], [-1e6, 1e6], [0.0, 0.0]])
    for activation in ACTIVATIONS:
        net = FNN(2, [3], 3, activation=activation, init="normal", seed=0)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            p = net.predict_proba(X)
            loss = net.evaluate(X, [0, 1, 2])["loss"]
            net.loss_and_gradients(X, [0, 1, 2])
        assert np.isfinite(p).all() and np.allclose(p.sum(axis=1), 1) and np.isfinite(loss)
    binary = FNN(1, [], 1, output="sigmoid")
    binary.parameters()[0][...] = 1.0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = binary.predict_proba([[1e4], [-1e4]])
        loss = binary.evaluate([[1e4], [-1e4]], [0, 1])["loss"]
    assert p[:, 0].tolist() == [1.0, 0.0] and loss == pytest.approx(1e4, rel=1e-3)


def test_fnn_core_imports_only_numpy():
    code = (
        "import sys, fnn_core; heavy = {'hydra', 'omegaconf', 'mlflow', 'pandas', 'sklearn', "
        "'matplotlib', 'scipy', 'torch'}; print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "make_optimizer", [lambda: SGD(lr=0.1), lambda: SGD(lr=0.05, momentum=0.9), lambda: Adam(lr=0.01)]
)
def test_a_pickled_fit_resumes_bit_identically(make_optimizer):
    """Paused after 2 epochs, pickled and resumed with initial_epoch=2: the weights and the epochs'
    figures equal an uninterrupted 5-epoch fit's (the optimizer's state and the shuffling continue)."""
    import pickle

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    whole, whole_opt = FNN(4, [8], 3, seed=3), make_optimizer()
    whole_history = whole.fit(X, y, epochs=5, batch_size=16, optimizer=whole_opt, validation_data=(X, y))

    paused, paused_opt = FNN(4, [8], 3, seed=3), make_optimizer()
    first = paused.fit(X, y, epochs=2, batch_size=16, optimizer=paused_opt, validation_data=(X, y))
    resumed, resumed_opt = pickle.loads(pickle.dumps((paused, paused_opt)))
    seen = []
    rest = resumed.fit(
        X,
        y,
        epochs=5,
        batch_size=16,
        optimizer=resumed_opt,
        validation_data=(X, y),
        callbacks=[lambda epoch, logs: seen.append(epoch)],
        initial_epoch=2,
    )
    assert seen == [2, 3, 4] and rest.epochs == 3
    for a, b in zip(whole.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a, b)
    assert first["val_loss"] + rest["val_loss"] == whole_history["val_loss"]
    with pytest.raises(ValueError, match="initial_epoch"):
        resumed.fit(X, y, epochs=5, optimizer=resumed_opt, initial_epoch=5)
