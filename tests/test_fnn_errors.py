"""Bad input gets a ValueError saying what is wrong; names come from the registries."""

import numpy as np
import pytest

from fnn_core import ACTIVATIONS, FNN, INITIALIZERS, OUTPUTS


@pytest.fixture
def net():
    return FNN(4, [3], 3, seed=0)


X4 = np.zeros((5, 4))
Y5 = np.array([0, 1, 2, 0, 1])


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.zeros((5, 3)), Y5, "3 features, but the network expects 4"),
        (X4, Y5[:4], "5 samples but y has 4"),
        (X4, np.array([0, 1, 2, 3, 1]), r"labels must be in \[0, 3\)"),
        (X4, np.array([0, -1, 2, 0, 1]), r"labels must be in \[0, 3\)"),
        (X4, np.array([0, 0.5, 1, 0, 1]), "integer class labels"),
        (np.where(np.eye(5, 4) > 0, np.nan, 0.0), Y5, "NaN or infinity"),
        (np.full((5, 4), np.inf), Y5, "NaN or infinity"),
        (np.zeros((0, 4)), np.zeros(0), "empty"),
        (np.zeros(4), Y5, "must be 2-D"),
        (X4, np.ones((5, 3)), "not one-hot"),
    ],
)
def test_bad_data(net, X, y, message):
    with pytest.raises(ValueError, match=message):
        net.fit(X, y, epochs=1)


@pytest.mark.parametrize(
    "option, message",
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"epochs": 1.5}, "epochs must be an integer >= 1"),
        ({"patience": 2}, "needs validation_data"),
    ],
)
def test_bad_training_options(net, option, message):
    with pytest.raises(ValueError, match=message):
        net.fit(X4, Y5, **{"epochs": 1, **option})


def test_bad_validation_data_is_named(net):
    with pytest.raises(ValueError, match="validation X has 2 features"):
        net.fit(X4, Y5, epochs=1, validation_data=(np.zeros((2, 2)), [0, 1]))


def test_one_hot_labels_equal_integer_labels():
    a, b = FNN(4, [3], 3, seed=0), FNN(4, [3], 3, seed=0)
    X = np.random.default_rng(0).standard_normal((5, 4))
    a.fit(X, Y5, epochs=2)
    b.fit(X, np.eye(3)[Y5], epochs=2)
    assert all(np.array_equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize(
    "registry, kwargs",
    [
        (ACTIVATIONS, {"activation": "swish"}),
        (OUTPUTS, {"output": "softplus"}),
        (INITIALIZERS, {"init": "orthogonal"}),
    ],
)
def test_unknown_names_list_registry_keys(registry, kwargs):
    with pytest.raises(ValueError) as err:
        FNN(4, [3], 3, **kwargs)
    assert all(name in str(err.value) for name in registry)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden": [0]}, r"hidden\[0\] must be an integer >= 1"),
        ({"n_outputs": 2, "output": "sigmoid"}, "needs n_outputs=1"),
        ({"n_outputs": 1, "output": "softmax"}, "needs n_outputs >= 2"),
        ({"dtype": "float16"}, "unknown dtype"),
    ],
)
def test_bad_architecture(kwargs, message):
    options = {"n_inputs": 4, "hidden": [3], "n_outputs": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        FNN(**options)


def test_binary_labels_must_be_zero_or_one():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        FNN(2, [], 1, output="sigmoid").fit(np.zeros((2, 2)), [0, 2], epochs=1)


def test_auto_init_is_he_for_relu_and_xavier_for_tanh():
    relu = FNN(1000, [500], 10, activation="relu", seed=0)
    tanh = FNN(1000, [500], 10, activation="tanh", seed=0)
    assert relu.weights[0].std() == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    assert tanh.weights[0].std() == pytest.approx(np.sqrt(2 / 1500), rel=0.02)
