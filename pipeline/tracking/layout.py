"""The MLflow run layout: every param, metric, tag and artifact name, and the typed reader.

A sweep is one parent run (role ``sweep``) tagged with the sweep's id and its
Hydra sweep directory, which Hydra resolves once and copies into every job's
config; a job finds its parent by that tag, so it needs nothing but its own
config and the store. A single run is a job run without a parent.

Nothing outside this module spells an MLflow key: writers use the names
below, readers use ``read_runs``, whose frame has plain column names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pipeline.tracking.store import Store

# ---- params: every config value under its dotted key, plus short aliases ----
PARAM_ALIASES = {  # alias -> dotted config key, for filtering in the UI (``params.lr < 0.1``)
    "activation": "model.activation",
    "hidden_neurons": "model.hidden_neurons",
    "hidden_layers": "model.hidden_layers",
    "lr": "optimizer.lr",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "seed": "train.seed",
    "dataset": "dataset.name",
}
ACTIVATION, HIDDEN_NEURONS, SEED, LR = "model.activation", "model.hidden_neurons", "train.seed", "optimizer.lr"

# ---- metrics ----
EPOCH_METRICS = {  # fnn_core history key -> metric name, one point per epoch (step = epoch from 0)
    "loss": "train_loss",
    "accuracy": "train_accuracy",
    "val_loss": "val_loss",
    "val_accuracy": "val_accuracy",
    "val_mse": "val_mse",
    "val_rmse": "val_rmse",
    "epoch_time_s": "epoch_time_s",
}
TRAINING_TIME = "training_time_s"  # seconds inside fit, logging excluded
EPOCHS_RUN = "epochs_run"
TEST_ACCURACY, TEST_MSE = "test_accuracy", "test_mse"
# What "best" is chosen on (best lr per cell, the model to register): the final validation score,
# never the test score. Keyed by Table 1's direction: accuracy ("max") or MSE ("min").
VALIDATION_METRIC = {"max": EPOCH_METRICS["val_accuracy"], "min": EPOCH_METRICS["val_mse"]}
SWEEP_PLANNED = "jobs_planned"  # parent run: jobs the sweeper will launch (a grid's size)
SWEEP_JOBS_AT_ONCE = "jobs_at_once"  # parent run: jobs the launcher runs at once on one machine
SWEEP_REPORT_TIME = "report_s"  # parent run: seconds to write the sweep's report
# Where a job's time goes besides training, in seconds (the sweep benchmark reads them).
# A job's seconds outside training, by phase (the scale benchmark's breakdown).
PHASE_METRICS = {
    "lookups": "time_lookups_s",  # the experiment, the sweep's parent run, a finished run with the same config
    "run": "time_run_s",  # the run created, with its params and tags
    "data": "time_data_s",  # the dataset loaded (cached in the process after its first job)
    "inputs": "time_inputs_s",  # config.yaml and the dataset input logged
    "epochs": "time_epoch_metrics_s",  # each epoch's metrics written, and its console line
    "artifacts": "time_artifacts_s",  # the confusion matrix (figures with mlflow.log_figures)
    "model": "time_model_s",  # the pyfunc model
}


def test_metric(name: str) -> str:
    """fnn_core's evaluate() key -> metric name: "accuracy" -> "test_accuracy"."""
    return f"test_{name}"


def status_count_metric(status: str) -> str:
    """Parent run: how many of its jobs ended with ``status`` ("FINISHED" -> "n_finished")."""
    return f"n_{status.lower()}"


# ---- tags ----
TAG_ROLE = "fnn_sweep.role"
ROLE_SWEEP, ROLE_JOB = "sweep", "job"
ROLE_REUSED = "reused"  # a sweep's marker for a job skipped because an identical one FINISHED before
TAG_CONFIG_HASH = "fnn_sweep.config_hash"  # the job's result-relevant config (resume matches on it)
TAG_REUSED_RUN = "fnn_sweep.reused_run"  # on a marker: the FINISHED run it stands for
TAG_SWEEP_ID = "sweep_id"
TAG_SWEEP_DIR = "fnn_sweep.sweep_dir"  # the sweep's identity, as every job's config has it
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"
TAG_NOTE = "mlflow.note.content"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TAG_FAILURE = "failure_reason"
TAG_STOP_REASON = "stop_reason"
# On a registered model version: which runs it was chosen among, and by which metric.
TAG_SELECTION, TAG_SELECTED_BY = "fnn_sweep.selection", "fnn_sweep.selected_by"
TAG_DATASET, TAG_DATASET_HASH, TAG_DATASET_SOURCE = "dataset", "dataset_hash", "dataset_source"
DATASET_CONTEXT = "training"  # the run's logged input: name, digest (= dataset_hash), source, split sizes
ENVIRONMENT_TAGS = ("hostname", "pid", "python", "numpy", "cpu", "cpu_count", "blas")  # runs.environment_tags' order
BLAS_THREADS = "compute.blas_threads"  # param: the BLAS threads a job used
TAG_STUDY, TAG_TRIAL = "fnn_sweep.study", "fnn_sweep.trial"  # a search trial's run: its Optuna study and number
TAG_PRUNED = "pruned"  # a pruned run (a search's trial, a grid cell's): the epochs it ran before it was stopped
# A run paused at a rung of a grid's early stopping ends SCHEDULED, with its checkpoint, until its
# cell's runs are compared: then it is continued (reopened) or pruned (FINISHED, ``pruned``).
PAUSED = "SCHEDULED"
CHOICE_TAG_PREFIX = "choice."  # Hydra's group choices: choice.optimizer = sgd

