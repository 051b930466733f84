"""`python -m pipeline.report [mlflow.tracking_uri=...] [mlflow.experiment_name=...]
[report.out_dir=...] [report.sweep_id=ID|all] [report.register_best=NAME]`: regenerate a report
from MLflow; with register_best, also register the selection's best model (by validation score)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import hydra

from pipeline.config import register_configs, validate
from pipeline.report import ReportError, register_best_model, write_report
from pipeline.report.publish import check_out_dir
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
        check_out_dir(settings.report.out_dir)  # before reading any run
        store.probe(settings.mlflow.tracking_uri)  # a server that does not answer: one line, within seconds
        experiment_id = store.existing_experiment(settings.mlflow)  # never creates a store or an experiment
        if experiment_id is None:
            raise ReportError(
                f"no experiment '{settings.mlflow.experiment_name}' in "
                f"{store.shown(settings.mlflow.tracking_uri)}; run `python -m pipeline -m` first"
            )
        tracking = store.open_store(settings.mlflow.tracking_uri)
        reaper.log_reaped(reaper.reap(tracking, experiment_id, settings.mlflow.stale_after_s))  # none RUNNING but live
        out = write_report(tracking, settings.mlflow.experiment_name, settings.report.sweep_id, settings.report.out_dir)
        log.info(f"Report written to {out} (index: {out / 'report.md'})")
        if settings.report.register_best:
            register_best_model(
                tracking,
                settings.mlflow.experiment_name,
                settings.report.sweep_id,
                settings.report.register_best,
            )
    except failure.InputError as exc:  # ConfigError, ReportError, StoreError
        failure.abort(exc)


if __name__ == "__main__":
    lifecycle.run(hydra_app)
