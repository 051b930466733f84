"""The whole report: tables, figures and ``report.md``, the index that says what produced them."""

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pipeline.report import figures
from pipeline.report.best_lr import STEM as BEST_LR_STEM, write_best_lr
from pipeline.report.render import fmt, latex_table, markdown_table
from pipeline.report.select import extra_axes, load_runs, select_jobs
from pipeline.report.tables import cell_frame, label, ordered_activations, published_comparison, summarize, \
    table_specs
from pipeline.tracking import layout

LITERATURE_CSV = Path(__file__).resolve().parent / "reference" / "literature_mlp.csv"
SETTINGS = (("dataset", "dataset.name"), ("epochs", "train.epochs"), ("batch size", "train.batch_size"),
            ("optimizer", "optimizer.name"), ("learning rate", layout.LR), ("momentum", "optimizer.momentum"),
            ("init", "model.init"), ("hidden layers", "model.hidden_layers"),
            ("validation fraction", "train.val_fraction"), ("seeds", layout.SEED),
            ("BLAS threads per job", layout.BLAS_THREADS))


def write_report(tracking_uri, experiment_name, sweep_id, out_dir):
    """Write every table, figure and the index for the selected runs; returns out_dir as a Path."""
    jobs, selection = select_jobs(load_runs(tracking_uri, experiment_name), sweep_id)
    axes = extra_axes(jobs)
    specs = table_specs(jobs)
    frame = cell_frame(jobs, axes, specs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    sections, missing_cells, tables = [], set(), []
    for spec in specs:
        table, activations = summarize(frame, spec, axes)
        tables.append(table)
        table.round(6).to_csv(out / f"{spec.stem}.csv", index=False)
        md = markdown_table(table, activations, axes, spec)
        (out / f"{spec.stem}.md").write_text(f"# {spec.label}: activation x hidden neurons ({selection})\n\n{md}")
        (out / f"{spec.stem}.tex").write_text(latex_table(table, activations, axes, f"{spec.label} ({selection})",
                                                          spec))
        comparison = None
        if spec.published_metric:
            comparison = published_comparison(table, activations, spec)
            comparison.to_csv(out / f"{spec.stem}_vs_published.csv", index=False)
        sections.append((spec, md, comparison))
        for _, row in table.iterrows():
            missing_cells.update((label(row["hidden_neurons"]), a, *(label(row[x]) for x in axes))
                                 for a in activations if pd.isna(row[a]))

    activations = ordered_activations(frame["activation"])
    (quality, time_table), quality_spec = tables, specs[0]
    figures.plot_loss_curves(frame, jobs["run_id"], activations, out / "loss_curves.png")
    figures.plot_vs_width(quality, activations, quality_spec.label, out / "accuracy_vs_width.png")
    figures.plot_vs_width(time_table, activations, "training time (s)", out / "time_vs_width.png", log_y=True)
    figures.plot_heatmap(quality, activations, quality_spec.label, out / "heatmap_test_accuracy.png", 1,
                         "viridis" if quality_spec.best == "max" else "viridis_r")
    figures.plot_heatmap(time_table, activations, "training time (s)", out / "heatmap_training_time.png", 1,
                         "magma_r")
    best_lr = write_best_lr(jobs, axes, quality_spec, selection, out) if layout.LR in axes else None
    literature = literature_rows(jobs)
    (out / "report.md").write_text(_index(jobs, frame, selection, axes, sections, missing_cells, best_lr,
                                          literature))
    return out


def literature_rows(jobs):
    """Published MLP results on the runs' dataset(s) (reference/literature_mlp.csv), for context."""
    names = set(jobs["dataset.name"]) if "dataset.name" in jobs else set()
    literature = pd.read_csv(LITERATURE_CSV)
    return literature[literature["dataset"].isin(names)]


def _values(jobs, key):
    if key not in jobs:
        return "None"
    return ", ".join(sorted({label(v) for v in jobs[key]}, key=_number_first))


def _number_first(text):
    """Numbers in numeric order (0.001 before 0.01 before 0.1), then other values as text."""
    try:
        return 0, float(text), ""
    except ValueError:
        return 1, 0.0, text


def _settings(jobs, axes):
    """What produced the runs: each setting's values across the selected runs."""
    machines = {f"{r.cpu or '?'}, {r.cpu_count or '?'} cores, NumPy {r.numpy or '?'}, BLAS {r.blas or '?'}"
                for r in jobs.itertuples()}
    return [*((name, _values(jobs, key)) for name, key in SETTINGS),
            ("axes besides activation x width", ", ".join(axes) or "none"), ("machine", "; ".join(sorted(machines)))]


def _index(jobs, frame, selection, axes, sections, missing_cells, best_lr, literature):
    statuses = frame["status"].value_counts().to_dict()
    lines = [f"# fnn-sweep report: {selection}", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m pipeline.report` "
             f"from the runs MLflow holds ({len(frame)} runs: "
             + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + ").", "",
             "| setting | value |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in _settings(jobs, axes)), ""]
    if axes:
        lines += [f"The runs also differ in {', '.join(axes)}: the tables have one row per value.", ""]
    if frame.groupby(["hidden_neurons", "activation", *axes], dropna=False).size().max() > 1:
        lines += ["Cells pool repeated seeds: mean ± standard deviation (n in the CSV).", ""]
    failed = jobs[jobs["status"] != "FINISHED"]
    lines += [f"## Failed or unfinished runs: {len(failed)}", ""]
    lines += [f"- {run.run_name or run.run_id} ({run.run_id[:8]}): {run.status}: "
              f"{run.failure_reason or 'no reason recorded'}" for run in failed.itertuples()]
    lines += ["" if len(failed) else "None.", "", f"## Missing cells (no finished run): {len(missing_cells)}", ""]
    lines += [f"- {', '.join(cell)}" for cell in sorted(missing_cells)] or ["None."]
    for spec, md, comparison in sections:
        links = f"[CSV]({spec.stem}.csv) · [Markdown]({spec.stem}.md) · [LaTeX]({spec.stem}.tex)"
        if comparison is not None:
            links += f" · [vs published CSV]({spec.stem}_vs_published.csv)"
        lines += ["", f"## {spec.label}", "", links + ". Bold: best in the row.", ""]
        if spec.metric == layout.TRAINING_TIME:
            lines += [f"Seconds inside fit (logging excluded), with {_values(jobs, layout.BLAS_THREADS)} BLAS "
                      "thread(s) per job.", ""]
        lines += [md]
        table1 = spec is sections[0][0]  # the literature and the best lr go beside Table 1
        if table1 and len(literature):
            lines += ["### Published single-hidden-layer MLP results on this dataset: other setups", "",
                      "Context only, not comparable cell by cell: other training sets, epochs, losses and "
                      "preprocessing (from pipeline/report/reference/literature_mlp.csv).", "",
                      "| model | loss | preprocessing | test error (%) | test accuracy (%) | source |",
                      "| --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {r.model} | {r.loss} | {r.preprocessing} | {r.test_error_pct} | "
                      f"{100 - r.test_error_pct:.2f} | {r.source} |" for r in literature.itertuples()]
            lines += [""]
        if table1 and best_lr is not None:
            note, best_md = best_lr
            lines += [f"## {spec.label} at the best learning rate per cell", "",
                      f"[CSV]({BEST_LR_STEM}.csv) · [Markdown]({BEST_LR_STEM}.md) · [LaTeX]({BEST_LR_STEM}.tex) · "
                      "[figure: validation vs lr](val_vs_lr.png).", "", note, "", best_md,
                      "![validation vs learning rate](val_vs_lr.png)", ""]
        if comparison is None:
            continue
        lines += [f"### {spec.label}: ours vs the published study (MNIST, 60k/10k, SGD lr 0.1)", "",
                  "| hidden neurons | activation | ours | published | difference |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r.hidden_neurons} | {r.activation} | {fmt(r.ours, spec.digits)} | {r.published} | "
                  f"{fmt(r.difference, spec.digits)} |" for r in comparison.itertuples()]
    lines += ["", "## Figures", "",
              "- [Loss per epoch, one panel per activation](loss_curves.png) (solid: train, dashed: validation)",
              "- [Table 1's metric vs width](accuracy_vs_width.png)", "- [Training time vs width](time_vs_width.png)",
              "- [Heatmap of Table 1](heatmap_test_accuracy.png)", "- [Heatmap of Table 2](heatmap_training_time.png)",
              "", "![loss curves](loss_curves.png)", "", "![accuracy vs width](accuracy_vs_width.png)", ""]
    return "\n".join(lines)
