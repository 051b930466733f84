"""A search: its space, in Hydra's sweep syntax, as Optuna distributions, and its study's settings.

The space is ``hydra.sweeper.params`` extended by the command line (a command-line override of the
same key replaces it), as for a grid:

- ``choice(a,b)`` or ``a,b``: categorical (config groups too: ``optimizer=choice(sgd,adam)``);
- ``interval(a,b)``: uniform, integer when both ends are written as integers;
  ``tag(log, interval(a,b))``: log-uniform;
- ``range(a,b[,step])``: the integers (or floats) ``a, a+step, ...`` before ``b`` (Hydra's stop is
  exclusive);
- a plain value: fixed, the same in every trial.

Everything here is checked before any run (``pipeline.sweep.preflight``); a bad space, sampler,
pruner or storage is one line. Optuna is imported at first use.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

from pipeline import credentials
from pipeline.constraints import ConfigError, Text

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

DIRECTIONS = ("auto", "maximize", "minimize")
SEARCH_SWEEPER = "OptunaSweeper"  # the class name ``hydra/sweeper=optuna`` instantiates
EXAMPLE = "optimizer.lr='tag(log, interval(1e-3, 1))'"
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_INTERVAL_ENDS = re.compile(r"interval\((?P<low>[^,()]+),(?P<high>[^,()]+)\)")
_PRIMITIVE = (str, int, float, bool, type(None))


def is_search_sweeper(sweeper_config: Mapping[str, Any]) -> bool:
    """True for ``hydra/sweeper=optuna`` (its ``_target_`` names ``OptunaSweeper``)."""
    return str(sweeper_config.get("_target_", "")).endswith(SEARCH_SWEEPER)


@dataclass(frozen=True)
class Dimension:
    """One searched key: its Optuna distribution and, for a categorical one, each choice as written."""

    key: str  # the override's key, with its prefix: "optimizer.lr", "+train.foo", "optimizer"
    distribution: BaseDistribution
    written: tuple[str, ...] = ()  # categorical: the choices as override strings, in order

    def override(self, value: Any) -> str:
        """``key=value`` for a sampled ``value``."""
        if self.written:
            choices = self.distribution.choices  # type: ignore[attr-defined]
            index = next(i for i, c in enumerate(choices) if type(c) is type(value) and c == value)
            return f"{self.key}={self.written[index]}"
        return f"{self.key}={value!r}" if isinstance(value, float) else f"{self.key}={value}"

    def extremes(self) -> list[Any]:
        """The values a trial can take at the edges: every choice, or the low and high ends."""
        if self.written:
            return list(self.distribution.choices)  # type: ignore[attr-defined]
        return list(dict.fromkeys([self.distribution.low, self.distribution.high]))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]
    fixed: tuple[str, ...]  # the plain overrides every trial gets, as written

    def distributions(self) -> dict[str, BaseDistribution]:
        return {d.key: d.distribution for d in self.dimensions}

    def trial_overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's job: the fixed overrides, then each dimension's sampled value."""
        return [*self.fixed, *(d.override(params[d.key]) for d in self.dimensions)]

    def check_jobs(self) -> list[list[str]]:
        """Jobs that together give every dimension each of its extreme values (the others at their
        first): validating them validates every value a trial can get, since every constraint is an
        interval or a set of options."""
        first = [d.override(d.extremes()[0]) for d in self.dimensions]
        jobs = {tuple(first): None}
        for i, dimension in enumerate(self.dimensions):
            for value in dimension.extremes()[1:]:
                jobs[tuple(first[:i] + [dimension.override(value)] + first[i + 1 :])] = None
        return [[*self.fixed, *job] for job in jobs]

    def fingerprint(self) -> str:
        """8 hex digits naming the space: the same command names the same study."""
        text = repr([(d.key, repr(d.distribution)) for d in self.dimensions]) + repr(sorted(self.fixed))
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def parse_space(sweeper_params: Mapping[str, Any] | None, task_overrides: Sequence[str]) -> SearchSpace:
    """The search space of ``hydra.sweeper.params`` and the command line's app overrides.

    Raises
    ------
    ConfigError
        A sweep that does not parse, an empty or reversed interval or range, a choice that is not a
        plain value, or no searched key at all.
    """
    strings = [f"{key}={value}" for key, value in (sweeper_params or {}).items()] + list(task_overrides)
    parser, by_key = OverridesParser.create(), {}
    for string in strings:
        try:
            [override] = parser.parse_overrides([string])
        except Exception as exc:
            raise ConfigError(f"{string}: {str(exc).splitlines()[0]}") from None
        by_key[override.get_key_element()] = override  # a later override of a key replaces it
    dimensions, fixed = [], []
    for key, override in by_key.items():
        if override.is_sweep_override():
            dimensions.append(_dimension(key, override))
        else:
            fixed.append(str(override.input_line))
    if not dimensions:
        raise ConfigError(f"the search space is empty: give hydra.sweeper.params or a sweep override such as {EXAMPLE}")
    return SearchSpace(tuple(dimensions), tuple(fixed))


