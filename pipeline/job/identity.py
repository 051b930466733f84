"""A job's identity: its run name, its label in the console, and the config hash resume matches on.

Resume: a job whose identical configuration already FINISHED in the experiment is not trained again.

A job's identity is a hash of its resolved configuration without the keys
that cannot change its result (``config.result_neutral``: where runs are
stored, what is printed, how it is run). ``sweep.rerun=true`` trains anyway.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, cast

from omegaconf import OmegaConf

from pipeline.config import result_neutral
from pipeline.tracking import layout

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from pipeline.job.context import JobContext
    from pipeline.tracking.runs import Sweep


def config_hash(resolved_config: dict) -> str:
    """16 hex digits of SHA-256 over the result-relevant config values, order-independent."""
    params = {
        key: value
        for key, value in layout.job_params(resolved_config).items()
        if key not in layout.PARAM_ALIASES and not result_neutral(key)
    }
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_name(model_cfg: Any) -> str:
    """e.g. "relu-128", "tanh-64x2" for two hidden layers."""
    depth = f"x{model_cfg.hidden_layers}" if model_cfg.hidden_layers > 1 else ""
    return f"{model_cfg.activation}-{model_cfg.hidden_neurons}{depth}"


def identify(cfg: DictConfig) -> tuple[str, dict, str]:
    """The job's run name, resolved config and config hash (what resume matches on)."""
    resolved = cast(dict, OmegaConf.to_container(cfg, resolve=True))  # a config's root is a mapping
    return run_name(cfg.model), resolved, config_hash(resolved)


def label_for(name: str, job: JobContext, sweep: Sweep | None) -> str:
    """'[3/12 relu-128]' inside a sweep of known size, '[relu-128]' otherwise."""
    if job.number is not None and sweep is not None and sweep.planned_jobs:
        return f"[{job.number + 1}/{sweep.planned_jobs} {name}]"
    return f"[{name}]"