# ---- artifacts ----
ARTIFACT_CONFIG = "config.yaml"
ARTIFACT_LOSS_CURVE = "loss_curve.png"
ARTIFACT_CONFUSION_PNG, ARTIFACT_CONFUSION_CSV = "confusion_matrix.png", "confusion_matrix.csv"
ARTIFACT_MODEL = "model"
ARTIFACT_JOB_LOG = "job.log"  # a FAILED job's log, traceback included
ARTIFACT_CHECKPOINT = "checkpoint.pkl"  # a paused run's network, optimizer and history, to continue from

# ---- the typed reader ----
# Plain column names of ``read_runs`` frames: run info, then these tags. Params keep their
# dotted config keys (so "params are the columns with a dot"), metrics their names.
RUN_INFO = ("run_id", "experiment_id", "status", "start_time", "end_time")
TAG_COLUMNS = {
    "run_name": TAG_RUN_NAME,
    "parent_run_id": TAG_PARENT,
    "role": TAG_ROLE,
    "sweep_id": TAG_SWEEP_ID,
    "sweep_dir": TAG_SWEEP_DIR,
    "failure_reason": TAG_FAILURE,
    "stop_reason": TAG_STOP_REASON,
    "dataset_hash": TAG_DATASET_HASH,
    "git_commit": TAG_GIT_COMMIT,
    "config_hash": TAG_CONFIG_HASH,
    "reused_run": TAG_REUSED_RUN,
    "study": TAG_STUDY,
    "trial": TAG_TRIAL,
    "pruned": TAG_PRUNED,
    **{t: t for t in ENVIRONMENT_TAGS},
}


# A search trial's identity: tags of its run (``trial_tags``), not params, which would differ in every
# run; where its study is stored, and the epoch a grid's early stopping pauses a job at, are neither.
TRIAL_KEYS = {"sweep.study": TAG_STUDY, "sweep.trial": TAG_TRIAL, "sweep.study_storage": None, "sweep.pause_at": None}


def job_params(resolved_config: Mapping[str, Any]) -> dict[str, Any]:
    """Params of a job run from its resolved config (nested dicts): dotted keys plus aliases."""
    flat = {key: value for key, value in _flatten(resolved_config).items() if key not in TRIAL_KEYS}
    params = {**flat, **{alias: flat[key] for alias, key in PARAM_ALIASES.items() if key in flat}}
    return {key: "None" if value is None else value for key, value in params.items()}


def trial_tags(resolved_config: Mapping[str, Any]) -> dict[str, str]:
    """A search trial's run tags (study and trial number) from its resolved config; {} outside a search."""
    flat = _flatten(resolved_config)
    return {tag: str(flat[key]) for key, tag in TRIAL_KEYS.items() if tag and flat.get(key) is not None}


def _flatten(mapping, prefix=""):
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def tag_is(tag: str, value: str) -> str:
    """A ``search_runs`` filter clause: the run's ``tag`` equals ``value``."""
    return f"tags.`{tag}` = '{value}'"


def status_is(status: str) -> str:
    return f"attributes.status = '{status}'"


def run_id_in(run_ids: Iterable[str]) -> str:
    """A ``search_runs`` filter clause: the run is one of ``run_ids`` (at least one)."""
    return "attributes.run_id IN (" + ", ".join(f"'{run_id}'" for run_id in run_ids) + ")"


def run_id_not_in(run_ids: Iterable[str]) -> str:
    """A ``search_runs`` filter clause: the run is none of ``run_ids`` (at least one)."""
    return "attributes.run_id NOT IN (" + ", ".join(f"'{run_id}'" for run_id in run_ids) + ")"


def started_since(ms: int) -> str:
    """Runs whose start time is ``ms`` (milliseconds since the epoch) or later."""
    return f"attributes.start_time >= {int(ms)}"


def ended_since(ms: int) -> str:
    """Runs whose end time is ``ms`` (milliseconds since the epoch) or later."""
    return f"attributes.end_time >= {int(ms)}"


START_TIME_NEWEST_FIRST = "attributes.start_time DESC"  # a ``search_runs`` order_by clause


def param_columns(runs: pd.DataFrame) -> list[str]:
    """The config keys among a ``read_runs`` frame's columns."""
    return [column for column in runs.columns if "." in column]


