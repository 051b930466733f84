"""One job: validate the config, load data, train, and record it all in one MLflow run.

A job needs only its composed config and the tracking store: inside a sweep
it finds the sweep's parent run by the sweep directory Hydra gave every job
(``hydra.sweep.dir``), so it runs the same in the launching process, a
reused worker process or on another machine.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from pipeline import failure, machine, parallel, resume
from pipeline.build import build_network, build_optimizer
from pipeline.config import ConfigError, validate
from pipeline.data import load_dataset
from pipeline.termination import termination
from pipeline.tracking import artifacts, layout, runs, store
from pipeline.tracking.model import log_pyfunc_model

log = logging.getLogger("pipeline")

# Jobs run one after another in one process (basic launcher, reused workers): keep the last dataset.
_datasets: dict = {}


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class JobContext:
    """What Hydra says about the running job; all defaults outside Hydra (a plain function call)."""

    sweep_dir: str | None = None  # None: a single run
    number: int | None = None  # 0-based index in the sweep
    log_file: Path | None = None
    choices: dict = field(default_factory=dict)

    @property
    def in_sweep(self):
        return self.sweep_dir is not None

    @property
    def summary_log(self):
        """Where the job's one-line outcome goes: the console for a single run; in a sweep the job's
        log file only, since the launching process prints each job's line (``pipeline.progress``)."""
        return failure.job_file_log if self.in_sweep else log

    @classmethod
    def current(cls):
        if not HydraConfig.initialized():
            return cls()
        hydra_cfg = HydraConfig.get()
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        return cls(
            sweep_dir=str(hydra_cfg.sweep.dir) if multirun else None,
            number=hydra_cfg.job.get("num") if multirun else None,
            log_file=Path(hydra_cfg.runtime.output_dir) / f"{hydra_cfg.job.name}.log",
            choices={k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")},
        )


def dataset_key(settings):
    """What a job's data depends on: the dataset config (test_fraction included), val_fraction, seed."""
    return repr(settings.dataset), settings.train.val_fraction, settings.train.seed


def dataset_for(settings):
    """The dataset a job's settings name, split; checks that a batch fits in its training set."""
    key = dataset_key(settings)
    if key not in _datasets:
        _datasets.clear()  # keep one dataset in memory at a time
        _datasets[key] = load_dataset(vars(settings.dataset), settings.train.val_fraction, settings.train.seed)
    check_fits(settings, _datasets[key])
    return _datasets[key]


def check_fits(settings, data):
    """The rules between a job's settings and its data: a mini-batch holds at most every training
    sample (after the validation split), and the network trains in this machine's memory."""
    train_cfg = settings.train
    if train_cfg.batch_size > len(data.X_train):
        raise ConfigError(
            f"train.batch_size={train_cfg.batch_size} is not valid: {data.name} has "
            f"{len(data.X_train)} training samples after the validation split; "
            f"choose at most {len(data.X_train)}{_preset_hint(data.name, ' (or ', ')')}"
        )
    need, have = training_bytes(settings, data), machine.memory_bytes()
    if have and need > have:
        model = settings.model
        raise ConfigError(
            f"model.hidden_neurons={model.hidden_neurons} (x{model.hidden_layers} layers) is not valid "
            f"on {data.name}: training needs about {_gib(need)} GiB, this machine has "
            f"{_gib(have)} GiB; choose a smaller width"
        )


def _gib(size):
    """Bytes as GiB for a message: '22,400', or '5.6e+24' past a million."""
    gib = size / 2**30
    return f"{gib:,.0f}" if gib < 1e6 else f"{gib:.1e}"


def training_bytes(settings, data):
    """About how much memory training needs: weights, gradients and optimizer state per parameter
    (Adam keeps two moments), plus one batch's activations and the test set's forward pass."""
    width, depth = settings.model.hidden_neurons, settings.model.hidden_layers
    params = (data.n_features + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * data.n_outputs
    copies = 2 + (2 if settings.optimizer.name == "adam" else 1)
    rows = settings.train.batch_size + max(len(data.X_test), len(data.X_val))
    return (params * copies + 3 * rows * width * depth) * np.dtype(settings.train.dtype).itemsize


def run_name(model_cfg):
    """e.g. "relu-128", "tanh-64x2" for two hidden layers."""
    depth = f"x{model_cfg.hidden_layers}" if model_cfg.hidden_layers > 1 else ""
    return f"{model_cfg.activation}-{model_cfg.hidden_neurons}{depth}"


def run(cfg):
    """Hydra task: train one model; returns the final validation accuracy (NaN if the job failed).

    For regression it returns the final validation MSE. A job whose identical
    config already FINISHED in the experiment is skipped (``sweep.rerun=true``
    trains it again). Bad input in a single run stops it before any run
    exists; in a sweep it is the job's failure.
    """
    job = JobContext.current()
    termination.install()
    termination.check()  # a signal during the previous job of a sweep ends the sweep here
    return _sweep_job(cfg, job) if job.in_sweep else _single_run(cfg, job)


@dataclass
class Prepared:
    """A job ready to run: its checked settings and data, where it is recorded, and its identity."""

    settings: object
    data: object
    tracking: object  # tracking.store.Store
    experiment_id: str
    sweep: object  # runs.Sweep, or None outside a sweep (or when the sweep's parent was not found)
    name: str
    label: str
    resolved: dict  # the config, resolved: the run's params and config.yaml
    identity: str  # resume's config hash
    phases: dict = field(default_factory=dict)  # seconds outside training, by phase


def _single_run(cfg, job):
    """``python -m pipeline``: bad input of any kind is one line and exit 2, before any run exists."""
    try:
        settings = validate(cfg)
        store.probe(cfg.mlflow.tracking_uri)
        experiment_id = store.existing_experiment(cfg.mlflow)  # None: a store to be made below
        tracking = store.open_store(cfg.mlflow.tracking_uri)
        name, resolved, identity = _identity(cfg)
        label = _label(name, job, None)
        if experiment_id is not None and not cfg.sweep.rerun:
            previous = runs.finished_run(tracking, experiment_id, identity)
            if previous is not None:
                return _reuse(previous, tracking, experiment_id, None, name, identity, label, job)
        phases = {}
        data = _load(settings, phases)
        experiment_id = experiment_id or store.prepare_experiment(cfg.mlflow)
    except failure.InputError as exc:
        failure.abort(exc)
    prepared = Prepared(settings, data, tracking, experiment_id, None, name, label, resolved, identity, phases)
    closing_line = None

    def say_if_stopped(active):  # a signal ends the run KILLED (job_run); the entry point says so
        nonlocal closing_line
        failure.close_on_exit(closing_line := _stopped_line(label, active.info.run_id))

    try:
        active, result = _run_tracked(prepared, job, on_open=say_if_stopped)
    except Exception as exc:
        log.error(f"{label} FAILED: {failure.one_line(exc)}")
        failure.closed(closing_line)  # said above
        failure.abort(failure.JobsFailed(1, 1))
    failure.closed(closing_line)
    log.info(
        f"run {active.info.run_id} in {store.shown(cfg.mlflow.tracking_uri)}; "
        f"see it: {store.ui_command(cfg.mlflow.tracking_uri)}, then open "
        f"{store.runs_page(cfg.mlflow.tracking_uri, active.info.experiment_id, active.info.run_id)}"
    )
    return result


def _sweep_job(cfg, job):
    """A job of a sweep, in whatever process runs it: bad input the sweep's pre-flight could not see
    (a sampling sweeper, another machine) is recorded as this job's FAILED run, and the sweep goes on."""
    bad_input, settings, data, phases = None, None, None, {}
    try:
        settings = validate(cfg)
    except failure.InputError as exc:
        bad_input = exc
    try:
        tracking, experiment_id, sweep = _experiment_and_sweep(cfg, job)
    except store.StoreError as exc:
        log.error(f"[{run_name(cfg.model)}] FAILED: {exc}")  # no store to record it in
        return math.nan
    name, resolved, identity = _identity(cfg)
    label = _label(name, job, sweep)
    if bad_input is None and not cfg.sweep.rerun:
        previous = runs.finished_run(tracking, experiment_id, identity)
        if previous is not None:
            return _reuse(previous, tracking, experiment_id, sweep, name, identity, label, job)
    if bad_input is None:
        try:
            data = _load(settings, phases)
        except failure.InputError as exc:
            bad_input = exc
    prepared = Prepared(settings, data, tracking, experiment_id, sweep, name, label, resolved, identity, phases)
    try:
        _, result = _run_tracked(prepared, job, bad_input=bad_input)
    except Exception as exc:
        job.summary_log.error(f"{label} FAILED: {failure.one_line(exc)}")
        return math.nan
    return result


def _identity(cfg):
    """The job's run name, resolved config and config hash (what resume matches on)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return run_name(cfg.model), resolved, resume.config_hash(resolved)


def _load(settings, phases):
    """The job's data (``dataset_for``), timed into ``phases``."""
    start = time.perf_counter()
    with termination.interruptible():  # no database writes while loading
        data = dataset_for(settings)
    phases["data"] = time.perf_counter() - start
    return data


def _run_tracked(prepared, job, bad_input=None, on_open=None):
    """The step both paths share: open the job's MLflow run and train in it; returns (run, result).

    A failure (``bad_input``, an exception, divergence) is recorded in the run, its reason as a tag
    and its traceback in ``job.log``, and raised again: the run ends FAILED.
    """
    sweep = prepared.sweep
    threads = parallel.blas_threads(prepared.resolved["compute"]["blas_threads"], sweep.jobs_at_once if sweep else 1)
    prepared.resolved["compute"]["blas_threads"] = threads  # the number used, logged as a param
    with runs.job_run(
        prepared.tracking,
        prepared.experiment_id,
        prepared.name,
        prepared.resolved,
        prepared.identity,
        sweep,
        job.choices,
    ) as active:
        if on_open is not None:
            on_open(active)
        try:
            if bad_input is not None:
                raise bad_input
            with parallel.limited_blas(threads):
                return active, _train_and_log(prepared, job)
        except Exception as exc:
            runs.log_failure(failure.one_line(exc))
            artifacts.log_job_log(job.log_file, failure.log_traceback(exc))
            raise


def _stopped_line(label, run_id):
    """A single run's closing line when the command ends before the run does (a signal)."""

    def closer(reason, status):
        log.info(f"{label} run {run_id} ended {status}: {reason}; the same command trains it again")

    return closer


def _experiment_and_sweep(cfg, job):
    """A sweep job's store (``tracking.store.Store``), experiment and sweep (None when the parent run is not
    found: the run is not nested)."""
    tracking = store.open_store(cfg.mlflow.tracking_uri)
    experiment_id = store.find_experiment(cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name)
    sweep = runs.find_sweep(tracking, experiment_id, job.sweep_dir) if experiment_id else None
    if sweep is None:
        log.warning(f"no running sweep for {job.sweep_dir} in {cfg.mlflow.tracking_uri}: this job's run is not nested")
        experiment_id = experiment_id or store.prepare_experiment(cfg.mlflow)
    return tracking, experiment_id, sweep


def _reuse(previous, tracking, experiment_id, sweep, name, identity, label, job):
    """Skip a job whose identical config FINISHED in ``previous`` (run id, metrics); returns its result."""
    run_id, metrics = previous
    if sweep is not None:
        runs.record_reuse(tracking, experiment_id, sweep, name, identity, run_id)
    job.summary_log.info(f"{label} skipped: finished in run {run_id}")
    for key in ("val_accuracy", "val_mse"):
        if layout.EPOCH_METRICS[key] in metrics:
            return metrics[layout.EPOCH_METRICS[key]]
    return metrics.get(layout.TEST_ACCURACY, metrics.get(layout.TEST_MSE, math.nan))


def _label(name, job, sweep):
    """'[3/12 relu-128]' inside a sweep of known size, '[relu-128]' otherwise."""
    if job.number is not None and sweep is not None and sweep.planned_jobs:
        return f"[{job.number + 1}/{sweep.planned_jobs} {name}]"
    return f"[{name}]"


def _train_and_log(prepared, job):
    settings, data, label, phases = prepared.settings, prepared.data, prepared.label, prepared.phases
    artifacts.log_config(prepared.resolved)
    runs.log_dataset(prepared.tracking, data)
    net = build_network(settings.model, settings.train, data)
    optimizer = build_optimizer(settings.optimizer)
    validation = (data.X_val, data.y_val) if len(data.X_val) else None
    epochs = settings.train.epochs
    callback_seconds = 0.0
    show_epochs = settings.verbose if job.in_sweep else not settings.quiet
    epoch_level = logging.INFO if show_epochs else logging.DEBUG
    summary = job.summary_log

    def on_epoch_end(epoch, logs):
        nonlocal callback_seconds
        start = time.perf_counter()
        with termination.shielded():  # a signal waits for the write, then ends training
            runs.log_epoch(epoch, logs)
            log.log(epoch_level, _status_line(label, epoch, epochs, logs))
            callback_seconds += time.perf_counter() - start

    start = time.perf_counter()
    with termination.interruptible():
        history = net.fit(
            data.X_train,
            data.y_train,
            epochs=epochs,
            batch_size=settings.train.batch_size,
            optimizer=optimizer,
            validation_data=validation,
            callbacks=[on_epoch_end],
            patience=settings.train.early_stopping_patience,
        )
    training_time = time.perf_counter() - start - callback_seconds
    if history.diverged:
        raise TrainingDiverged(_divergence_hint(history.stop_reason, settings, job))

    test = net.evaluate(data.X_test, data.y_test)
    runs.log_results(training_time, history.epochs, test, history.stop_reason)
    start = time.perf_counter()
    artifacts.log_loss_curve(history, label.strip("[]"))
    if data.task == "multiclass":
        artifacts.log_confusion_matrix(data.y_test, net.predict(data.X_test), data.n_classes)
    phases["artifacts"] = time.perf_counter() - start
    if settings.mlflow.log_model:
        start = time.perf_counter()
        log_pyfunc_model(net, data.X_test[:2])
        phases["model"] = time.perf_counter() - start
    runs.log_phases(phases)

    if data.task == "multiclass":
        summary.info(f"{label} test accuracy {test['accuracy']:.2%}, training {training_time:.1f} s")
        return history["val_accuracy"][-1] if validation else test["accuracy"]
    summary.info(f"{label} test mse {test['mse']:.4f}, training {training_time:.1f} s")
    return history["val_mse"][-1] if validation else test["mse"]


def _divergence_hint(reason, settings, job):
    """The stop reason and what to try: a smaller lr, or the dataset's tuned preset when it has one."""
    preset = (
        ""
        if job.choices.get("experiment") == settings.dataset.name
        else _preset_hint(settings.dataset.name, ", or ", "")
    )
    return f"{reason}; try a smaller optimizer.lr (it was {settings.optimizer.lr:g}){preset}"


def _preset_hint(dataset, before, after):
    """'<before>the dataset's tuned settings: +experiment=NAME<after>' when conf/experiment has one, else ''."""
    if not (resources.files("pipeline.conf") / "experiment" / f"{dataset}.yaml").is_file():
        return ""
    return f"{before}the dataset's tuned settings: +experiment={dataset}{after}"


def _status_line(label, epoch, epochs, logs):
    parts = [f"{label} epoch {epoch + 1}/{epochs}", f"loss {logs['loss']:.4f}"]
    for key, name in (("accuracy", "acc"), ("val_accuracy", "val_acc")):
        if key in logs:
            parts.append(f"{name} {logs[key]:.2%}")
    if "val_mse" in logs:
        parts.append(f"val_mse {logs['val_mse']:.4f}")
    parts.append(f"{logs['epoch_time_s']:.2f}s")
    return "  ".join(parts)
