"""Tables 1 and 2 as frames: one row per width (and extra axis value), a column per activation."""

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pipeline.tracking import layout

ACTIVATION_ORDER = ("sigmoid", "relu", "tanh")
REFERENCE_CSV = Path(__file__).resolve().parent / "reference" / "published_tables.csv"


class TableSpec(NamedTuple):
    stem: str  # file name without extension
    metric: str  # MLflow metric
    scale: float
    label: str
    published_metric: str | None  # metric name in the published tables, if they have it
    best: str  # "max" or "min"
    digits: int


ACCURACY_TABLE = TableSpec(
    "table1_test_accuracy", layout.TEST_ACCURACY, 100.0, "test accuracy (%)", "accuracy_pct", "max", 2
)
MSE_TABLE = TableSpec("table1_test_mse", layout.TEST_MSE, 1.0, "test MSE", None, "min", 4)
# The published CSV names training time as our metric does.
TIME_TABLE = TableSpec(
    "table2_training_time", layout.TRAINING_TIME, 1.0, "training time (s)", layout.TRAINING_TIME, "min", 3
)


def table_specs(jobs: pd.DataFrame) -> tuple[TableSpec, TableSpec]:
    """Table 1 is test accuracy, or test MSE for regression runs; Table 2 is training time."""
    regression = layout.TEST_MSE in jobs and jobs[layout.TEST_MSE].notna().any()
    return (MSE_TABLE if regression else ACCURACY_TABLE), TIME_TABLE


def label(value: Any) -> str:
    """A cell key as text: 128 not 128.0."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def ordered_activations(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [a for a in ACTIVATION_ORDER if a in names] + sorted(names - set(ACTIVATION_ORDER))


def cell_frame(jobs: pd.DataFrame, axes: Sequence[str], specs: Sequence[TableSpec]) -> pd.DataFrame:
    """One row per run: hidden_neurons, activation, the extra axes, status and the tables' metrics."""
    frame = pd.DataFrame(
        {
            "hidden_neurons": jobs[layout.HIDDEN_NEURONS],
            "activation": jobs[layout.ACTIVATION],
            **{axis: jobs[axis] for axis in axes},
            "status": jobs["status"],
        }
    )
    for spec in specs:
        frame[spec.metric] = jobs[spec.metric] if spec.metric in jobs else np.nan
    return frame


def summarize(frame: pd.DataFrame, spec: TableSpec, axes: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Rows (extra axes..., hidden_neurons ascending), a mean column per activation, then
    ``<activation>_std`` and ``<activation>_n`` when any cell has several runs."""
    keys = ["hidden_neurons", *axes]
    finished = frame[frame["status"] == "FINISHED"].assign(value=lambda f: f[spec.metric] * spec.scale)
    stats = finished.pivot_table(
        index=keys, columns="activation", values="value", aggfunc=["mean", "std", "count"], dropna=False
    )
    grid = frame[keys].drop_duplicates().sort_values([*axes, "hidden_neurons"])
    activations = ordered_activations(frame["activation"])
    stats = stats.reindex(pd.MultiIndex.from_frame(grid) if len(keys) > 1 else pd.Index(grid[keys[0]]))
    table = grid.reset_index(drop=True)
    for activation in activations:
        table[activation] = _column(stats, "mean", activation)
    if (stats.get("count", pd.DataFrame()) > 1).to_numpy().any():  # means first, then std and n per activation
        for activation in activations:
            table[f"{activation}_std"] = _column(stats, "std", activation)
            table[f"{activation}_n"] = np.nan_to_num(_column(stats, "count", activation)).astype(int)
    return table, activations


def _column(stats, statistic, activation):
    if (statistic, activation) not in stats.columns:
        return np.full(len(stats), np.nan)
    return stats[(statistic, activation)].to_numpy(dtype=float)


def published_comparison(table: pd.DataFrame, activations: Sequence[str], spec: TableSpec) -> pd.DataFrame:
    """Long table: hidden_neurons, activation, ours, published, difference (where both exist)."""
    published = pd.read_csv(REFERENCE_CSV)
    published = published[published["metric"] == spec.published_metric]
    order = {a: i for i, a in enumerate(ACTIVATION_ORDER)}
    published = published.assign(order=published["activation"].map(order)).sort_values(["hidden_neurons", "order"])
    rows = []
    for ref in published.itertuples():
        match = table[table["hidden_neurons"] == ref.hidden_neurons]
        ours = match[ref.activation].mean() if ref.activation in activations and len(match) else np.nan
        rows.append(
            {
                "hidden_neurons": int(ref.hidden_neurons),
                "activation": ref.activation,
                "ours": round(ours, spec.digits) if not pd.isna(ours) else np.nan,
                "published": ref.value,
                "difference": round(ours - ref.value, spec.digits) if not pd.isna(ours) else np.nan,
            }
        )
    return pd.DataFrame(rows)
