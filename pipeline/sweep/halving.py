"""Early stopping for a grid that keeps every cell: successive halving within each cell.

A study's table needs every cell; a global pruner would stop every sigmoid run because ReLU learns
faster. Here a run competes only with the runs of its own *cell*: the jobs with the same value of
every axis except the competing ones (``compete``, by default ``optimizer.lr``), the seeds pooled.
At each rung (an epoch) every cell's competing values are ranked by their runs' mean validation
score there, and the best ``1/reduction_factor`` of them (at least one) go on to the next rung and
at last to ``train.epochs``; the others end FINISHED and ``pruned``. Seeds are pooled so that the
value the table picks keeps all its seeds.

The rounds are synchronous: every job runs up to the rung and pauses (its run SCHEDULED, with a
checkpoint), the cells are compared, the survivors are continued from their checkpoints. So the
decisions do not depend on the order the jobs ran in, the launcher's workers or the machine, and a
continued run trains exactly as an uninterrupted one (``FNN.fit(initial_epoch=...)``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.errors import InputError
from pipeline.runtime.termination import termination
from pipeline.tracking import layout, runs, store

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from omegaconf import DictConfig

    from pipeline.sweep.hydra_plugin.grid_sweeper import GridSweeper

log = logging.getLogger("pipeline")

SEED_KEY = "train.seed"  # pooled: the runs of one value with different seeds are one competitor
SETTINGS = "hydra.sweeper.halving"


@dataclass(frozen=True)
class CellHalving:
    """Rungs (epochs, increasing), the competing axes, and the fraction kept: 1/reduction_factor."""

    rungs: tuple[int, ...]
    compete: tuple[str, ...] = ("optimizer.lr",)
    reduction_factor: float = 2.0

    @classmethod
    def from_sweeper(cls, halving: Mapping[str, Any] | None) -> CellHalving | None:
        """The grid sweeper's ``halving`` settings, checked; None when there are no rungs (off).

        Raises
        ------
        InputError
            A bad setting, as one line.
        """
        halving = dict(halving or {})
        unknown = set(halving) - {"rungs", "compete", "reduction_factor"}
        if unknown:
            raise InputError(
                f"{SETTINGS}: unknown setting {sorted(unknown)[0]!r}; valid: rungs, compete, reduction_factor"
            )
        rungs = halving.get("rungs") or []
        if isinstance(rungs, (int, str)) or not all(isinstance(r, int) and not isinstance(r, bool) for r in rungs):
            raise InputError(f"{SETTINGS}.rungs={rungs!r} is not valid: must be a list of epochs, e.g. [1,3]")
        rungs = list(rungs)
        if not rungs:
            return None
        if rungs[0] < 1 or any(b <= a for a, b in zip(rungs, rungs[1:])):
            raise InputError(f"{SETTINGS}.rungs={rungs} is not valid: must be increasing epochs >= 1, e.g. [1,3]")
        compete = halving.get("compete", ["optimizer.lr"])
        compete = [compete] if isinstance(compete, str) else list(compete or [])
        if not compete or not all(isinstance(key, str) and key for key in compete):
            raise InputError(f"{SETTINGS}.compete={compete!r} is not valid: must name the swept keys that compete")
        if SEED_KEY in compete:
            raise InputError(f"{SETTINGS}.compete: {SEED_KEY} cannot compete; a value's seeds are pooled")
        factor = halving.get("reduction_factor", 2)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1:
            raise InputError(f"{SETTINGS}.reduction_factor={factor!r} is not valid: must be a number > 1")
        return cls(tuple(rungs), tuple(compete), float(factor))

    def check(self, axes: Mapping[str, Sequence[str]], settings: Sequence[Any]) -> None:
        """Pre-flight: the competing keys are swept, and every job can be compared at every rung.

        axes : the grid's {key: [override strings]} (``grid.sweep_axes``); settings : every job's checked config.
        """
        for key in self.compete:
            if len(axes.get(key, ())) < 2:
                raise InputError(
                    f"{SETTINGS}.compete: {key} is not swept; give it several values ({key}=x,y,...), "
                    "or name the axis whose values compete"
                )
        for job in settings:
            if job.train.val_fraction == 0:
                raise InputError(f"{SETTINGS} compares validation scores: train.val_fraction must be above 0")
            if job.train.early_stopping_patience is not None:
                raise InputError(f"{SETTINGS} and train.early_stopping_patience cannot be combined: choose one")
            if self.rungs[-1] >= job.train.epochs:
                raise InputError(
                    f"{SETTINGS}.rungs={list(self.rungs)}: every rung must be below train.epochs ({job.train.epochs})"
                )

    def cells(self, axes: Mapping[str, Sequence[str]]) -> list[Cell]:
        """The grid's cells, in the grid's order; jobs are indices into ``grid.job_overrides``'s list."""
        keys = list(axes)
        sizes = [len(axes[key]) for key in keys]
        cells: dict[tuple, Cell] = {}
        for index in range(math.prod(sizes)):
            position, rest = {}, index
            for key, size in zip(reversed(keys), reversed(sizes)):  # the first axis varies slowest
                rest, position[key] = divmod(rest, size)
            values = {key: axes[key][position[key]] for key in keys}
            cell_key = tuple(v for k, v in values.items() if k not in self.compete and k != SEED_KEY)
            competitor = " ".join(v for k, v in values.items() if k in self.compete)
            swept = [v for k, v in values.items() if k not in self.compete and k != SEED_KEY and len(axes[k]) > 1]
            cell = cells.setdefault(cell_key, Cell(" ".join(swept), {}))
            cell.competitors.setdefault(competitor, []).append(index)
        return list(cells.values())

    def kept(self, competitors: int) -> int:
        """How many of ``competitors`` go on from a rung."""
        return max(1, math.ceil(competitors / self.reduction_factor - 1e-9))


