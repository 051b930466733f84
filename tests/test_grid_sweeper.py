"""The default sweeper (hydra/sweeper=grid) runs the jobs Hydra's basic sweeper would, in its order."""

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # the reference, in a test only
from hydra.core.override_parser.overrides_parser import OverridesParser

from pipeline.sweep.grid import job_overrides

DEFAULT = {"model.hidden_neurons": "256,128,64,32", "model.activation": "sigmoid,relu,tanh"}


@pytest.mark.parametrize(
    "params, arguments",
    [
        (DEFAULT, []),
        (DEFAULT, ["quiet=true", "model.activation=relu,tanh", "optimizer.lr=0.01,0.1"]),
        (DEFAULT, ["+experiment=iris", "optimizer=adam,sgd", "train.seed=range(0,3)"]),
        (DEFAULT, ["hydra.job.chdir=true,false", "~train.early_stopping_patience"]),
        (None, ["a=1,2", "b=x", "c=choice(3,4)"]),
    ],
)
def test_the_grid_is_the_basic_sweepers(params, arguments):
    every = [f"{key}={value}" for key, value in (params or {}).items()] + arguments
    parsed = OverridesParser.create().parse_overrides(every)
    [hydra_jobs] = BasicSweeper.split_arguments(parsed, None)
    assert job_overrides(params, arguments) == [list(job) for job in hydra_jobs]


def test_the_sweeper_is_registered_where_hydra_looks():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    from pipeline.__main__ import register_sweeper

    register_sweeper()
    names = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Sweeper)}
    assert "hydra_plugins.fnn_sweep.grid_sweeper.GridSweeper" in names