def _dimension(key, override):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value, line = override.value(), override.input_line
    try:
        if isinstance(value, ChoiceSweep):
            choices = list(dict.fromkeys(value.list))
            bad = [c for c in choices if not isinstance(c, _PRIMITIVE)]
            if bad:
                raise ValueError(f"a choice must be a plain value, not {bad[0]!r}")
            return Dimension(key, CategoricalDistribution(choices), tuple(_written(c) for c in choices))
        if isinstance(value, RangeSweep):
            start, stop, step = value.start, value.stop, value.step
            count = math.ceil((stop - start) / step) if step else 0
            if count <= 0:
                raise ValueError(f"range({start}, {stop}, {step}) is empty (its stop is exclusive)")
            ends = sorted([start, start + step * (count - 1)])
            if all(isinstance(v, int) for v in (start, stop, step)):
                return Dimension(key, IntDistribution(ends[0], ends[1], step=abs(step)))
            return Dimension(key, FloatDistribution(float(ends[0]), float(ends[1]), step=abs(float(step))))
        if isinstance(value, IntervalSweep):
            log = "log" in value.tags
            if value.start > value.end:
                raise ValueError(f"its low end {value.start:g} is above its high end {value.end:g}")
            ends = _INTERVAL_ENDS.search(str(line).split("=", 1)[1].replace(" ", ""))
            if ends and _INTEGER.fullmatch(ends["low"]) and _INTEGER.fullmatch(ends["high"]):
                return Dimension(key, IntDistribution(int(value.start), int(value.end), log=log))
            return Dimension(key, FloatDistribution(value.start, value.end, log=log))
    except ValueError as exc:
        raise ConfigError(f"{line}: {exc}") from None
    raise ConfigError(f"{line}: a search takes choice(...), interval(...), tag(log, interval(...)) or range(...)")


def _written(choice):
    """A choice as an override value: Hydra's own spelling for None and bools, quoted when needed."""
    if choice is None:
        return "null"
    if isinstance(choice, bool):
        return str(choice).lower()
    if isinstance(choice, str) and not re.fullmatch(r"[\w./-]+", choice):
        return "'" + choice.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(choice)


# ---- the study ----


def sampler(
    name: str, seed: int | None, settings: Mapping[str, Any], space: SearchSpace
) -> optuna.samplers.BaseSampler:
    """Optuna's sampler ``name`` (tpe, random, cmaes, gp, qmc, grid) with ``settings`` (its keyword arguments).

    Raises
    ------
    ConfigError
        An unknown name or setting, or ``grid`` on a continuous dimension.
    """
    import optuna

    from pipeline.tracking import study

    classes = {
        "tpe": optuna.samplers.TPESampler,  # constant_liar: a parallel batch does not ask for one point twice
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
        "qmc": optuna.samplers.QMCSampler,
        "grid": optuna.samplers.GridSampler,
    }
    kwargs = {**settings, "seed": seed}
    if name == "grid":
        kwargs["search_space"] = _grid(space)
    if name == "gp":
        try:
            import torch  # noqa: F401  (Optuna's GP sampler runs on PyTorch)
        except ImportError:
            raise ConfigError("hydra.sweeper.sampler=gp needs PyTorch: pip install torch") from None
    return study.built("sampler", name, classes, kwargs)


def _grid(space):
    values = {}
    for d in space.dimensions:
        if d.written:
            values[d.key] = list(d.distribution.choices)
        elif getattr(d.distribution, "step", None):
            low, high, step = d.distribution.low, d.distribution.high, d.distribution.step
            values[d.key] = [low + i * step for i in range(int(round((high - low) / step)) + 1)]
        else:
            raise ConfigError(f"hydra.sweeper.sampler=grid needs finite choices: {d.key} is an interval")
    return values


def study_name(setting: str | None, experiment_name: str, space: SearchSpace) -> str:
    """``EXPERIMENT:NAME``; without a name, ``EXPERIMENT:search-FINGERPRINT``, so the same command
    continues the same study and another space starts its own."""
    return f"{experiment_name}:{setting or f'search-{space.fingerprint()}'}"


def direction(setting: str, task: str) -> str:
    """``maximize`` (final validation accuracy) or ``minimize`` (validation MSE, a regression's)."""
    if setting not in DIRECTIONS:
        raise ConfigError(f"hydra.sweeper.direction={setting}: must be one of {', '.join(DIRECTIONS)}")
    if setting != "auto":
        return setting
    return "minimize" if task == "regression" else "maximize"


@dataclass(frozen=True)
class StudyPlan:
    """What ``hydra/sweeper=optuna`` settings and the app config make of a study."""

    name: str  # EXPERIMENT:NAME in the storage
    storage: str  # URL, as the config shows it (credentials redacted)
    direction: str  # maximize or minimize
    n_trials: int
    sampler: Any  # optuna.samplers.BaseSampler
    pruner: Any  # optuna.pruners.BasePruner
    reseed: Any = None  # seeded: trials held -> the sampler with seed + trials held (see open_study)


