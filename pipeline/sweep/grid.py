"""A sweep's jobs as the grid sweeper expands them, with Hydra's public override parser.

The grid is ``hydra.sweeper.params`` (conf/config.yaml) extended by the
command line; a command-line override of the same key replaces that axis.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from pipeline.runtime.workers import usable_cores

if TYPE_CHECKING:
    from omegaconf import DictConfig

# The grid sweeper's own settings; a sweeper with any other (n_trials, sampler, ...) decides its jobs as it goes.
GRID_SWEEPER_KEYS = {"_target_", "params", "max_batch_size", "halving"}


def sweep_axes(sweeper_params: Mapping[str, Any] | None, task_overrides: Sequence[str]) -> dict[str, list[str]]:
    """{key: [override strings]} in Hydra's order; a plain override is a one-value axis.

    Parameters
    ----------
    sweeper_params : mapping of key -> sweep string (``hydra.sweeper.params``), may be empty
    task_overrides : list of str, the command line's app overrides (``hydra.overrides.task``)
    """
    strings = [f"{key}={value}" for key, value in (sweeper_params or {}).items()] + list(task_overrides)
    axes = {}
    for override in OverridesParser.create().parse_overrides(strings):
        key = override.get_key_element()
        if override.is_sweep_override() and override.is_discrete_sweep():
            axes[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        elif override.is_sweep_override():  # interval(...) and the like: the sweeper samples them
            axes.pop(key, None)
        else:
            axes[key] = [f"{key}={override.get_value_element_as_str()}"]
    return axes


def without_repeated_values(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Command-line arguments with each sweep's repeated values given once (``model.hidden_neurons=32,32``
    would train the same job twice, and the report would pool the two as seeds); returns
    (arguments, one note per sweep that had repeats). Arguments that do not parse are left to Hydra."""
    parser, result, notes = OverridesParser.create(), [], []
    for arg in args:
        try:
            [override] = parser.parse_overrides([arg]) if "=" in arg and not arg.startswith("-") else [None]
        except Exception:  # Hydra reports it, in its own words
            override = None
        if override is None or not (override.is_sweep_override() and override.is_discrete_sweep()):
            result.append(arg)
            continue
        values = list(override.sweep_string_iterator())
        unique = list(dict.fromkeys(values))
        if len(unique) == len(values):
            result.append(arg)
            continue
        repeated = sorted({v for v in values if values.count(v) > 1}, key=values.index)
        result.append(f"{arg.split('=', 1)[0]}={','.join(unique)}")
        notes.append(f"{arg}: {', '.join(repeated)} given more than once; each job runs once")
    return result, notes


def job_overrides(sweeper_params: Mapping[str, Any] | None, task_overrides: Sequence[str]) -> list[list[str]]:
    """Every job's override list: the product of the axes, first axis slowest."""
    axes = sweep_axes(sweeper_params, task_overrides)
    return [list(job) for job in itertools.product(*axes.values())]


def is_grid_sweeper(sweeper_config: Mapping[str, Any]) -> bool:
    """True when the sweeper runs exactly the grid's jobs (Hydra's basic sweeper, or ours, early stopping
    or not: every job still runs, if only to its first rung)."""
    return set(sweeper_config) <= GRID_SWEEPER_KEYS


def app_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides that compose the app's config (not Hydra's own settings)."""
    return [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]


def worker_count(_root_: DictConfig) -> int:
    """``hydra.launcher.n_jobs`` of the parallel launcher: min(usable cores, the grid's jobs)."""
    hydra = _root_.hydra
    cores = usable_cores()
    if not is_grid_sweeper(hydra.sweeper):
        return cores
    return max(1, min(cores, len(job_overrides(hydra.sweeper.get("params"), hydra.overrides.task))))


# Resolve it only in the launching process: a job's own overrides hold single values (a grid of one).
# Registered when this module is imported: the entry point and the sweep callback import it.
# The sweep callback records the launcher's value on the parent run, where jobs read it.
OmegaConf.register_new_resolver("fnn_sweep_workers", worker_count, replace=True)
