"""Backpropagation checked against central finite differences, and one network by hand."""

import numpy as np
import pytest

from fnn_core import ACTIVATIONS, FNN, OUTPUTS

N_OUTPUTS = {"softmax": 3, "sigmoid": 1, "identity": 2}


def _targets(output, rng, n):
    if output == "softmax":
        return rng.integers(0, 3, n)
    if output == "sigmoid":
        return rng.integers(0, 2, n)
    return rng.standard_normal((n, 2))


def _numerical_gradients(net, X, y, eps=1e-6):
    grads = []
    for p in net.parameters():
        g = np.empty_like(p)
        for i in np.ndindex(p.shape):
            saved = p[i]
            p[i] = saved + eps
            up = net.evaluate(X, y)["loss"]
            p[i] = saved - eps
            down = net.evaluate(X, y)["loss"]
            p[i] = saved
            g[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_gradients_match_finite_differences(activation, output, depth):
    rng = np.random.default_rng(42)
    X = rng.standard_normal((7, 4))
    y = _targets(output, rng, 7)
    net = FNN(
        4, [5] * depth, N_OUTPUTS[output], activation=activation, output=output, init="xavier", seed=1, dtype="float64"
    )
    for b in net.biases:  # non-zero biases so bias gradients are exercised through every layer
        b[...] = rng.standard_normal(b.shape) * 0.1

    loss, grads = net.loss_and_gradients(X, y)
    numerical = _numerical_gradients(net, X, y)

    assert loss == pytest.approx(net.evaluate(X, y)["loss"], rel=1e-12)
    flat = np.concatenate([g.ravel() for g in grads])
    flat_num = np.concatenate([g.ravel() for g in numerical])
    rel_error = np.linalg.norm(flat - flat_num) / max(np.linalg.norm(flat) + np.linalg.norm(flat_num), 1e-12)
    assert rel_error < 1e-6
    assert np.linalg.norm(flat) > 1e-3  # a zero gradient would pass trivially


def test_tiny_network_worked_by_hand():
    # 1 input -> 1 sigmoid unit -> 1 identity output, squared error.
    # x = 1, w1 = 0, b1 = 0  => h = sigmoid(0) = 0.5
    # w2 = 2, b2 = 0         => yhat = 1.0; target y = 0 => loss = 1.0
    # dL/dyhat = 2 (yhat - y) = 2; dL/dw2 = 2 * h = 1; dL/db2 = 2
    # dL/dh = 2 * w2 = 4; dh/dz = h (1 - h) = 0.25 => dL/dw1 = dL/db1 = 1
    net = FNN(1, [1], 1, activation="sigmoid", output="identity", dtype="float64")
    W1, b1, W2, b2 = net.parameters()
    W1[...], b1[...], W2[...], b2[...] = 0.0, 0.0, 2.0, 0.0
    loss, grads = net.loss_and_gradients([[1.0]], [0.0])
    assert loss == 1.0
    assert [g.item() for g in grads] == [1.0, 1.0, 1.0, 2.0]


def test_softmax_gradient_is_p_minus_onehot_over_batch():
    net = FNN(2, [], 3, output="softmax", dtype="float64")
    W, b = net.parameters()
    W[...] = 0.0
    b[...] = 0.0  # uniform probabilities 1/3 for every sample
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss, (gW, gb) = net.loss_and_gradients(X, [0, 2])
    expected_delta = (np.full((2, 3), 1 / 3) - np.eye(3)[[0, 2]]) / 2
    assert loss == pytest.approx(np.log(3))
    np.testing.assert_allclose(gb, expected_delta.sum(axis=0))
    np.testing.assert_allclose(gW, X.T @ expected_delta)
