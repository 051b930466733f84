"""``hydra/sweeper=optuna``: an adaptive search, with Optuna's samplers and pruners, on any launcher.

Each round asks the study for as many trials as the launcher runs at once (``n_jobs``; by default
its workers), launches them as jobs of the configured launcher (parallel, submitit, Ray), and tells
the study each job's result: its final validation accuracy (maximised) or validation MSE
(minimised), the value the Hydra task returns. A job that failed is a FAIL trial; a job its pruner
stopped told the study itself (``pipeline.job.pruning``).

Why rounds no larger than the workers: Hydra's launchers return only when their whole batch has
(hydra issue #1954), so a larger batch keeps a slot idle from a pruned or short trial's end to the
batch's end, and asks for more points before learning from the last ones.

The study lives in its storage (``optuna.db`` beside a SQLite MLflow store by default), named by
the experiment and the search space; the same command continues it up to ``n_trials`` in all.
Trials a killed command left RUNNING are failed first, as the reaper ends their runs. Every trial
is a child run of the sweep's parent run, tagged with the study and trial number; each trial keeps
its run id (user attribute ``mlflow_run_id``).
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from pipeline.runtime import workers
from pipeline.runtime.termination import termination
from pipeline.sweep import search
from pipeline.sweep.composition import ReusedComposition
from pipeline.tracking import layout, store, study

if TYPE_CHECKING:
    import optuna
    from hydra.core.utils import JobReturn
    from hydra.plugins.launcher import Launcher
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

log = logging.getLogger("pipeline")
CLOCK_SLACK_MS = 60_000  # how far behind this machine's clock another machine's may be
ASK_GRACE_S = 600  # a trial asked this recently, without a run yet, may be another command's next job


class OptunaSweeper(Sweeper):
    """``n_trials`` trials of ``params`` and the command line's sweep overrides (see ``search``)."""

    def __init__(
        self,
        sampler: str = "tpe",
        sampler_settings: dict | None = None,
        n_trials: int = 20,
        n_jobs: int | None = None,
        seed: int | None = None,
        study_name: str | None = None,
        storage: str | None = None,
        direction: str = "auto",
        pruner: str = "none",
        pruner_settings: dict | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        self.settings: dict[str, Any] = {
            "sampler": sampler,
            "sampler_settings": sampler_settings or {},
            "n_trials": n_trials,
            "n_jobs": n_jobs,
            "seed": seed,
            "study_name": study_name,
            "storage": storage,
            "direction": direction,
            "pruner": pruner,
            "pruner_settings": pruner_settings or {},
        }
        self.params = params
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        hydra_context = ReusedComposition.context(hydra_context)  # jobs of the same structure composed once
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None, "setup() first"
        space = search.parse_space(self.params, arguments)
        plan = search.plan(self.settings, self.config, space)
        optuna_study = search.open_study(plan)
        _fail_abandoned(optuna_study, self.config, plan.name)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")  # as Hydra's sweepers do
        at_once = self.settings["n_jobs"] or _launcher_slots(self.config.hydra.get("launcher"))
        left = search.trials_left(plan)
        log.info(
            f"Study {plan.name} ({plan.direction} {search.objective(plan)}): {plan.n_trials - left} of "
            f"{plan.n_trials} trials done, {left} to run, {at_once} at a time; stored in {store.shown(plan.storage)}"
        )
        if left == 0:
            log.info(f"Nothing to run: give hydra.sweeper.n_trials above {plan.n_trials} to continue the study")
        returns, launched = [], 0
        while left > 0:
            termination.check()  # a signal between rounds ends the search before it asks for more
            asked_at = int(time.time() * 1000)
            trials = [optuna_study.ask(space.distributions()) for _ in range(min(at_once, left))]
            jobs = [[*space.trial_overrides(t.params), *_identity(plan, t.number)] for t in trials]
            try:
                batch = self.launcher.launch(jobs, initial_job_idx=launched)
            except BaseException:  # a signal, a worker gone: the round's trials end FAIL, not RUNNING
                _fail(optuna_study, trials)
                raise
            runs = _runs(self.config, plan.name, [t.number for t in trials], asked_at)
            for trial, result in zip(trials, batch):
                _tell(optuna_study, trial, result, *runs.get(trial.number, (None, False)))
            returns.append(batch)
            launched += len(trials)
            left -= len(trials)
        return returns  # the study's summary follows the jobs' lines: SweepTracking logs it at the end


def _launcher_slots(launcher):
    """Jobs the launcher runs at once: its workers; a SLURM array's parallelism (submitit)."""
    parallelism = launcher.get("array_parallelism") if launcher is not None else None
    return int(parallelism) if parallelism else max(1, workers.jobs_at_once(launcher))


def _identity(plan, number):
    """The overrides that tell a job which trial it is and where its study is stored."""
    return [
        f"sweep.study={_quoted(plan.name)}",
        f"sweep.trial={number}",
        f"sweep.study_storage={_quoted(plan.storage)}",
    ]


def _quoted(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fail(optuna_study: optuna.Study, trials: list) -> None:
    import optuna

    for trial in trials:
        optuna_study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def _fail_abandoned(optuna_study: optuna.Study, config: DictConfig, study_name: str) -> None:
    """Trials left RUNNING by a command that was killed (SIGKILL): FAIL, so new ones take their place.

    Only the abandoned ones: a trial whose run is still RUNNING (after the sweep's reaper ended the runs
    of dead processes) belongs to a command running now, here or on another machine, and so does a
    trial asked for in the last ``ASK_GRACE_S`` whose run has not started yet.
    """
    import optuna

    running = optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not running:
        return
    tracking = store.open_store(config.mlflow.tracking_uri)
    experiment_id = store.find_experiment(tracking.uri, config.mlflow.experiment_name)
    oldest = min(t.datetime_start or datetime.now() for t in running)
    clauses = [layout.tag_is(layout.TAG_STUDY, study_name), layout.started_since(int(oldest.timestamp() * 1000))]
    briefs = layout.read_briefs(tracking, [experiment_id], " and ".join(clauses)) if experiment_id else []
    status = {brief.tag("trial"): brief.status for brief in briefs}  # a trial's run, by its number
    now = datetime.now()  # Optuna's trial times are naive local times
    abandoned = [
        t
        for t in running
        if status.get(str(t.number), "RUNNING") != "RUNNING"  # its run ended: KILLED by the reaper
        or (
            str(t.number) not in status
            and (t.datetime_start is None or (now - t.datetime_start).total_seconds() > ASK_GRACE_S)
        )
    ]
    _fail(optuna_study, abandoned)
    if abandoned:
        log.info(f"{len(abandoned)} trial(s) left running by an earlier command marked failed")


def _runs(config, study_name, numbers, asked_at):
    """{trial number: (its MLflow run id, pruned)} for the trials of one round (one search of the store);
    a trial whose config had finished before stands for that run."""
    tracking = store.open_store(config.mlflow.tracking_uri)
    experiment_id = store.find_experiment(tracking.uri, config.mlflow.experiment_name)
    if experiment_id is None:
        return {}
    wanted = {str(n) for n in numbers}
    found = {}
    # Only this round's runs: they started after its trials were asked (less a slack for the clocks of
    # other machines), so a long study's later rounds read no more runs than its first.
    clauses = [layout.tag_is(layout.TAG_STUDY, study_name), layout.started_since(asked_at - CLOCK_SLACK_MS)]
    for brief in layout.read_briefs(tracking, [experiment_id], " and ".join(clauses)):
        trial = brief.tag("trial")
        if trial in wanted:
            reused = brief.tag("reused_run")
            run = tracking.client.get_run(reused) if reused else None  # the run it stands for
            pruned = run.data.tags.get(layout.TAG_PRUNED) if run else brief.tag("pruned")
            found[int(trial)] = (reused or brief.run_id, pruned is not None)
    return found


def _tell(optuna_study, trial, result: JobReturn, run_id, pruned):
    """The trial's outcome: its value, FAIL when its job failed, PRUNED when the run it reused was."""
    import optuna

    if run_id is not None:
        try:
            trial.set_user_attr(study.USER_ATTR_RUN_ID, run_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # pruned: the job told the study, and set it, itself
    value = result.return_value if result.status == JobStatus.COMPLETED else math.nan
    if pruned:
        optuna_study.tell(trial.number, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
    elif isinstance(value, (int, float)) and math.isfinite(value):
        optuna_study.tell(trial.number, float(value), skip_if_finished=True)
    else:
        optuna_study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
