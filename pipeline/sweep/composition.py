"""Composing many jobs' configs: jobs that differ only in values share one composition.

Hydra composes every job from scratch: its defaults tree, a dozen YAML files, their merges and the
``hydra`` node, 50 ms a job here and a quarter of a worker's time in a study of small models
(py-spy, 96 jobs). Most jobs of a sweep differ from the last one only in values of keys the config
already has (``model.activation=tanh``, ``optimizer.lr=0.1``). Those take one composition of the rest
of their overrides (their *structure*: config groups, ``+``/``~`` edits, Hydra's own settings), copied,
with the values set as Hydra sets them (``OmegaConf.update(..., merge=True)``, after the defaults).
Anything else (a new or unknown key, a bad value, a value of a key that an order-sensitive edit also
touches) is composed by Hydra itself, so its results and its errors are Hydra's.

Two users: the sweep's pre-flight (``compose_app``, the app's config only) and every job of a sweep,
through ``ReusedComposition``, a ``ConfigLoader`` the sweepers hand their launcher in place of Hydra's
(the whole config, ``hydra`` node included, as ``load_sweep_config`` returns it).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.types import HydraContext, RunMode
from omegaconf import Container, DictConfig, OmegaConf, open_dict

if TYPE_CHECKING:
    from hydra.core.config_search_path import ConfigSearchPath
    from hydra.plugins.config_source import ConfigSource

_MISSING = object()


def parse(lines: Iterable[str]) -> list[Override]:
    """Hydra's parse of each override line (its errors too), each distinct line parsed once per process:
    a grid's thousand jobs share a few dozen lines, and Hydra's parser takes about 0.2 ms a line."""
    return [_parsed(str(line)) for line in lines]


@functools.lru_cache(maxsize=4096)
def _parsed(line: str) -> Override:
    [override] = OverridesParser.create().parse_overrides([line])
    return override


def split(parsed: Sequence[Override]) -> tuple[list[Override], list[Override]]:
    """(structure, values): ``values`` are the plain changes of dotted app keys (``model.activation=relu``),
    which never change the defaults tree; ``structure`` is every other override, in order."""
    values = [
        o
        for o in parsed
        if o.type == OverrideType.CHANGE
        and o.package is None
        and "." in o.key_or_group
        and "/" not in o.key_or_group
        and not o.is_sweep_override()
        and not o.is_hydra_override()
    ]
    return [o for o in parsed if o not in values], values


def with_values(
    base: DictConfig, values: Sequence[Override], structure: Sequence[Override], groups: Container | dict
) -> DictConfig:
    """A copy of ``base`` (composed from ``structure``) with ``values`` set as Hydra sets them;
    ``groups``: its config groups' choices (``hydra.runtime.choices``), whose overrides select a
    config and so never race a value.

    Raises
    ------
    KeyError
        A value Hydra must compose itself: its key is new, a config node, or also edited by a
        structure override whose order against it matters (``++train.epochs=3 train.epochs=2``).
    """
    edits = [s.key_or_group for s in structure if not s.is_hydra_override() and s.key_or_group not in groups]
    config = base.copy()
    for override in values:
        key = override.key_or_group
        if any(key == e or key.startswith(e + ".") or e.startswith(key + ".") for e in edits):
            raise KeyError(key)
        node = OmegaConf.select(config, key, default=_MISSING, throw_on_resolution_failure=False)
        if node is _MISSING or isinstance(node, Container):
            raise KeyError(key)
        OmegaConf.update(config, key, override.value(), merge=True)
    return config


def compose_app(config_name: str, jobs: Iterable[Sequence[str]]) -> Iterator[DictConfig]:
    """Each job's composed app config, as ``hydra.compose(config_name, overrides=job)`` returns it."""
    from hydra import compose

    bases: dict[tuple[str, ...], tuple[DictConfig, Any]] = {}
    for job in jobs:
        structure, values = split(parse(job))
        lines = tuple(str(o.input_line) for o in structure)
        if lines not in bases:
            base = compose(config_name, overrides=list(lines), return_hydra_config=True)
            groups = OmegaConf.to_container(base.hydra.runtime.choices)
            with open_dict(base):
                del base["hydra"]  # as compose() without return_hydra_config leaves it
            bases[lines] = base, groups
        try:
            config = with_values(bases[lines][0], values, structure, bases[lines][1])
        except Exception:
            config = compose(config_name, overrides=list(job))
        yield config


