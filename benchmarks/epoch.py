"""Speed benchmark: fnn_core against scikit-learn (and PyTorch when importable).

    python -m benchmarks.epoch [--epochs 2] [--repeats 3] [--hidden 32 64 128 256] [--out reports/benchmark.md]

All contenders train the same 784-h-10 network in this one process on the
same float32 data: batch 64, plain SGD at lr 0.1, the same epochs. Seconds
per epoch are wall time around each whole fit divided by the epochs run, the
best of --repeats fits for every contender alike, the contenders interleaved
(this VM's timings vary with the host's load; the minimum is the least
disturbed). The
matmul ceiling times, with plain NumPy, the five products one training step
needs (forward, output backward, weight gradients) at the same shapes: no
implementation built on NumPy's BLAS can beat it. The 1-thread columns time
fnn_core and the ceiling again with NumPy's BLAS held to one thread (as each
job of a parallel sweep runs), and the microseconds per step spent outside
the matmuls.
"""

import argparse
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.common import count, output_path, write_whole
from fnn_core import FNN, SGD
from pipeline.data import DataError, load_idx_arrays, locate_idx_dir
from pipeline.runtime.machine import machine_summary

ACTIVATIONS = ("sigmoid", "relu", "tanh")
BATCH, LR, N_CLASSES = 64, 0.1, 10


def step_flops(n_in: int, hidden: int, n_out: int, batch: int) -> int:
    """FLOPs of the matmuls in one training step of an n_in-hidden-n_out network."""
    return 2 * batch * (2 * n_in * hidden + 3 * hidden * n_out)


def time_fnn_core(X: np.ndarray, y: np.ndarray, hidden: int, activation: str, epochs: int) -> float:
    net = FNN(X.shape[1], [hidden], N_CLASSES, activation=activation, seed=0)
    start = time.perf_counter()
    net.fit(X, y, epochs=epochs, batch_size=BATCH, optimizer=SGD(lr=LR))
    return (time.perf_counter() - start) / epochs


def time_sklearn(X: np.ndarray, y: np.ndarray, hidden: int, activation: str, epochs: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        activation={"sigmoid": "logistic"}.get(activation, activation),
        solver="sgd",
        learning_rate_init=LR,
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=BATCH,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y)
    return (time.perf_counter() - start) / model.n_iter_


def time_torch(X: np.ndarray, y: np.ndarray, hidden: int, activation: str, epochs: int) -> float:
    import torch

    torch.manual_seed(0)
    act = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), act(), torch.nn.Linear(hidden, N_CLASSES))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(Xt))
        for i in range(0, len(Xt), BATCH):
            rows = order[i : i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(Xt[rows]), yt[rows]).backward()
            optimizer.step()
    return (time.perf_counter() - start) / epochs


