"""A search trial's pruning: each epoch's validation metric reported to its Optuna study, and the
job stopped when the study's pruner says so.

It runs in the job's own process (a worker, another machine), against the study's shared storage;
the pruner is built here from the sweeper's settings, as in the launching process, and compares the
trial with every other trial the storage holds. A pruned job ends its run FINISHED with the
``pruned`` tag and its curves, and tells the study the trial was pruned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.runtime import failure
from pipeline.tracking import study

if TYPE_CHECKING:
    import optuna

    from pipeline.config import Config
    from pipeline.job.context import JobContext

log = logging.getLogger("pipeline")
_studies: dict[tuple, Any] = {}  # (storage, study, pruner) -> optuna.Study, loaded once per process


class TrialPruning:
    """Reports ``metric`` (a key of fnn_core's epoch logs) of trial ``number`` to ``optuna_study``."""

    def __init__(
        self, optuna_study: optuna.Study, storage: optuna.storages.BaseStorage, number: int, metric: str, run_id: str
    ):
        import optuna

        self.study, self.number, self.metric = optuna_study, number, metric
        # Optuna's Trial for a trial another process asked for, by its id (the storage's public API).
        study_id = storage.get_study_id_from_name(optuna_study.study_name)
        self.trial = optuna.trial.Trial(optuna_study, storage.get_trial_id_from_study_id_trial_number(study_id, number))
        # Set here: a pruned trial is finished before the sweeper could set it.
        self.trial.set_user_attr(study.USER_ATTR_RUN_ID, run_id)
        self.pruned_after: int | None = None  # epochs run when the pruner stopped it

    @classmethod
    def for_job(cls, settings: Config, job: JobContext, task: str) -> TrialPruning | None:
        """The job's pruning, or None: not a search trial, no pruner, or no validation split."""
        sweep = settings.sweep
        if job.pruner == "none" or sweep.trial is None or not sweep.study or not sweep.study_storage:
            return None
        if settings.train.val_fraction == 0:
            return None  # pre-flight refuses a pruner without validation; a trial run by hand trains on
        import mlflow
        import optuna

        storage = study.open_storage(sweep.study_storage)
        key = (sweep.study_storage, sweep.study, job.pruner, repr(sorted(job.pruner_settings.items())))
        if key not in _studies:
            pruner = study.pruner(job.pruner, job.pruner_settings)
            _studies[key] = optuna.load_study(study_name=sweep.study, storage=storage, pruner=pruner)
        metric = "val_mse" if task == "regression" else "val_accuracy"
        active = mlflow.active_run()
        run_id = active.info.run_id if active is not None else ""
        return cls(_studies[key], storage, sweep.trial, metric, run_id)

    def should_stop(self, epoch: int, logs: Mapping[str, float]) -> bool:
        """Report epoch ``epoch`` (from 0); True when the pruner stops the trial here.

        A storage that fails to answer loses the pruning, never the job: it trains on, said once.
        """
        if self.pruned_after is not None or self.metric not in logs:
            return self.pruned_after is not None
        try:
            self.trial.report(float(logs[self.metric]), epoch)
            if self.trial.should_prune():
                self.pruned_after = epoch + 1
        except Exception as exc:
            log.warning(f"trial {self.number}: pruning stopped ({failure.one_line(exc)}); training on")
            self.metric = ""  # no more reports
        return self.pruned_after is not None

    def tell_pruned(self) -> None:
        """Tell the study the trial was pruned (its run is logged: the sweeper links it)."""
        import optuna

        self.study.tell(self.number, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
