"""The one place that turns config into fnn_core objects."""

from fnn_core import FNN, make_optimizer

OUTPUT_FOR_TASK = {"multiclass": "softmax", "regression": "identity"}


def build_network(model_cfg, train_cfg, dataset):
    """An FNN sized for ``dataset``; the output/loss pair follows from its task."""
    return FNN(
        n_inputs=dataset.n_features,
        hidden=[model_cfg.hidden_neurons] * model_cfg.hidden_layers,
        n_outputs=dataset.n_outputs,
        activation=model_cfg.activation,
        output=OUTPUT_FOR_TASK[dataset.task],
        init=model_cfg.init,
        seed=train_cfg.seed,
        dtype=train_cfg.dtype,
    )


def build_optimizer(optimizer_cfg):
    return make_optimizer(optimizer_cfg.name, **optimizer_cfg.options())
