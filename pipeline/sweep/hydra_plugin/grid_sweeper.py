"""``hydra/sweeper=grid``: the grid of Hydra's basic sweeper, without composing every job a second time.

Hydra's basic sweeper composes every job of a batch before launching it (``validate_batch_is_legal``),
50-60 ms a job in the launching process while every worker waits: 5 s before the first job of a
96-job study, a minute for 1,000 jobs. The sweep's pre-flight (``pipeline.sweep.preflight``) has
already composed and checked every job's config, so this sweeper composes again only the jobs that
override Hydra's own settings (``hydra.*``), which pre-flight does not compose. Otherwise it is the
basic sweeper: the same jobs in the same order (``pipeline.sweep.grid.job_overrides``), the same
``max_batch_size``, and the same ``multirun.yaml``, with public Hydra APIs only.

With ``halving.rungs`` it runs the grid in rounds, one per rung, and stops within each cell the runs
that do not go on (``pipeline.sweep.halving``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from pipeline.sweep import halving
from pipeline.sweep.composition import ReusedComposition
from pipeline.sweep.grid import job_overrides, sweep_axes

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.plugins.launcher import Launcher
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

log = logging.getLogger(__name__)


class GridSweeper(Sweeper):
    """Every combination of ``params`` and the command line's sweep overrides, in batches of
    ``max_batch_size`` jobs (None or -1: one batch, as Hydra's basic sweeper), launched by the
    configured launcher; ``halving``: the early stopping's settings (``halving.CellHalving``)."""

    def __init__(
        self, max_batch_size: int | None = None, params: dict[str, str] | None = None, halving: dict | None = None
    ) -> None:
        self.max_batch_size = max_batch_size
        self.params = params
        self.halving = halving
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        hydra_context = ReusedComposition.context(hydra_context)  # jobs of the same structure composed once
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None, "setup() first"
        jobs = job_overrides(self.params, arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")  # as the basic sweeper does
        early_stopping = halving.CellHalving.from_sweeper(self.halving)
        if early_stopping is not None:
            axes = sweep_axes(self.params, arguments)
            return halving.launch_rounds(early_stopping, self, jobs, axes, self.config)
        return self.launch(jobs, 0)

    def launch(self, jobs: Sequence[Sequence[str]], initial_job_idx: int) -> list[Sequence[JobReturn]]:
        """Launch ``jobs`` in batches of ``max_batch_size``; returns each batch's returns."""
        assert self.launcher is not None, "setup() first"
        size = self.max_batch_size if self.max_batch_size is not None and self.max_batch_size > 0 else len(jobs) or 1
        returns: list[Sequence[JobReturn]] = []
        for start in range(0, len(jobs), size):
            batch = list(jobs[start : start + size])
            self.validate_batch_is_legal([job for job in batch if _overrides_hydra(job)])
            returns.append(self.launcher.launch(batch, initial_job_idx=initial_job_idx + start))
        return returns


def _overrides_hydra(job: Sequence[str]) -> bool:
    """True when the job sets Hydra's own config (``hydra.job.chdir=true``, ``hydra/launcher=...``)."""
    return any(o.lstrip("+~").startswith(("hydra.", "hydra/")) for o in job)
