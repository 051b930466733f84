"""What Hydra says about the running job: a single run or a sweep's, its number, log file and choices."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from pipeline.runtime import failure

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class JobContext:
    """What Hydra says about the running job; all defaults outside Hydra (a plain function call)."""

    sweep_dir: str | None = None  # None: a single run
    number: int | None = None  # 0-based index in the sweep
    log_file: Path | None = None
    choices: dict = field(default_factory=dict)
    # A search's pruner (hydra.sweeper.pruner, .pruner_settings), as every trial's job must build it too.
    pruner: str = "none"
    pruner_settings: dict = field(default_factory=dict)

    @property
    def in_sweep(self) -> bool:
        return self.sweep_dir is not None

    @property
    def summary_log(self) -> logging.Logger:
        """Where the job's one-line outcome goes: the console for a single run; in a sweep the job's
        log file only, since the launching process prints each job's line (``pipeline.sweep.progress``)."""
        return failure.job_file_log if self.in_sweep else log

    @classmethod
    def current(cls) -> JobContext:
        if not HydraConfig.initialized():
            return cls()
        hydra_cfg = HydraConfig.get()
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        sweeper = hydra_cfg.sweeper if multirun else {}
        return cls(
            sweep_dir=str(hydra_cfg.sweep.dir) if multirun else None,
            number=hydra_cfg.job.num if multirun else None,
            log_file=Path(hydra_cfg.runtime.output_dir) / f"{hydra_cfg.job.name}.log",
            choices={k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")},
            pruner=str(sweeper.get("pruner") or "none"),
            pruner_settings=dict(sweeper.get("pruner_settings") or {}),
        )