def plan(sweeper: Mapping[str, Any], app: Any, space: SearchSpace) -> StudyPlan:
    """The study of the sweeper settings ``sweeper`` (``hydra.sweeper``) for the app config ``app``
    (its ``mlflow`` and ``dataset``, typed or not); checks every setting.

    Raises
    ------
    ConfigError
        A bad setting, as one line.
    """
    from pipeline.config import project_home
    from pipeline.data.registry import task_of
    from pipeline.tracking import study

    n_trials, n_jobs, seed = sweeper.get("n_trials"), sweeper.get("n_jobs"), sweeper.get("seed")
    for key, value, least in (("n_trials", n_trials, 1), ("n_jobs", n_jobs, 1), ("seed", seed, 0)):
        if value is None and key != "n_trials":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"hydra.sweeper.{key}={value}: must be an integer >= {least}")
    pruner_name = str(sweeper.get("pruner") or "none")
    if pruner_name != "none" and app.train.val_fraction == 0:
        raise ConfigError(
            f"hydra.sweeper.pruner={pruner_name} compares validation scores: it needs train.val_fraction > 0"
        )
    sampler_name, sampler_settings = str(sweeper.get("sampler") or "tpe"), dict(sweeper.get("sampler_settings") or {})
    storage = sweeper.get("storage")
    # The same check as the app's URI settings: a file's credentials would be stored (the command line's are taken out).
    if problem := Text(optional=True, empty=True, uri=True).problem(storage):
        raise ConfigError(f"hydra.sweeper.storage={credentials.redact(str(storage))}: {problem}")
    return StudyPlan(
        name=study_name(sweeper.get("study_name"), app.mlflow.experiment_name, space),
        storage=study.storage_url(sweeper.get("storage"), app.mlflow.tracking_uri, project_home()),
        direction=direction(str(sweeper.get("direction") or "auto"), task_of(app.dataset.name)),
        n_trials=int(n_trials or 0),  # checked above
        sampler=sampler(sampler_name, seed, sampler_settings, space),
        pruner=study.pruner(pruner_name, dict(sweeper.get("pruner_settings") or {})),
        reseed=None if seed is None else lambda held: sampler(sampler_name, seed + held, sampler_settings, space),
    )


def open_study(plan: StudyPlan) -> optuna.Study:
    """The plan's study, created or continued (``load_if_exists``).

    Raises
    ------
    ConfigError
        The storage does not answer, or holds the study with the other direction.
    """
    import optuna

    from pipeline.tracking import study

    storage = study.open_storage(plan.storage)
    try:
        optuna_study = optuna.create_study(
            storage=storage,
            study_name=plan.name,
            direction=plan.direction,  # type: ignore[arg-type]
            sampler=plan.sampler,
            pruner=plan.pruner,
            load_if_exists=True,
        )
    except ValueError as exc:
        raise ConfigError(f"study {plan.name}: {exc}") from None
    held = optuna_study.direction.name.lower()
    if held != plan.direction:  # Optuna loads an existing study whatever direction was asked for
        raise ConfigError(
            f"study {plan.name} in {credentials.redact(plan.storage)} was made to {held}, this search would "
            f"{plan.direction}: give it another hydra.sweeper.study_name"
        )
    if plan.reseed is not None:
        # A seeded sampler starts its random stream again in every command: a continued study would
        # ask for its first points again. Its seed moves on by the trials the study holds.
        optuna_study.sampler = plan.reseed(len(optuna_study.get_trials(deepcopy=False)))
    return optuna_study


def objective(plan: StudyPlan) -> str:
    return "validation MSE" if plan.direction == "minimize" else "validation accuracy"


def summary_lines(plan: StudyPlan) -> list[str]:
    """The study's trials by state, and its best trial with its params and run."""
    import optuna

    from pipeline.tracking import study

    trials = open_study(plan).get_trials(deepcopy=False)
    states = [t.state.name.lower() for t in trials]
    counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
    lines = [f"Study {plan.name}: {len(trials)} trial{'s' if len(trials) != 1 else ''} ({counts or 'none'})"]
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    if completed:
        pick = min if plan.direction == "minimize" else max
        best = pick(completed, key=lambda t: float(t.value))  # type: ignore[arg-type]
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
        run = best.user_attrs.get(study.USER_ATTR_RUN_ID, "?")
        lines.append(f"Best trial {best.number}: {objective(plan)} {best.value:.4f} with {params} (run {run})")
    return lines


def trials_left(plan: StudyPlan) -> int:
    """Trials still to run: ``n_trials`` less those the study has completed or pruned.

    Failed trials (a job that failed, was killed, or a command killed with it) are made up by the next
    command, as Optuna's ``MaxTrialsCallback`` counts; one command never runs more than it found left,
    so a space where every trial fails cannot loop.
    """
    import optuna

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(open_study(plan).get_trials(deepcopy=False, states=finished))
    return max(0, plan.n_trials - done)
