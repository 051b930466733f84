"""Reporting stage: read runs back from MLflow and write Tables 1 and 2, figures and an index.

    python -m pipeline.report [mlflow.tracking_uri=...] [mlflow.experiment_name=...]
                              [report.out_dir=...] [report.sweep_id=ID|all]

It reads only what MLflow holds, sorts numeric axes as numbers, and writes
every file in a fixed order and format, so a regenerated report diffs cleanly.
"""

import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import hydra
import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from pipeline import tracking  # noqa: E402
from pipeline.config import register_configs  # noqa: E402

log = logging.getLogger("pipeline")
ROWS, COLUMNS, SEED = "model.hidden_neurons", "model.activation", "train.seed"
ACTIVATION_ORDER = ("sigmoid", "relu", "tanh")
# Params that never define a cell: where things are stored or printed.
NOT_AXES_PREFIXES = ("mlflow.", "report.")
NOT_AXES = {"quiet", "dataset.dir", SEED}
REFERENCE_CSV = Path(__file__).resolve().parent / "reference" / "published_tables.csv"
MISSING = "—"


class ReportError(Exception):
    """Nothing to report (no such experiment or sweep); the message says what to run."""


# (file stem, MLflow metric, scale, label, published metric or None, which is best, decimals)
ACCURACY_TABLE = ("table1_test_accuracy", "metrics.test_accuracy", 100.0, "test accuracy (%)", "accuracy_pct",
                  "max", 2)
MSE_TABLE = ("table1_test_mse", "metrics.test_mse", 1.0, "test MSE", None, "min", 4)
TIME_TABLE = ("table2_training_time", "metrics.training_time_s", 1.0, "training time (s)", "training_time_s",
              "min", 3)


def table_specs(jobs):
    """Table 1 is test accuracy, or test MSE for regression runs; Table 2 is training time."""
    regression = "metrics.test_mse" in jobs and jobs["metrics.test_mse"].notna().any()
    return (MSE_TABLE if regression else ACCURACY_TABLE), TIME_TABLE


# ---- selecting runs ----

def load_runs(tracking_uri, experiment_name):
    mlflow.set_tracking_uri(tracking.absolute_tracking_uri(tracking_uri))
    if MlflowClient().get_experiment_by_name(experiment_name) is None:
        raise ReportError(f"no experiment '{experiment_name}' in {tracking_uri}; run `python -m pipeline -m` first")
    return mlflow.search_runs(experiment_names=[experiment_name])


def select_jobs(runs, sweep_id):
    """The job runs to report and a description of the selection.

    sweep_id None: the latest sweep; "all": every job run of the experiment.
    """
    role = runs.get(f"tags.{tracking.TAG_ROLE}", pd.Series(index=runs.index, dtype=object))
    jobs = runs[role == "job"]
    if sweep_id == "all":
        return jobs, "all runs of the experiment"
    sweeps = runs[role == "sweep"].sort_values("start_time", ascending=False)
    if sweep_id is None:
        if sweeps.empty:
            raise ReportError("no sweep in this experiment yet; run `python -m pipeline -m`, "
                              "or report every run with report.sweep_id=all")
        sweep_id = sweeps[f"tags.{tracking.TAG_SWEEP_ID}"].iloc[0]
    selected = jobs[jobs[f"tags.{tracking.TAG_SWEEP_ID}"] == sweep_id]
    if selected.empty:
        known = ", ".join(sweeps[f"tags.{tracking.TAG_SWEEP_ID}"].head(5))
        raise ReportError(f"no runs for sweep '{sweep_id}' (latest sweeps: {known or 'none'})")
    return selected, f"sweep {sweep_id}"


def param(jobs, key):
    return jobs[f"params.{key}"] if f"params.{key}" in jobs else pd.Series("None", index=jobs.index)


def extra_axes(jobs):
    """Config keys, besides activation, width and seed, whose value differs between runs."""
    keys = sorted(c[len("params."):] for c in jobs.columns if c.startswith("params.") and "." in c[len("params."):])
    return [k for k in keys if k not in (ROWS, COLUMNS) and k not in NOT_AXES
            and not k.startswith(NOT_AXES_PREFIXES) and jobs[f"params.{k}"].nunique(dropna=False) > 1]


def _as_number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number


def ordered_activations(names):
    names = set(names)
    return [a for a in ACTIVATION_ORDER if a in names] + sorted(names - set(ACTIVATION_ORDER))


# ---- tables ----

