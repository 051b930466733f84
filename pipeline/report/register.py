"""`report.register_best=NAME`: register the best model of the runs a report covers."""

from pipeline.report.select import load_runs, select_jobs
from pipeline.tracking import model_registry, store


def register_best_model(tracking, experiment_name, sweep_id, name):
    """Register the best model of the selected runs of ``tracking`` (a ``tracking.store.Store``; see
    ``select_jobs``) under ``name``; returns the version."""
    jobs, selection, _ = select_jobs(load_runs(tracking, experiment_name), sweep_id)
    experiment_id = store.find_experiment(tracking.uri, experiment_name)
    return model_registry.register_best(tracking, experiment_id, jobs, name, selection)
