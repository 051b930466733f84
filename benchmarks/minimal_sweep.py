"""The default grid as the least one could write with Hydra and MLflow: the floor ``benchmarks.floor`` measures.

    python -m benchmarks.minimal_sweep -m hydra/launcher=joblib hidden=256,128,64,32 activation=sigmoid,relu,tanh
    python -m benchmarks.minimal_sweep -m ... tracking_uri=sqlite:////tmp/x/mlflow.db
    python -m benchmarks.minimal_sweep --joblib OUT_DIR 2 hidden=256,128,64,32 activation=sigmoid,relu,tanh

A job trains one network on the pipeline's data, with ``python -m pipeline``'s defaults (the same
validation split, epochs, batch size and SGD), one BLAS thread per job as the pipeline gives each of
two workers. With ``tracking_uri`` it is also one MLflow run in that store's ``minimal`` experiment
(made beforehand): its params, each epoch's metrics, its test accuracy and training time. Nothing
else: no checks, no parent run, no resume, no model, no report. Each job writes its training time to
``training_time_s`` in its output directory, for the benchmark to add up. ``--joblib`` runs the
same jobs with joblib alone: no Hydra either.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class MinimalJob:
    dataset: str = "fashion_mnist"
    activation: str = "relu"
    hidden: int = 128
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    seed: int = 0
    tracking_uri: Optional[str] = None
    dataset_dir: Optional[str] = None  # the pipeline's dataset.dir


def train(
    dataset: str,
    activation: str,
    hidden: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    log_epoch: Callable[[int, dict], object] | None = None,
    dataset_dir: str | None = None,
) -> tuple[float, float]:
    """Train one network as ``python -m pipeline`` does by default; returns (training seconds, test accuracy).
    ``log_epoch(epoch, logs)``'s own time is not training time, as the pipeline's epoch logging is not."""
    from threadpoolctl import threadpool_limits

    from fnn_core import FNN, SGD
    from pipeline.data import load_dataset

    data = load_dataset({"name": dataset, "dir": dataset_dir}, 0.1, seed)
    net = FNN(data.n_features, [hidden], data.n_outputs, activation=activation, seed=seed)
    logging_seconds = 0.0

    def timed_log(epoch, logs):
        nonlocal logging_seconds
        start = time.perf_counter()
        log_epoch(epoch, logs)
        logging_seconds += time.perf_counter() - start

    with threadpool_limits(limits=1, user_api="blas"):
        start = time.perf_counter()
        net.fit(
            data.X_train,
            data.y_train,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=SGD(lr=lr),
            validation_data=(data.X_val, data.y_val),
            callbacks=[timed_log] if log_epoch else [],
        )
        training = time.perf_counter() - start - logging_seconds
        return training, net.evaluate(data.X_test, data.y_test)["accuracy"]


def hydra_main() -> None:
    """The Hydra app (imported here: ``--joblib`` imports no Hydra)."""
    import hydra
    from hydra.core.config_store import ConfigStore
    from hydra.core.hydra_config import HydraConfig

    ConfigStore.instance().store(name="minimal_job", node=MinimalJob)

    @hydra.main(version_base="1.3", config_path=None, config_name="minimal_job")
    def job(cfg: MinimalJob) -> float:
        log_epoch = None
        if cfg.tracking_uri:
            import mlflow

            mlflow.set_tracking_uri(cfg.tracking_uri)
            mlflow.set_experiment("minimal")
            mlflow.start_run(run_name=f"{cfg.activation}-{cfg.hidden}")
            mlflow.log_params({"activation": cfg.activation, "hidden": cfg.hidden, "epochs": cfg.epochs, "lr": cfg.lr})
            log_epoch = lambda epoch, logs: mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch)  # noqa: E731
        training, accuracy = train(
            cfg.dataset,
            cfg.activation,
            cfg.hidden,
            cfg.epochs,
            cfg.batch_size,
            cfg.lr,
            cfg.seed,
            log_epoch,
            cfg.dataset_dir,
        )
        if cfg.tracking_uri:
            mlflow.log_metrics({"test_accuracy": accuracy, "training_time_s": training})
            mlflow.end_run()
        (Path(HydraConfig.get().runtime.output_dir) / "training_time_s").write_text(repr(training))
        return accuracy

    job()


def joblib_grid(out_dir: str, workers: int, settings: Sequence[str]) -> None:
    """The same jobs with joblib alone (no Hydra, no tracking). ``settings``: MinimalJob's keys as
    key=value, ``hidden`` and ``activation`` as comma-separated lists, swept in that order (widest
    first when the widths are). Job i's training seconds go to ``out_dir``/i/training_time_s."""
    from joblib import Parallel, delayed

    job = dict(item.split("=", 1) for item in settings)
    widths, activations = job.pop("hidden").split(","), job.pop("activation").split(",")
    numbers = {"epochs": int, "batch_size": int, "seed": int, "lr": float}
    base = MinimalJob(**{key: numbers.get(key, str)(value) for key, value in job.items()})
    times = Parallel(n_jobs=workers)(
        delayed(train)(
            base.dataset,
            activation,
            int(hidden),
            base.epochs,
            base.batch_size,
            base.lr,
            base.seed,
            None,
            base.dataset_dir,
        )
        for hidden in widths
        for activation in activations
    )
    for i, (training, _) in enumerate(times):
        (Path(out_dir) / str(i)).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / str(i) / "training_time_s").write_text(repr(training))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--joblib"]:  # --joblib OUT_DIR WORKERS key=value ...
        joblib_grid(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    else:
        hydra_main()