def time_matmul_ceiling(X: np.ndarray, hidden: int, epochs: int) -> float:
    """Seconds per epoch of the bare matmuls of training, preallocated, same shapes."""
    rng = np.random.default_rng(0)
    x = np.ascontiguousarray(X[:BATCH])
    W1 = rng.random((X.shape[1], hidden), dtype=np.float32)
    W2 = rng.random((hidden, N_CLASSES), dtype=np.float32)
    H, Z = np.empty((BATCH, hidden), np.float32), np.empty((BATCH, N_CLASSES), np.float32)
    G1, G2, dH = np.empty_like(W1), np.empty_like(W2), np.empty_like(H)
    n_batches = -(-len(X) // BATCH)
    start = time.perf_counter()
    for _ in range(epochs * n_batches):
        np.matmul(x, W1, out=H)
        np.matmul(H, W2, out=Z)
        np.matmul(H.T, Z, out=G2)
        np.matmul(Z, W2.T, out=dH)
        np.matmul(x.T, dH, out=G1)
    return (time.perf_counter() - start) / epochs


def one_thread(timer: Callable[..., float], *args: Any) -> float:
    """``timer(*args)`` with NumPy's BLAS held to one thread."""
    with threadpool_limits(limits=1, user_api="blas"):
        return timer(*args)


def load_benchmark_data(data_dir: str | None) -> tuple:
    """The IDX files in data_dir, else full Fashion-MNIST (Debian's package or the cache), else MNIST."""
    if data_dir:
        X, y, _, _ = load_idx_arrays(locate_idx_dir("mnist", data_dir))
        return X, y, f"IDX files in {data_dir} ({len(X)} training samples)"
    for name in ("fashion_mnist", "mnist"):
        try:
            path = locate_idx_dir(name)
        except DataError:
            continue
        X, y, _, _ = load_idx_arrays(path)
        return X, y, f"{name} from {path} ({len(X)} training samples)"
    raise DataError(
        "no data for the benchmark: install dataset-fashion-mnist or pass --data-dir DIR with MNIST IDX files"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=count(), default=2)
    parser.add_argument("--repeats", type=count(), default=3, help="fits per contender; the fastest counts")
    parser.add_argument("--hidden", type=count(), nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--activations", nargs="+", default=list(ACTIVATIONS), choices=ACTIVATIONS)
    parser.add_argument("--data-dir", help="directory with the four IDX files (default: Fashion-MNIST, then MNIST)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is importable")
    parser.add_argument("--out", default="reports/benchmark.md")
    args = parser.parse_args(argv)
    out = output_path(parser, args.out)
    try:
        X, y, data_note = load_benchmark_data(args.data_dir)
    except DataError as exc:
        parser.exit(2, f"error: {exc}\n")
    try:
        import torch  # noqa: F401

        use_torch = not args.no_torch
    except ImportError:
        use_torch = False

    header = ["activation", "hidden", "fnn_core s/epoch", "sklearn s/epoch", "sklearn / fnn_core"]
    if use_torch:
        header += ["torch s/epoch", "torch / fnn_core"]
    header += [
        "fnn_core GFLOP/s",
        "matmul ceiling GFLOP/s",
        "% of ceiling",
        "1 thread: fnn_core s/epoch",
        "1 thread: % of ceiling",
        "1 thread: µs/step outside matmuls",
    ]
    rows = []
    print(f"data: {data_note}; {args.epochs} epochs, batch {BATCH}, SGD lr {LR}")
    print(" | ".join(header), flush=True)
    for hidden in args.hidden:
        gflop = step_flops(X.shape[1], hidden, N_CLASSES, BATCH) * -(-len(X) // BATCH) / 1e9
        for activation in args.activations:
            contenders = {
                "fnn_core": lambda: time_fnn_core(X, y, hidden, activation, args.epochs),
                "sklearn": lambda: time_sklearn(X, y, hidden, activation, args.epochs),
                "ceiling": lambda: time_matmul_ceiling(X, hidden, args.epochs),
                "fnn_core_1": lambda: one_thread(time_fnn_core, X, y, hidden, activation, args.epochs),
                "ceiling_1": lambda: one_thread(time_matmul_ceiling, X, hidden, args.epochs),
            }
            if use_torch:
                contenders["torch"] = lambda: time_torch(X, y, hidden, activation, args.epochs)
            timings: dict[str, list[float]] = {name: [] for name in contenders}
            for _ in range(args.repeats):  # interleaved: a slow spell of the host hits every contender
                for name, timer in contenders.items():
                    timings[name].append(timer())
            best = {name: min(values) for name, values in timings.items()}
            ours, sk, ceiling = best["fnn_core"], best["sklearn"], best["ceiling"]
            row = [activation, hidden, f"{ours:.3g}", f"{sk:.3g}", f"{sk / ours:.2f}x"]
            if use_torch:
                row += [f"{best['torch']:.3g}", f"{best['torch'] / ours:.2f}x"]
            row += [f"{gflop / ours:.1f}", f"{gflop / ceiling:.1f}", f"{100 * ceiling / ours:.0f}%"]
            ours_1, ceiling_1 = best["fnn_core_1"], best["ceiling_1"]
            steps = -(-len(X) // BATCH)
            row += [f"{ours_1:.3g}", f"{100 * ceiling_1 / ours_1:.0f}%", f"{1e6 * (ours_1 - ceiling_1) / steps:.0f}"]
            rows.append(row)
            print(" | ".join(map(str, row)), flush=True)

    lines = [
        "# Benchmark: seconds per training epoch",
        "",
        f"Command: `python -m benchmarks.epoch --epochs {args.epochs} --repeats {args.repeats}`; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- Data: {data_note}, float32.",
        f"- Network 784-h-10, batch {BATCH}, plain SGD lr {LR}, {args.epochs} epochs, one process, "
        f"wall time around each whole fit / epochs, best of {args.repeats} fits per contender.",
        "- Matmul ceiling: the five matmuls of one training step at the same shapes in plain NumPy.",
        f"- Machine: {machine_summary()}.",
        "" if use_torch else "- PyTorch not importable in this run: its columns are left out.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(map(str, row)) + " |" for row in rows),
        "",
    ]
    write_whole(out, "\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
