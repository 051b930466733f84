"""The one place that turns config into fnn_core objects."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fnn_core import FNN, make_optimizer

if TYPE_CHECKING:
    from fnn_core.optimizers import Optimizer
    from pipeline.config import ModelConfig, OptimizerConfig, TrainConfig
    from pipeline.data.dataset import Dataset

OUTPUT_FOR_TASK = {"multiclass": "softmax", "regression": "identity"}


def build_network(model_cfg: ModelConfig, train_cfg: TrainConfig, dataset: Dataset) -> FNN:
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


def build_optimizer(optimizer_cfg: OptimizerConfig) -> Optimizer:
    return make_optimizer(optimizer_cfg.name, **optimizer_cfg.options())