# This process's compositions, by (the sweep's token, config name, structure): a worker keeps the
# few its jobs share; the token keeps two sweeps run by one process apart.
_bases: OrderedDict[tuple, DictConfig] = OrderedDict()
_MAX_BASES = 32


class ReusedComposition(ConfigLoader):
    """Hydra's config loader, whose ``load_sweep_config`` composes a job from the last composition of
    the same structure when its other overrides are values (see the module's docstring).

    Launchers call ``hydra_context.config_loader.load_sweep_config`` in each job's process (joblib,
    submitit, Ray) or in the launching one (basic); this loader travels there with the context.
    """

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self.token = uuid.uuid4().hex

    @classmethod
    def context(cls, hydra_context: HydraContext) -> HydraContext:
        """``hydra_context`` with its config loader wrapped (once)."""
        loader = hydra_context.config_loader
        if isinstance(loader, cls):
            return hydra_context
        return HydraContext(config_loader=cls(loader), callbacks=hydra_context.callbacks)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        overrides = [*master_config.hydra.overrides.hydra, *sweep_overrides]
        parsed = parse(overrides)
        structure, values = split(parsed)
        config_name = master_config.hydra.job.config_name
        if not values:
            return self.loader.load_sweep_config(master_config, sweep_overrides)
        key = (self.token, config_name, tuple(str(o.input_line) for o in structure))
        base = _bases.get(key)
        if base is None:
            base = self.loader.load_configuration(config_name, list(key[2]), RunMode.RUN)
            _bases[key] = base
            while len(_bases) > _MAX_BASES:  # the least recently used goes
                _bases.popitem(last=False)
        _bases.move_to_end(key)
        try:
            config = with_values(base, values, structure, base.hydra.runtime.choices)
        except Exception:
            return self.loader.load_sweep_config(master_config, sweep_overrides)
        app = [o for o in parsed if not o.is_hydra_override()]
        naming = config.hydra.job.config.override_dirname
        config.hydra.overrides.task = [str(o.input_line) for o in app]
        config.hydra.job.override_dirname = overrides_dirname(app, naming.exclude_keys, naming.item_sep, naming.kv_sep)
        OmegaConf.copy_cache(from_config=master_config, to_config=config)  # as Hydra's does: same ${now:}
        return config

    # The rest is Hydra's.
    def load_configuration(
        self,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        return self.loader.load_configuration(config_name, overrides, run_mode, from_shell, validate_sweep_overrides)

    def get_search_path(self) -> ConfigSearchPath:
        return self.loader.get_search_path()

    def get_sources(self) -> list[ConfigSource]:
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> list[str]:
        return self.loader.list_groups(parent_name)

    def get_group_options(
        self,
        group_name: str,
        results_filter: ObjectType | None = ObjectType.CONFIG,
        config_name: str | None = None,
        overrides: list[str] | None = None,
    ) -> list[str]:
        return self.loader.get_group_options(group_name, results_filter, config_name, overrides)

    def compute_defaults_list(self, config_name: str | None, overrides: list[str], run_mode: RunMode) -> Any:
        return self.loader.compute_defaults_list(config_name, overrides, run_mode)


def overrides_dirname(overrides: Sequence[Override], exclude_keys: Sequence[str], item_sep: str, kv_sep: str) -> str:
    """``hydra.job.override_dirname`` as Hydra writes it: the app overrides not excluded, sorted, joined."""
    lines = sorted(str(o.input_line) for o in overrides if o.key_or_group not in exclude_keys)
    return re.sub("=", kv_sep, item_sep.join(lines))
