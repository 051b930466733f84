"""`python -m pipeline.reap [mlflow.tracking_uri=...] [mlflow.experiment_name=...] [mlflow.stale_after_s=...]`:
end KILLED the runs left RUNNING by processes that are gone, and say which."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import hydra

from pipeline.config import register_configs, validate
from pipeline.report import ReportError
from pipeline.runtime import failure, lifecycle
from pipeline.tracking import reaper, store

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("pipeline")
register_configs()


@hydra.main(version_base="1.3", config_path="pkg://pipeline.conf", config_name="report")
def hydra_app(cfg: DictConfig) -> None:
    lifecycle.app_started()  # Hydra has set up the run: errors from here on are this command's
    try:
        settings = validate(cfg)
        store.probe(settings.mlflow.tracking_uri)  # a server that does not answer: one line, within seconds
        experiment_id = store.existing_experiment(settings.mlflow)  # never creates a store or an experiment
        if experiment_id is None:
            raise ReportError(
                f"no experiment '{settings.mlflow.experiment_name}' in {store.shown(settings.mlflow.tracking_uri)}"
            )
    except failure.InputError as exc:
        failure.abort(exc)
    reaped = reaper.reap(store.open_store(settings.mlflow.tracking_uri), experiment_id, settings.mlflow.stale_after_s)
    for name, run_id, reason in reaped:
        log.info(f"{name} ({run_id}): RUNNING -> KILLED, {reason}")
    log.info(
        f"{len(reaped)} run(s) reaped in experiment '{settings.mlflow.experiment_name}'"
        if reaped
        else "nothing to reap: every RUNNING run has a live process or a recent heartbeat"
    )


if __name__ == "__main__":
    lifecycle.run(hydra_app)
