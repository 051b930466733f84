"""A sweep's jobs as the grid sweeper expands them, with Hydra's public override parser.

The grid is ``hydra.sweeper.params`` (conf/config.yaml) extended by the
command line; a command-line override of the same key replaces that axis.
"""

import itertools

from hydra.core.override_parser.overrides_parser import OverridesParser

# The grid sweeper's own settings; a sweeper with any other (n_trials, sampler, ...) decides its jobs as it goes.
GRID_SWEEPER_KEYS = {"_target_", "params", "max_batch_size"}


def sweep_axes(sweeper_params, task_overrides):
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


def job_overrides(sweeper_params, task_overrides):
    """Every job's override list: the product of the axes, first axis slowest."""
    axes = sweep_axes(sweeper_params, task_overrides)
    return [list(job) for job in itertools.product(*axes.values())]


def is_grid_sweeper(sweeper_config):
    """True when the sweeper runs exactly the grid (Hydra's basic sweeper has only these keys)."""
    return set(sweeper_config) <= GRID_SWEEPER_KEYS


def app_overrides(overrides):
    """The overrides that compose the app's config (not Hydra's own settings)."""
    return [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