SEARCH_PAGE = 10_000  # runs per request (MLflow's stores allow up to 50,000)


def read_runs(store: Store, experiment_ids: Sequence[str], filter_string: str = "") -> pd.DataFrame:
    """Runs of ``store`` (a ``tracking.store.Store``) as a tidy frame, one row per run, oldest first.

    Columns: ``RUN_INFO``; ``TAG_COLUMNS`` by their plain names (None where
    unset); every param under its dotted config key, as numbers where every
    value is a number ("None" -> NaN); every metric's last value by its name.
    """
    return tidy(_search(store.client, list(experiment_ids), filter_string))


def _search(client, experiment_ids, filter_string):
    """Every matching run, in ``mlflow.search_runs``'s frame: run info, then ``params.*``, ``metrics.*``,
    ``tags.*`` columns (times as UTC timestamps), page by page through ``client``."""
    rows, token = [], None
    while True:
        page = client.search_runs(
            experiment_ids, filter_string=filter_string, max_results=SEARCH_PAGE, page_token=token
        )
        for run in page:
            info = run.info
            rows.append(
                {
                    "run_id": info.run_id,
                    "experiment_id": info.experiment_id,
                    "status": info.status,
                    "start_time": info.start_time,
                    "end_time": info.end_time,
                    **{f"metrics.{k}": v for k, v in run.data.metrics.items()},
                    **{f"params.{k}": v for k, v in run.data.params.items()},
                    **{f"tags.{k}": v for k, v in run.data.tags.items()},
                }
            )
        token = page.token
        if not token:
            break
    raw = pd.DataFrame(rows)
    for column in ("start_time", "end_time"):
        if column in raw:
            raw[column] = pd.to_datetime(raw[column], unit="ms", utc=True)
    return raw


@dataclass(frozen=True)
class RunBrief:
    """One run's status, tags and last metric values, as ``search_runs`` gives them: no frame.

    What a poll that runs every second needs: building a ``read_runs`` frame (typing every param
    column) cost 2-3 times the query itself (py-spy, a 12-job sweep's parent).
    """

    run_id: str
    status: str
    end_time: int | None  # ms since the epoch; None while running
    tags: Mapping[str, str]
    metrics: Mapping[str, float]

    def tag(self, column: str) -> str | None:
        """A ``TAG_COLUMNS`` tag by its plain name ("run_name", "role", ...), None where unset."""
        return self.tags.get(TAG_COLUMNS[column])


def read_briefs(store: Store, experiment_ids: Sequence[str], filter_string: str = "") -> list[RunBrief]:
    """Matching runs of ``store`` as ``RunBrief``s, oldest end first (running runs last)."""
    briefs, token = [], None
    while True:
        page = store.client.search_runs(
            list(experiment_ids), filter_string=filter_string, max_results=SEARCH_PAGE, page_token=token
        )
        briefs += [
            RunBrief(run.info.run_id, run.info.status, run.info.end_time, run.data.tags, run.data.metrics)
            for run in page
        ]
        token = page.token
        if not token:
            break
    return sorted(briefs, key=lambda brief: (brief.end_time is None, brief.end_time or 0))


def tidy(raw: pd.DataFrame) -> pd.DataFrame:
    """``mlflow.search_runs``-shaped runs -> the frame ``read_runs`` describes."""
    frame = pd.DataFrame(
        {column: raw[column] if column in raw else pd.Series(dtype=object) for column in RUN_INFO}, index=raw.index
    )
    for name, tag in TAG_COLUMNS.items():
        column = f"tags.{tag}"
        frame[name] = raw[column].astype(object).where(raw[column].notna(), None) if column in raw else None
    columns = {}
    for column in raw.columns:
        if column.startswith("params.") and column[len("params.") :] not in PARAM_ALIASES:
            columns[column[len("params.") :]] = _typed(raw[column])
        elif column.startswith("metrics."):
            columns[column[len("metrics.") :]] = raw[column].astype(float)
    frame = pd.concat([frame, pd.DataFrame(columns, index=raw.index)], axis=1)
    return frame.sort_values("start_time", kind="stable").reset_index(drop=True)


INT64_DIGITS = 18  # any integer written with at most this many digits fits in int64


def _typed(values):
    """A param column as numbers when every set value is numeric: ints (nullable, so runs without the
    param stay <NA>) only where every value is written as an integer that fits in int64, else floats.

    Whatever MLflow holds (1e308, 1e20, inf, 20-digit integers) types without an error.
    """
    present = values.dropna()
    present = present[present != "None"]
    numbers = pd.to_numeric(present, errors="coerce")
    if present.empty or numbers.isna().any() or present.isin(["True", "False"]).any():
        return values.astype(object).where(values.notna() & (values != "None"), None)
    numbers = pd.to_numeric(values.where(values != "None"), errors="coerce").astype(float)
    if present.astype(str).str.fullmatch(rf"[+-]?\d{{1,{INT64_DIGITS}}}").all():
        return numbers.astype("Int64")
    return numbers