def cell_frame(jobs, axes, specs):
    """One row per run: the axes as numbers where they are numbers, status, metrics."""
    frame = pd.DataFrame({"hidden_neurons": param(jobs, ROWS).map(_as_number),
                          "activation": param(jobs, COLUMNS)})
    for axis in axes:
        frame[axis] = param(jobs, axis).map(_as_number)
    frame["status"] = jobs["status"]
    for _, metric, *_ in specs:
        frame[metric] = jobs[metric] if metric in jobs else np.nan
    return frame


def summarize(frame, metric, scale, axes):
    """Table: rows (extra axes..., hidden_neurons ascending), a mean column per activation,
    then ``<activation>_std`` and ``<activation>_n`` when any cell has several runs."""
    keys = ["hidden_neurons", *axes]
    finished = frame[frame["status"] == "FINISHED"]
    grid = frame[keys].drop_duplicates().sort_values(axes + ["hidden_neurons"])
    activations = ordered_activations(frame["activation"])
    stats = (finished.assign(value=finished[metric] * scale)
             .groupby(keys + ["activation"])["value"].agg(["mean", "std", "count"]))
    table = grid.reset_index(drop=True)[keys].copy()
    repeated = (stats["count"] > 1).any()
    for activation in activations:
        lookup = [stats.loc[(*row, activation)] if (*row, activation) in stats.index else None
                  for row in table[keys].itertuples(index=False)]
        table[activation] = [s["mean"] if s is not None else np.nan for s in lookup]
        if repeated:
            table[f"{activation}_std"] = [s["std"] if s is not None else np.nan for s in lookup]
            table[f"{activation}_n"] = [int(s["count"]) if s is not None else 0 for s in lookup]
    if repeated:  # means first, then std and n, as the CSV contract says
        table = table[keys + activations + [f"{a}_{s}" for a in activations for s in ("std", "n")]]
    return table, activations


def _row_labels(row, axes):
    # iterrows upcasts widths to float: print them as they were given.
    return [str(_as_number(row["hidden_neurons"])), *(str(_as_number(row[a])) for a in axes)]


def _fmt(value, digits):
    return MISSING if pd.isna(value) else f"{value:.{digits}f}"


def markdown_table(table, activations, axes, best, digits):
    """Mean ± std per cell, the best cell of each row in bold, missing cells as —."""
    header = ["hidden neurons", *axes, *activations]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for _, row in table.iterrows():
        means = row[activations].astype(float)
        target = means.max() if best == "max" else means.min()
        cells = []
        for activation in activations:
            text = _fmt(row[activation], digits)
            if f"{activation}_std" in row and row.get(f"{activation}_n", 0) > 1:
                text += f" ± {_fmt(row[f'{activation}_std'], digits)}"
            if not pd.isna(row[activation]) and row[activation] == target and means.notna().sum() > 1:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(_row_labels(row, axes) + cells) + " |")
    return "\n".join(lines) + "\n"