@dataclass
class Cell:
    """One cell: its name (its axes' overrides) and its competitors, {"optimizer.lr=0.1": [job indices]}."""

    name: str
    competitors: dict[str, list[int]]


@dataclass(frozen=True)
class Ranked:
    """A competitor at a rung: its mean score over its seeds' runs there (NaN when one failed)."""

    competitor: str
    score: float
    place: int  # from 1
    of: int
    goes_on: bool


def rank(cell: Cell, alive: Sequence[str], scores: Mapping[int, float], maximize: bool, kept: int) -> list[Ranked]:
    """Rank the ``alive`` competitors of ``cell`` by their jobs' ``scores``; the best ``kept`` go on.

    A competitor with a failed (NaN) run ranks last; ties keep the grid's order, so a decision is
    the same every time.
    """
    means = {}
    for competitor in alive:
        values = [scores.get(job, math.nan) for job in cell.competitors[competitor]]
        means[competitor] = math.nan if any(math.isnan(v) for v in values) else sum(values) / len(values)
    sign = -1.0 if maximize else 1.0
    order = sorted(alive, key=lambda c: (math.isnan(means[c]), sign * means[c] if not math.isnan(means[c]) else 0))
    return [
        Ranked(c, means[c], place, len(order), place <= kept and not math.isnan(means[c]))
        for place, c in enumerate(order, start=1)
    ]


