"""Each optimizer's first steps against the update rule written out by hand."""

import numpy as np
import pytest

from fnn_core import OPTIMIZERS, SGD, Adam, make_optimizer


def _one_param():
    return [np.array([1.0, -2.0])], [np.array([0.5, 0.25])]


def test_plain_sgd_step():
    params, grads = _one_param()
    opt = SGD(lr=0.1)
    opt.start(params)
    opt.step(params, grads)
    np.testing.assert_allclose(params[0], [1.0 - 0.05, -2.0 - 0.025])


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps(nesterov):
    w, g, lr, mu = np.array([1.0]), 0.5, 0.1, 0.9
    opt = SGD(lr=lr, momentum=mu, nesterov=nesterov)
    opt.start([w])
    expected, v = 1.0, 0.0
    for _ in range(2):
        opt.step([w], [np.array([g])])
        v = mu * v - lr * g
        expected += (mu * v - lr * g) if nesterov else v
        assert w[0] == pytest.approx(expected)


def test_adam_two_steps():
    w, lr, b1, b2, eps = np.array([1.0]), 0.01, 0.9, 0.999, 1e-8
    opt = Adam(lr=lr, beta1=b1, beta2=b2, eps=eps)
    opt.start([w])
    expected, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -0.2], start=1):
        opt.step([w], [np.array([g])])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        expected -= lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        assert w[0] == pytest.approx(expected, rel=1e-12)


def test_weight_decay_adds_l2_gradient():
    params, grads = _one_param()
    SGD(lr=0.1, weight_decay=0.01).step(params, grads)
    np.testing.assert_allclose(params[0], [1.0 - 0.1 * (0.5 + 0.01), -2.0 - 0.1 * (0.25 - 0.02)])


def test_gradient_norm_clipping_rescales_globally():
    params = [np.zeros(2), np.zeros(1)]
    grads = [np.array([3.0, 0.0]), np.array([4.0])]  # global norm 5
    SGD(lr=1.0, clip_norm=1.0).step(params, grads)
    np.testing.assert_allclose(np.concatenate(params), [-0.6, 0.0, -0.8])


def test_start_resets_state():
    w = np.array([0.0])
    opt = SGD(lr=1.0, momentum=0.5)
    opt.start([w])
    opt.step([w], [np.array([1.0])])
    opt.start([w])
    before = w.copy()
    opt.step([w], [np.array([1.0])])
    assert w[0] == before[0] - 1.0  # no velocity carried over from the first fit


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "0.1"])
def test_bad_learning_rate(bad):
    with pytest.raises(ValueError, match="lr must be a positive number"):
        SGD(lr=bad)


def test_registry_builds_by_name_and_lists_valid_names():
    assert isinstance(make_optimizer("adam", lr=0.01), Adam)
    with pytest.raises(ValueError) as err:
        make_optimizer("rmsprop", lr=0.1)
    for name in OPTIMIZERS:
        assert name in str(err.value)


def test_folded_learning_rate_gives_the_same_training():
    """Plain SGD folds lr into the output delta; the result must equal the unfolded update."""
    from fnn_core import FNN

    class UnfoldedSGD(SGD):
        folds_lr = False

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((100, 5)), rng.integers(0, 3, 100)
    nets = [FNN(5, [7], 3, activation="tanh", seed=0, dtype="float64") for _ in range(2)]
    nets[0].fit(X, y, epochs=2, batch_size=10, optimizer=SGD(lr=0.3))
    nets[1].fit(X, y, epochs=2, batch_size=10, optimizer=UnfoldedSGD(lr=0.3))
    for p, q in zip(*(net.parameters() for net in nets)):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)
    assert SGD(lr=0.1).folds_lr and not SGD(lr=0.1, momentum=0.9).folds_lr and not Adam().folds_lr


def test_lr_applied_is_refused_where_the_update_is_not_plain():
    with pytest.raises(ValueError, match="cannot take gradients"):
        Adam().step([np.zeros(1)], [np.zeros(1)], lr_applied=True)