def latex_table(table, activations, axes, caption, digits):
    columns = ["hidden neurons", *axes, *activations]
    lines = [r"\begin{table}[ht]", r"\centering", r"\begin{tabular}{" + "r" * len(columns) + "}", r"\hline",
             " & ".join(c.replace("_", r"\_") for c in columns) + r" \\", r"\hline"]
    for _, row in table.iterrows():
        cells = []
        for activation in activations:
            text = _fmt(row[activation], digits).replace(MISSING, "--")
            if f"{activation}_std" in row and row.get(f"{activation}_n", 0) > 1:
                text += rf" $\pm$ {_fmt(row[f'{activation}_std'], digits)}"
            cells.append(text)
        lines.append(" & ".join(_row_labels(row, axes) + cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def published_comparison(table, activations, published_metric, digits):
    """Long table: hidden_neurons, activation, ours, published, difference (where both exist)."""
    published = pd.read_csv(REFERENCE_CSV)
    published = published[published["metric"] == published_metric]
    rows = []
    for _, ref in published.sort_values(["hidden_neurons", "activation"], key=_reference_order).iterrows():
        match = table[table["hidden_neurons"] == ref["hidden_neurons"]]
        ours = match[ref["activation"]].mean() if ref["activation"] in activations and len(match) else np.nan
        rows.append({"hidden_neurons": int(ref["hidden_neurons"]), "activation": ref["activation"],
                     "ours": round(ours, digits) if not pd.isna(ours) else np.nan,
                     "published": ref["value"],
                     "difference": round(ours - ref["value"], digits) if not pd.isna(ours) else np.nan})
    return pd.DataFrame(rows)


def _reference_order(column):
    if column.name == "activation":
        return column.map({a: i for i, a in enumerate(ACTIVATION_ORDER)})
    return column


# ---- figures ----

def _histories(jobs, metric):
    client = MlflowClient()
    return {run_id: [m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)]
            for run_id in jobs["run_id"]}


def plot_loss_curves(jobs, frame, activations, path):
    finished = jobs[frame["status"].values == "FINISHED"]
    train, val = _histories(finished, "train_loss"), _histories(finished, "val_loss")
    fig, axes = plt.subplots(1, len(activations), figsize=(4.5 * len(activations), 3.8), squeeze=False,
                             sharey=True)
    widths = sorted(frame["hidden_neurons"].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
    for ax, activation in zip(axes[0], activations):
        for width, color in zip(widths, colors):
            runs = finished[(param(finished, COLUMNS) == activation)
                            & (param(finished, ROWS).map(_as_number) == width)]["run_id"]
            for series, style, label in ((train, "-", f"{width} train"), (val, "--", f"{width} val")):
                curves = [series[r] for r in runs if series.get(r)]
                if curves:
                    length = min(map(len, curves))
                    mean = np.mean([c[:length] for c in curves], axis=0)
                    ax.plot(np.arange(1, length + 1), mean, style, color=color, label=label)
        ax.set(title=activation, xlabel="epoch", yscale="log")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("loss (mean over seeds)")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_vs_width(table, activations, ylabel, path, log_y=False):
    fig, ax = plt.subplots(figsize=(6, 4))
    grouped = table.groupby("hidden_neurons")[activations].mean()
    for activation in activations:
        std = None
        if f"{activation}_std" in table:
            std = table.groupby("hidden_neurons")[f"{activation}_std"].mean()
        ax.errorbar(grouped.index, grouped[activation], yerr=std, marker="o", capsize=3, label=activation)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="hidden neurons", ylabel=ylabel)
    ax.set_xticks(grouped.index, [str(w) for w in grouped.index])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heatmap(table, activations, title, path, digits, cmap):
    values = table.groupby("hidden_neurons")[activations].mean()
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(activations), 1.2 + 0.6 * len(values)))
    image = ax.imshow(values.to_numpy(dtype=float), cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(activations)), activations)
    ax.set_yticks(range(len(values)), [str(w) for w in values.index])
    ax.set(xlabel="activation", ylabel="hidden neurons", title=title)
    for (i, j), value in np.ndenumerate(values.to_numpy(dtype=float)):
        red, green, blue, _ = image.cmap(image.norm(value))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
        ax.text(j, i, _fmt(value, digits), ha="center", va="center", fontsize=9, color="white" if dark else "black")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- the whole report ----

def _settings(jobs, axes):
    """What produced the runs: each setting's values across the selected runs."""
    def values(key):
        return ", ".join(sorted({str(_as_number(v)) for v in param(jobs, key)}, key=lambda v: (len(v), v)))
    return [("dataset", values("dataset.name")), ("epochs", values("train.epochs")),
            ("batch size", values("train.batch_size")), ("optimizer", values("optimizer.name")),
            ("learning rate", values("optimizer.lr")), ("momentum", values("optimizer.momentum")),
            ("init", values("model.init")), ("hidden layers", values("model.hidden_layers")),
            ("validation fraction", values("train.val_fraction")), ("seeds", values(SEED)),
            ("axes besides activation x width", ", ".join(axes) or "none"),
            ("machine", "; ".join(sorted({f"{r.get('tags.cpu', '?')}, {r.get('tags.cpu_count', '?')} cores, "
                                          f"NumPy {r.get('tags.numpy', '?')}, BLAS {r.get('tags.blas', '?')}"
                                          for _, r in jobs.iterrows()})))]


