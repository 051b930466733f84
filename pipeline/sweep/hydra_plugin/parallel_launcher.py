"""``hydra/launcher=parallel``: Hydra's joblib launcher, with what every job shares sent once.

Hydra's joblib launcher hands each job its Hydra context, the sweep's config, the task and Hydra's
singletons (the config store among them), so loky pickles them again for every job in the launching
process and every worker unpickles them again: 6-7 ms a job of the launching process's CPU, taken
from the workers on a machine they keep busy, and as much again in the worker. Here they are pickled
once per batch, into bytes that loky only copies, and a worker unpickles them at its first job of the
batch and keeps them. The rest is the joblib launcher's, with Hydra's public APIs: the same config
(``hydra.launcher.n_jobs`` and joblib's other settings), the same job numbers, directories, logs and
callbacks (``hydra.core.utils.run_job``), the same ``JobReturn``\\s less the Hydra config each one
carried back (nothing reads it in the launching process).
"""

from __future__ import annotations

import logging
import multiprocessing
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import cloudpickle
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from joblib import Parallel, delayed
from omegaconf import open_dict

from pipeline.runtime import failure, workers

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

# This worker's shared state of the batch it last ran a job of: (token, its objects).
_shared: tuple[str, tuple] | None = None


class ParallelLauncher(JoblibLauncher):
    """Hydra's joblib launcher (same settings), sending what its jobs share once per batch."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.task_function is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)

        settings = workers.joblib_settings(self.joblib)  # as Hydra's joblib launcher makes them
        # Hydra's joblib launcher's lines, word for word.
        joblib_args = ",".join(f"{k}={v}" for k, v in settings.items())
        log.info(f"Joblib.Parallel({joblib_args}) is launching {len(job_overrides)} jobs")
        log.info(f"Launching jobs, sweep output dir : {sweep_dir}")
        for idx, overrides in enumerate(job_overrides):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")

        token = uuid.uuid4().hex
        shared = cloudpickle.dumps((self.hydra_context, self.config, self.task_function, Singleton.get_state()))
        try:
            returns = Parallel(**settings)(
                delayed(run_shared_job)(initial_job_idx + idx, list(overrides), token, shared)
                for idx, overrides in enumerate(job_overrides)
            )
        except multiprocessing.TimeoutError:  # joblib ended every worker: the sweep cannot go on
            failure.abort(failure.timed_out(settings["timeout"]))
        assert isinstance(returns, list) and all(isinstance(r, JobReturn) for r in returns)
        return returns


def run_shared_job(idx: int, overrides: list[str], token: str, shared: bytes) -> JobReturn:
    """One job in a worker: as Hydra's joblib launcher runs it, from the batch's ``shared`` state
    (unpickled at the worker's first job of the batch)."""
    global _shared
    if _shared is None or _shared[0] != token:
        _shared = (token, cloudpickle.loads(shared))
    hydra_context, config, task_function, singleton_state = _shared[1]
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    # run_job sets HydraConfig itself, before anything reads it (the joblib launcher sets it once more).
    result = run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    result.hydra_cfg = None  # the whole Hydra config, for no reader: not pickled back
    return result
