"""Entry point: `python -m pipeline` trains one model, `python -m pipeline -m` sweeps.

How the command goes from its first line to its last worker: ``pipeline.runtime.lifecycle``.
Exit status (``pipeline.runtime.failure``): 2 bad configuration or data, nothing ran; 1 a job
failed; 128+N ended by signal N; 0 otherwise.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from pipeline.runtime import lifecycle

if TYPE_CHECKING:
    from omegaconf import DictConfig

if __name__ == "__main__":  # not in a worker, which imports this module as __mp_main__
    lifecycle.begin(trains=True)  # before the imports below (1.5 s): see lifecycle, step 1

import hydra  # noqa: E402

from pipeline.config import register_configs  # noqa: E402
from pipeline.job import run  # noqa: E402
from pipeline.sweep.grid import without_repeated_values  # noqa: E402

register_configs()


def register_sweeper() -> None:
    """Make ``hydra/sweeper=grid`` and ``=optuna``, and ``hydra/launcher=parallel``'s launcher, known to
    Hydra, whatever the install (see pipeline/sweep/hydra_plugin)."""
    from hydra.core.plugins import Plugins
    from hydra_plugins.fnn_sweep.grid_sweeper import GridSweeper
    from hydra_plugins.fnn_sweep.optuna_sweeper import OptunaSweeper
    from hydra_plugins.fnn_sweep.parallel_launcher import ParallelLauncher

    Plugins.instance().register(GridSweeper)
    Plugins.instance().register(OptunaSweeper)
    Plugins.instance().register(ParallelLauncher)


@hydra.main(version_base="1.3", config_path="pkg://pipeline.conf", config_name="config")
def hydra_app(cfg: DictConfig) -> float:
    lifecycle.app_started()  # Hydra has set up the run: errors from here on are this command's
    return run(cfg)


def main() -> None:
    register_sweeper()
    if any(arg in ("-m", "--multirun") for arg in sys.argv[1:]):
        sys.argv[1:], notes = without_repeated_values(sys.argv[1:])
        for note in notes:
            print(note)
    lifecycle.run(hydra_app)


if __name__ == "__main__":
    main()