def write_report(tracking_uri, experiment_name, sweep_id, out_dir):
    """Write every table, figure and the index for the selected runs; returns out_dir."""
    runs = load_runs(tracking_uri, experiment_name)
    jobs, selection = select_jobs(runs, sweep_id)
    jobs = jobs.sort_values("start_time").reset_index(drop=True)
    axes = extra_axes(jobs)
    specs = table_specs(jobs)
    frame = cell_frame(jobs, axes, specs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    sections, missing_cells, tables = [], set(), []
    for stem, metric, scale, label, published_metric, best, digits in specs:
        table, activations = summarize(frame, metric, scale, axes)
        tables.append(table)
        table.round(6).to_csv(out / f"{stem}.csv", index=False)
        md = markdown_table(table, activations, axes, best, digits)
        (out / f"{stem}.md").write_text(f"# {label}: activation x hidden neurons ({selection})\n\n{md}")
        (out / f"{stem}.tex").write_text(latex_table(table, activations, axes, f"{label} ({selection})", digits))
        comparison = None
        if published_metric:
            comparison = published_comparison(table, activations, published_metric, digits)
            comparison.to_csv(out / f"{stem}_vs_published.csv", index=False)
        sections.append((stem, label, md, comparison, digits))
        for _, row in table.iterrows():
            for activation in activations:
                if pd.isna(row[activation]):
                    missing_cells.add((row["hidden_neurons"], activation, *(row[a] for a in axes)))

    activations = ordered_activations(frame["activation"])
    (quality, time_table), quality_label = tables, specs[0][3]
    plot_loss_curves(jobs, frame, activations, out / "loss_curves.png")
    plot_vs_width(quality, activations, quality_label, out / "accuracy_vs_width.png")
    plot_vs_width(time_table, activations, "training time (s)", out / "time_vs_width.png", log_y=True)
    plot_heatmap(quality, activations, quality_label, out / "heatmap_test_accuracy.png", 1,
                 "viridis" if specs[0][5] == "max" else "viridis_r")
    plot_heatmap(time_table, activations, "training time (s)", out / "heatmap_training_time.png", 1, "magma_r")
    (out / "report.md").write_text(_index(jobs, frame, selection, axes, sections, missing_cells))
    return out


def _index(jobs, frame, selection, axes, sections, missing_cells):
    statuses = frame["status"].value_counts().to_dict()
    lines = [f"# fnn-sweep report: {selection}", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m pipeline.report` "
             f"from the runs MLflow holds ({len(frame)} runs: "
             + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + ").", "",
             "| setting | value |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in _settings(jobs, axes)), ""]
    if axes:
        lines += [f"The runs also differ in {', '.join(axes)}: the tables have one row per value.", ""]
    pooled_seeds = frame.groupby(["hidden_neurons", "activation", *axes]).size().max() > 1
    if pooled_seeds:
        lines += ["Cells pool repeated seeds: mean ± standard deviation (n in the CSV).", ""]
    failed = jobs[frame["status"] != "FINISHED"]
    lines += [f"## Failed or unfinished runs: {len(failed)}", ""]
    for _, run in failed.iterrows():
        reason = run.get(f"tags.{tracking.TAG_FAILURE}") or "no reason recorded"
        lines.append(f"- {run.get('tags.mlflow.runName', run['run_id'])} ({run['run_id'][:8]}): "
                     f"{run['status']}: {reason}")
    lines += ["" if len(failed) else "None.", "", f"## Missing cells (no finished run): {len(missing_cells)}", ""]
    lines += [f"- {', '.join(map(str, cell))}" for cell in sorted(missing_cells, key=str)] or ["None."]
    for stem, label, md, comparison, digits in sections:
        links = f"[CSV]({stem}.csv) · [Markdown]({stem}.md) · [LaTeX]({stem}.tex)"
        if comparison is not None:
            links += f" · [vs published CSV]({stem}_vs_published.csv)"
        lines += ["", f"## {label}", "", links + ". Bold: best in the row.", "", md]
        if comparison is None:
            continue
        lines += [f"### {label}: ours vs the published study (MNIST, 60k/10k, SGD lr 0.1)", "",
                  "| hidden neurons | activation | ours | published | difference |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r.hidden_neurons} | {r.activation} | {_fmt(r.ours, digits)} | {r.published} | "
                  f"{_fmt(r.difference, digits)} |" for r in comparison.itertuples()]
    lines += ["", "## Figures", "",
              "- [Loss per epoch, one panel per activation](loss_curves.png) (solid: train, dashed: validation)",
              "- [Table 1's metric vs width](accuracy_vs_width.png)", "- [Training time vs width](time_vs_width.png)",
              "- [Heatmap of Table 1](heatmap_test_accuracy.png)", "- [Heatmap of Table 2](heatmap_training_time.png)",
              "", "![loss curves](loss_curves.png)", "", "![accuracy vs width](accuracy_vs_width.png)", ""]
    return "\n".join(lines)


register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg):
    try:
        out = write_report(cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name, cfg.report.sweep_id,
                           cfg.report.out_dir)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    log.info(f"Report written to {out} (index: {out / 'report.md'})")


if __name__ == "__main__":
    main()
