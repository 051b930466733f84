"""Train a job's network in its open MLflow run and log what it learnt: epochs, results, figures, model."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from fnn_core.history import History
from pipeline.job.build import build_network, build_optimizer
from pipeline.job.inputs import preset_hint
from pipeline.job.pruning import TrialPruning
from pipeline.runtime.termination import termination
from pipeline.tracking import artifacts, layout, runs
from pipeline.tracking.model import log_pyfunc_model

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.job.context import JobContext
    from pipeline.job.task import Prepared

log = logging.getLogger("pipeline")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


def train_and_log(prepared: Prepared, job: JobContext) -> float:
    """Train (or continue a paused run's training) and log it; returns the final validation score
    (accuracy, or MSE for regression; the test score without a validation split).

    With ``sweep.pause_at`` below ``train.epochs`` (a rung of the grid's early stopping) it trains only
    that far, logs a checkpoint and the results so far, and ends the run paused."""
    settings, data, label, phases = prepared.settings, prepared.data, prepared.label, prepared.phases
    assert settings is not None and data is not None, "bad input never reaches training"
    start = time.perf_counter()
    if prepared.paused_run_id is None:
        artifacts.log_config(prepared.resolved)
        runs.log_dataset(prepared.tracking, data)
        net = build_network(settings.model, settings.train, data)
        optimizer = build_optimizer(settings.optimizer)
        past, time_before = None, 0.0
    else:  # logged when the run began
        checkpoint = artifacts.load_checkpoint(prepared.tracking, prepared.paused_run_id)
        net, optimizer, past, time_before = (
            checkpoint.network,
            checkpoint.optimizer,
            checkpoint.history,
            checkpoint.training_time,
        )
    phases["inputs"] = time.perf_counter() - start
    validation = (data.X_val, data.y_val) if len(data.X_val) else None
    epochs = settings.train.epochs
    stop_at = epochs if settings.sweep.pause_at is None else min(epochs, settings.sweep.pause_at)
    callback_seconds = 0.0
    show_epochs = settings.verbose if job.in_sweep else not settings.quiet
    epoch_level = logging.INFO if show_epochs else logging.DEBUG
    summary = job.summary_log
    pruning = TrialPruning.for_job(settings, job, data.task)

    def on_epoch_end(epoch, logs):
        nonlocal callback_seconds
        start = time.perf_counter()
        with termination.shielded():  # a signal waits for the writes, then ends training
            runs.log_epoch(epoch, logs)
            log.log(epoch_level, status_line(label, epoch, epochs, logs))
            stop = pruning is not None and pruning.should_stop(epoch, logs)
            callback_seconds += time.perf_counter() - start
        return stop

    start = time.perf_counter()
    with termination.interruptible():
        history = net.fit(
            data.X_train,
            data.y_train,
            epochs=stop_at,
            batch_size=settings.train.batch_size,
            optimizer=optimizer,
            validation_data=validation,
            callbacks=[on_epoch_end],
            patience=settings.train.early_stopping_patience,
            initial_epoch=past.epochs if past is not None else 0,
        )
    history = joined(past, history)
    training_time = time.perf_counter() - start - callback_seconds + time_before
    phases["epochs"] = callback_seconds  # each epoch's metrics written (the reaper's heartbeat) and its line
    if history.diverged:
        raise TrainingDiverged(divergence_hint(history.stop_reason, settings, job))
    if history.epochs < epochs and history.epochs == stop_at and history.stop_reason is None:
        return _pause(net, optimizer, history, training_time, prepared, summary)

    pruned_after = pruning.pruned_after if pruning is not None else None
    if pruned_after is not None:
        history.stop_reason = f"pruned by the {job.pruner} pruner after epoch {pruned_after}"
        runs.log_pruned(pruned_after)
    test, predicted = net.evaluate(data.X_test, data.y_test, return_predictions=True)
    start = time.perf_counter()
    figures = settings.mlflow.log_figures  # off by default: the UI plots the curves, the report the matrix
    if figures:
        artifacts.log_loss_curve(history, label.strip("[]"))
    if data.task == "multiclass" and data.n_classes:
        artifacts.log_confusion_matrix(data.y_test, predicted, data.n_classes, figure=figures)
    phases["artifacts"] = time.perf_counter() - start
    model_id = None
    if settings.mlflow.log_model:
        start = time.perf_counter()
        model_id = log_pyfunc_model(prepared.tracking, net, data.X_test[:2], layout.job_params(prepared.resolved))
        phases["model"] = time.perf_counter() - start
    runs.log_results(prepared.tracking, training_time, history.epochs, test, history.stop_reason, phases, model_id)
    if pruning is not None and pruned_after is not None:
        pruning.tell_pruned()

    if data.task == "multiclass":
        summary.info(f"{label} test accuracy {test['accuracy']:.2%}, training {training_time:.1f} s")
        return history["val_accuracy"][-1] if validation else test["accuracy"]
    summary.info(f"{label} test mse {test['mse']:.4f}, training {training_time:.1f} s")
    return history["val_mse"][-1] if validation else test["mse"]


def _pause(net, optimizer, history, training_time, prepared, summary):
    """End the run paused at a rung: its results so far, and the checkpoint to continue from."""
    data = prepared.data
    test = net.evaluate(data.X_test, data.y_test)
    runs.log_results(prepared.tracking, training_time, history.epochs, test, phases=prepared.phases)
    artifacts.log_checkpoint(artifacts.Checkpoint(net, optimizer, history, training_time))
    runs.pause()
    key = "mse" if data.task == "regression" else "accuracy"
    score = history[f"val_{key}"][-1] if f"val_{key}" in history else test[key]
    summary.info(f"{prepared.label} paused after epoch {history.epochs}: {key} {score:.4f}")
    return score


def joined(past: History | None, more: History) -> History:
    """A resumed fit's history: the epochs before it (``past``), then its own."""
    if past is None:
        return more
    whole = History(diverged=more.diverged, stop_reason=more.stop_reason, best_epoch=more.best_epoch)
    for key in past.metrics.keys() | more.metrics.keys():
        whole.metrics[key] = [*past.metrics.get(key, ()), *more.metrics.get(key, ())]
    return whole


def divergence_hint(reason: str | None, settings: Config, job: JobContext) -> str:
    """The stop reason and what to try: a smaller lr, or the dataset's tuned preset when it has one."""
    preset = (
        ""
        if job.choices.get("experiment") == settings.dataset.name
        else preset_hint(settings.dataset.name, ", or ", "")
    )
    return f"{reason}; try a smaller optimizer.lr (it was {settings.optimizer.lr:g}){preset}"


def status_line(label: str, epoch: int, epochs: int, logs: Mapping[str, float]) -> str:
    parts = [f"{label} epoch {epoch + 1}/{epochs}", f"loss {logs['loss']:.4f}"]
    for key, name in (("accuracy", "acc"), ("val_accuracy", "val_acc")):
        if key in logs:
            parts.append(f"{name} {logs[key]:.2%}")
    if "val_mse" in logs:
        parts.append(f"val_mse {logs['val_mse']:.4f}")
    parts.append(f"{logs['epoch_time_s']:.2f}s")
    return "  ".join(parts)
