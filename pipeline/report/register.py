"""`report.register_best=NAME`: register the best model of the runs a report covers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.report.select import load_runs, select_jobs
from pipeline.tracking import model_registry, store

if TYPE_CHECKING:
    from pipeline.tracking.store import Store


def register_best_model(tracking: Store, experiment_name: str, sweep_id: str, name: str) -> Any:
    """Register the best model of the selected runs of ``tracking`` (a ``tracking.store.Store``; see
    ``select_jobs``) under ``name``; returns the version."""
    jobs, selection, _ = select_jobs(load_runs(tracking, experiment_name, sweep_id), sweep_id)
    experiment_id = store.find_experiment(tracking.uri, experiment_name)
    assert experiment_id is not None, "select_jobs found its runs"
    return model_registry.register_best(tracking, experiment_id, jobs, name, selection)
