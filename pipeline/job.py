"""One job: validate the config, load data, train, and record it all in one MLflow run."""

import logging
import math
import os
import sys
import time

import mlflow
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from pipeline import artifacts, tracking
from pipeline.build import build_network, build_optimizer
from pipeline.config import ConfigError, project_home, validate
from pipeline.data import load_dataset
from pipeline.termination import termination

log = logging.getLogger("pipeline")
ENV_N_JOBS = "FNN_SWEEP_N_JOBS"

# Jobs of one sweep run in one process with Hydra's basic launcher: load each dataset once.
_datasets = {}


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


def dataset_for(dataset_cfg, train_cfg):
    key = (repr(dataset_cfg), train_cfg.val_fraction, train_cfg.seed)
    if key not in _datasets:
        _datasets.clear()  # keep one dataset in memory at a time
        _datasets[key] = load_dataset(vars(dataset_cfg), train_cfg.val_fraction, train_cfg.seed)
    return _datasets[key]


def run_name(settings):
    depth = f"x{settings.model.hidden_layers}" if settings.model.hidden_layers > 1 else ""
    return f"{settings.model.activation}-{settings.model.hidden_neurons}{depth}"


def _job_label(name):
    """'[3/12 relu-128]' inside a sweep, '[relu-128]' for a single run."""
    total = os.environ.get(ENV_N_JOBS)
    if total and HydraConfig.initialized() and HydraConfig.get().job.get("num") is not None:
        return f"[{HydraConfig.get().job.num + 1}/{total} {name}]"
    return f"[{name}]"


def run(cfg):
    """Hydra task: train one model; returns the final validation accuracy (NaN if the job failed).

    For regression it returns the final validation MSE. An invalid config is
    one line on stderr and exit status 2, before any run is created.
    """
    try:
        settings = validate(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    termination.install()
    termination.check()  # a signal during the previous job of a sweep ends the sweep here
    experiment_id = os.environ.get(tracking.ENV_EXPERIMENT)
    if experiment_id is None:  # a single run: no sweep callback prepared the store
        experiment_id = tracking.prepare_store(settings.mlflow)
    mlflow.set_tracking_uri(tracking.absolute_tracking_uri(settings.mlflow.tracking_uri))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    label = _job_label(run_name(settings))
    try:
        with tracking.job_run(experiment_id, run_name(settings), resolved) as active:
            try:
                result = _train_and_log(settings, resolved, label)
            except Exception as exc:
                tracking.log_failure(f"{type(exc).__name__}: {exc}")
                raise
    except Exception as exc:
        log.error(f"{label} FAILED: {exc}")
        return math.nan
    if not os.environ.get(tracking.ENV_PARENT_RUN):
        log.info(f"run {active.info.run_id} in {tracking.absolute_tracking_uri(settings.mlflow.tracking_uri)}; "
                 f"browse: {tracking.ui_command(settings.mlflow.tracking_uri)}")
    return result


def _train_and_log(settings, resolved, label):
    tags = tracking.environment_tags(project_home())
    if HydraConfig.initialized():
        tags.update({f"choice.{k}": str(v) for k, v in HydraConfig.get().runtime.choices.items()
                     if not k.startswith("hydra")})
    mlflow.set_tags(tags)
    artifacts.log_config(resolved)

    with termination.interruptible():  # no database writes while loading
        data = dataset_for(settings.dataset, settings.train)
    mlflow.set_tags({"dataset": data.name, "dataset_hash": data.content_hash(), "dataset_source": data.source})
    net = build_network(settings.model, settings.train, data)
    optimizer = build_optimizer(settings.optimizer)
    validation = (data.X_val, data.y_val) if len(data.X_val) else None
    epochs = settings.train.epochs
    callback_seconds = 0.0

    def on_epoch_end(epoch, logs):
        nonlocal callback_seconds
        start = time.perf_counter()
        with termination.shielded():  # a signal waits for the write, then ends training
            tracking.log_epoch(epoch, logs)
            log.log(logging.DEBUG if settings.quiet else logging.INFO, _status_line(label, epoch, epochs, logs))
            callback_seconds += time.perf_counter() - start

    start = time.perf_counter()
    with termination.interruptible():
        history = net.fit(data.X_train, data.y_train, epochs=epochs, batch_size=settings.train.batch_size,
                          optimizer=optimizer, validation_data=validation, callbacks=[on_epoch_end],
                          patience=settings.train.early_stopping_patience)
    training_time = time.perf_counter() - start - callback_seconds
    if history.diverged:
        raise TrainingDiverged(history.stop_reason)

    test = net.evaluate(data.X_test, data.y_test)
    final = {"training_time_s": training_time, "epochs_run": history.epochs,
             **{f"test_{k}": v for k, v in test.items()}}
    mlflow.log_metrics(final)
    if history.stop_reason:
        mlflow.set_tag("stop_reason", history.stop_reason)
    artifacts.log_loss_curve(history, label.strip("[]"))
    if data.task == "multiclass":
        artifacts.log_confusion_matrix(data.y_test, net.predict(data.X_test), data.n_classes)
    if settings.mlflow.log_model:
        artifacts.log_pyfunc_model(net, data.X_test[:2])

    if data.task == "multiclass":
        log.info(f"{label} test accuracy {test['accuracy']:.2%}, training {training_time:.1f} s")
        return history["val_accuracy"][-1] if validation else test["accuracy"]
    log.info(f"{label} test mse {test['mse']:.4f}, training {training_time:.1f} s")
    return history["val_mse"][-1] if validation else test["mse"]


def _status_line(label, epoch, epochs, logs):
    parts = [f"{label} epoch {epoch + 1}/{epochs}", f"loss {logs['loss']:.4f}"]
    for key, name in (("accuracy", "acc"), ("val_accuracy", "val_acc")):
        if key in logs:
            parts.append(f"{name} {logs[key]:.2%}")
    if "val_mse" in logs:
        parts.append(f"val_mse {logs['val_mse']:.4f}")
    parts.append(f"{logs['epoch_time_s']:.2f}s")
    return "  ".join(parts)
