"""`python -m pipeline.report [mlflow.tracking_uri=...] [mlflow.experiment_name=...]
[report.out_dir=...] [report.sweep_id=ID|all] [report.register_best=NAME]`: regenerate a report
from MLflow; with register_best, also register the selection's best model (by validation score)."""

import logging

import hydra

from pipeline import failure
from pipeline.config import register_configs
from pipeline.report import register_best_model, write_report
from pipeline.tracking import reaper, store

log = logging.getLogger("pipeline")
register_configs()


@hydra.main(version_base="1.3", config_path="pkg://pipeline.conf", config_name="report")
def hydra_app(cfg):
    experiment_id = store.existing_experiment(cfg.mlflow)
    if experiment_id is not None:  # runs of dead processes are not RUNNING in a report
        reaper.log_reaped(reaper.reap(experiment_id, cfg.mlflow.stale_after_s))
    try:
        out = write_report(cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name, cfg.report.sweep_id,
                           cfg.report.out_dir)
        log.info(f"Report written to {out} (index: {out / 'report.md'})")
        if cfg.report.register_best:
            register_best_model(cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name, cfg.report.sweep_id,
                                cfg.report.register_best)
    except failure.InputError as exc:  # ReportError too
        failure.abort(exc)


def main():
    failure.run_entry_point(hydra_app)


if __name__ == "__main__":
    main()
