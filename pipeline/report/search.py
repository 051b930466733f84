"""A search's part of the report: its best trials, its pruned trials and the epochs pruning saved,
its optimisation history and its parameters' importances.

Read from MLflow alone (each trial's run carries its number, params, validation and test metrics and,
pruned, the epochs it ran), so it needs no access to the study's storage; the importances are
Optuna's (``get_param_importances``, fANOVA) over the completed trials.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.config import result_neutral
from pipeline.report.figures import save_figure
from pipeline.report.render import fmt
from pipeline.tracking import layout
from pipeline.tracking.artifacts import pyplot

if TYPE_CHECKING:
    from pathlib import Path

TOP = 10  # best trials listed
HISTORY, IMPORTANCES = "optimization_history.png", "param_importances.png"


def trials_of(jobs: pd.DataFrame, markers: pd.DataFrame) -> pd.DataFrame:
    """The selection's search trials (runs tagged with a trial number), by study and trial number.

    A trial whose config had finished before is a marker run (``markers``: reuse markers) standing for
    that run: it counts with the run's results under the marker's trial number.
    """
    frames = [jobs[jobs["trial"].notna()]] if "trial" in jobs else []
    if "trial" in markers and "reused_run" in markers:
        by_id = jobs.set_index("run_id")
        for marker in markers[markers["trial"].notna()].itertuples():
            if marker.reused_run in by_id.index and marker.sweep_id in set(jobs["sweep_id"]):
                row = by_id.loc[[marker.reused_run]].reset_index()
                frames.append(row.assign(trial=marker.trial, study=marker.study))
    if not frames or not sum(len(f) for f in frames):
        return jobs.iloc[0:0]
    trials = pd.concat(frames, ignore_index=True)
    trials["trial"] = trials["trial"].astype(int)
    return trials.sort_values(["study", "trial"], kind="stable").reset_index(drop=True)


def searched_keys(trials: pd.DataFrame) -> list[str]:
    """The config keys whose value differs between trials: the dimensions searched."""
    return [
        key
        for key in layout.param_columns(trials)
        if not result_neutral(key) and key != "dataset.dir" and trials[key].nunique(dropna=False) > 1
    ]


def write_search_section(trials: pd.DataFrame, out: Path) -> list[str]:
    """Draw the search's figures into ``out``; returns its report.md lines ([] without trials)."""
    if trials.empty:
        return []
    metric, best = (
        (layout.VALIDATION_METRIC["min"], "min")
        if layout.VALIDATION_METRIC["min"] in trials and trials[layout.VALIDATION_METRIC["min"]].notna().any()
        else (layout.VALIDATION_METRIC["max"], "max")
    )
    test = layout.TEST_MSE if best == "min" else layout.TEST_ACCURACY
    keys = searched_keys(trials)
    pruned = trials["pruned"].notna() if "pruned" in trials else pd.Series(False, index=trials.index)
    complete = trials[(trials["status"] == "FINISHED") & ~pruned & trials.get(metric, pd.Series(dtype=float)).notna()]
    studies = ", ".join(sorted(trials["study"].dropna().unique()))
    lines = [f"## Search: {len(trials)} trials of {studies}", ""]
    ranked = complete.sort_values(metric, ascending=best == "min", kind="stable").head(TOP)
    lines += [f"Best {len(ranked)} by final {metric} (chosen on validation; test beside it):", ""]
    lines += ["| trial | run | " + " | ".join(keys) + f" | {metric} | {test} |"]
    lines += ["| " + " | ".join(["---"] * (len(keys) + 4)) + " |"]
    lines += [
        f"| {r['trial']} | {r['run_name']} | "
        + " | ".join(_cell(r[k]) for k in keys)
        + f" | {fmt(r[metric], 4)} | {fmt(r.get(test, math.nan), 4)} |"
        for _, r in ranked.iterrows()
    ]
    epochs = pd.to_numeric(trials.get("train.epochs"), errors="coerce")
    ran = pd.to_numeric(trials["pruned"], errors="coerce") if "pruned" in trials else epochs * math.nan
    saved = int((epochs[pruned] - ran[pruned]).sum()) if pruned.any() else 0
    lines += ["", f"### Pruned trials: {int(pruned.sum())}, {saved} epochs not trained", ""]
    lines += [
        f"- trial {r['trial']} ({r['run_name']}): stopped after epoch {r['pruned']} of {_cell(r.get('train.epochs'))}"
        for _, r in trials[pruned].iterrows()
    ] or ["None."]
    lines += [""]
    for file, title, reason in (
        (HISTORY, "Optimisation history", _plot_history(trials, complete, metric, best, out / HISTORY)),
        (
            IMPORTANCES,
            "Parameter importances (fANOVA)",
            _plot_importances(complete, keys, metric, best, out / IMPORTANCES),
        ),
    ):
        lines += [f"![{title}]({file})", ""] if reason is None else [f"- {title}: not drawn, {reason}", ""]
    return lines


def _cell(value):
    if isinstance(value, float) and not math.isnan(value) and value != int(value):
        return f"{value:.4g}"
    return fmt(value, 0) if isinstance(value, float) else str(value)


def _plot_history(trials, complete, metric, best, path):
    if complete.empty:
        return "no trial completed"
    order = complete.sort_values("trial")
    running = order[metric].cummin() if best == "min" else order[metric].cummax()
    fig, ax = pyplot().subplots(figsize=(6, 4))
    ax.plot(order["trial"], order[metric], "o", alpha=0.6, label="trial")
    ax.step(order["trial"], running, where="post", label=f"best so far ({best})")
    ax.set(xlabel="trial", ylabel=f"final {metric}", title=f"Optimisation history ({len(trials)} trials)")
    ax.legend()
    save_figure(fig, path)
    return None


def _plot_importances(complete, keys, metric, best, path):
    if len(complete) < 3 or not keys:
        return "it needs at least 3 completed trials and a searched parameter"
    import optuna

    distributions = {key: _distribution(complete[key]) for key in keys}
    rebuilt = optuna.create_study(direction="minimize" if best == "min" else "maximize")
    for _, row in complete.iterrows():
        params = {key: _value(row[key], distributions[key]) for key in keys}
        rebuilt.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=row[metric]))
    importances = optuna.importance.get_param_importances(
        rebuilt, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    fig, ax = pyplot().subplots(figsize=(6, 0.6 + 0.45 * len(importances)))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set(xlabel="importance (share of the variance of the objective)", title=f"What drives final {metric}")
    save_figure(fig, path)
    return None


def _distribution(values):
    import optuna

    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and not values.isin([True, False]).any():
        low, high = float(numbers.min()), float(numbers.max())
        if (numbers == numbers.round()).all():
            return optuna.distributions.IntDistribution(int(low), int(high), log=low > 0 and high / low > 100)
        return optuna.distributions.FloatDistribution(low, high, log=low > 0 and high / low > 100)
    return optuna.distributions.CategoricalDistribution(sorted({str(v) for v in values}))


def _value(value, distribution):
    import optuna

    if isinstance(distribution, optuna.distributions.IntDistribution):
        return int(value)
    if isinstance(distribution, optuna.distributions.FloatDistribution):
        return float(value)
    return str(value)