def launch_rounds(
    halving: CellHalving,
    sweeper: GridSweeper,
    jobs: Sequence[Sequence[str]],
    axes: Mapping[str, Sequence[str]],
    config: DictConfig,
) -> list[Sequence[JobReturn]]:
    """Run the grid's ``jobs`` in rounds, one per rung and the last to ``train.epochs``, through the
    ``sweeper``'s launcher; between rounds, compare every cell and prune the paused runs that do not go on.

    Returns every batch's job returns, as a sweeper's ``sweep`` does.
    """
    from hydra.core.utils import JobStatus

    from pipeline.data.registry import task_of
    from pipeline.job.identity import identify

    tracking = store.open_store(config.mlflow.tracking_uri)
    experiment_id = store.find_experiment(config.mlflow.tracking_uri, config.mlflow.experiment_name)
    sweep = runs.find_sweep(tracking, experiment_id, str(config.hydra.sweep.dir)) if experiment_id else None
    if experiment_id is None or sweep is None:  # the sweep callback opens it before any sweeper runs
        raise RuntimeError(f"no running sweep for {config.hydra.sweep.dir}: early stopping needs its parent run")
    cells = halving.cells(axes)
    alive = {cell.name: list(cell.competitors) for cell in cells}
    hashes: dict[int, str] = {}
    maximize: dict[int, bool] = {}
    active, returns, launched = list(range(len(jobs))), [], 0
    for rung in (*halving.rungs, None):
        termination.check()  # a signal between rounds: the paused runs wait, SCHEDULED, for the same command
        batch = [[*jobs[i], f"sweep.pause_at={rung}"] if rung else list(jobs[i]) for i in active]
        batches = sweeper.launch(batch, launched)
        results = [result for part in batches for result in part]
        launched += len(batch)
        returns += batches
        scores = {}
        for job, result in zip(active, results):
            if job not in hashes:
                assert result.cfg is not None, "Hydra's launchers return each job's config"
                hashes[job] = identify(result.cfg)[2]
                maximize[job] = task_of(result.cfg.dataset.name) != "regression"
            scores[job] = float(result.return_value) if result.status == JobStatus.COMPLETED else math.nan
        if rung is None:
            break
        by_hash = runs.sweep_runs_by_hash(tracking, experiment_id, sweep.run_id)
        active, stopped, metric = [], 0, layout.VALIDATION_METRIC["max"]
        for cell in cells:
            if not alive[cell.name]:
                continue  # every run of the cell failed
            first = cell.competitors[alive[cell.name][0]][0]
            metric = layout.VALIDATION_METRIC["max" if maximize[first] else "min"]
            for competitor in alive[cell.name]:  # runs finished before this round: their score at the rung
                for job in cell.competitors[competitor]:
                    if job not in scores and hashes[job] in by_hash:
                        scores[job] = runs.metric_at(tracking, by_hash[hashes[job]][0], metric, rung - 1)
            ranked = rank(cell, alive[cell.name], scores, maximize[first], halving.kept(len(alive[cell.name])))
            alive[cell.name] = [r.competitor for r in ranked if r.goes_on]
            for r in ranked:
                for job in cell.competitors[r.competitor]:
                    run_id, status = by_hash.get(hashes[job], (None, None))
                    if run_id is None or status != layout.PAUSED:
                        continue  # finished before, or failed: nothing to continue or stop
                    if r.goes_on:
                        active.append(job)
                    else:
                        runs.prune_paused(tracking, run_id, rung, _reason(r, rung, cell, metric, len(alive[cell.name])))
                        stopped += 1
        log.info(
            f"Early stopping at epoch {rung}: {len(cells)} cells compared on {metric.replace('_', ' ')}; "
            f"{len(active)} runs go on, {stopped} stopped"
        )
        active.sort()
        if not active:
            break
    return returns


def _reason(ranked: Ranked, rung: int, cell: Cell, metric: str, kept: int) -> str:
    """A pruned run's stop reason: 'stopped after epoch 1: optimizer.lr=0.3 ranked 5 of 6 in cell ...'."""
    score = "a failed run" if math.isnan(ranked.score) else f"{metric} {ranked.score:.4f}"
    return (
        f"stopped after epoch {rung} by the grid's early stopping: {ranked.competitor} ranked {ranked.place} "
        f"of {ranked.of} in its cell ({cell.name or 'the grid'}) with {score}; the best {kept} went on"
    )
