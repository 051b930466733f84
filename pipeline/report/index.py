"""The whole report: tables, figures and ``report.md``, the index that says what produced them."""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.report import figures
from pipeline.report.best_lr import FIGURE as BEST_LR_FIGURE
from pipeline.report.best_lr import STEM as BEST_LR_STEM
from pipeline.report.best_lr import write_best_lr
from pipeline.report.early_stopping import grid_pruned, write_early_stopping_section
from pipeline.report.publish import check_out_dir, report_folder
from pipeline.report.render import fmt, latex_table, markdown_table
from pipeline.report.search import trials_of, write_search_section
from pipeline.report.select import ReportError, extra_axes, load_runs, select_jobs
from pipeline.report.tables import cell_frame, label, ordered_activations, published_comparison, summarize, table_specs
from pipeline.runtime.forked_share import run_shared
from pipeline.tracking import layout

if TYPE_CHECKING:
    from pipeline.tracking.store import Store

LITERATURE_CSV = Path(__file__).resolve().parent / "reference" / "literature_mlp.csv"
SETTINGS = (
    ("dataset", "dataset.name"),
    ("epochs", "train.epochs"),
    ("batch size", "train.batch_size"),
    ("optimizer", "optimizer.name"),
    ("learning rate", layout.LR),
    ("momentum", "optimizer.momentum"),
    ("init", "model.init"),
    ("hidden layers", "model.hidden_layers"),
    ("validation fraction", "train.val_fraction"),
    ("seeds", layout.SEED),
    ("BLAS threads per job", layout.BLAS_THREADS),
)


# The figures' drawing times, relative (measured: loss curves 0.3-0.5 s, the confusion matrix and
# validation vs lr 0.2-0.3 s, the others about 0.1 s), to share them evenly between two processes.
FIGURE_COSTS = {"loss_curves.png": 3.0, "confusion_matrix_best.png": 2.0, BEST_LR_FIGURE: 2.0}
PUBLISHED_DATASET = "mnist"  # the published tables are MNIST's; other datasets get no comparison


def write_report(
    tracking: Store,
    experiment_name: str,
    sweep_id: str,
    out_dir: str | Path,
    sweep_runs: pd.DataFrame | None = None,
) -> Path:
    """Write every table, figure and the index for the selected runs of ``tracking`` (a
    ``tracking.store.Store``) into ``out_dir/<sweep id or all>/``,
    whole or not at all (``pipeline.report.publish``); returns that folder.

    ``sweep_runs``: the job runs of sweep ``sweep_id`` when the caller has just read them
    (``runs.sweep_jobs``, as a sweep's end does), so they are not read again.

    Raises
    ------
    ReportError
        ``out_dir`` cannot hold a report, or the selection has no finished run to report.
    """
    check_out_dir(out_dir)  # before reading any run
    runs = load_runs(tracking, experiment_name, sweep_id, sweep_runs)
    jobs, selection, name = select_jobs(runs, sweep_id)
    if not (jobs["status"] == "FINISHED").any():
        counts = ", ".join(f"{n} {s}" for s, n in sorted(jobs["status"].value_counts().items()))
        raise ReportError(f"{selection} has no finished run to report ({counts}); nothing written")
    with report_folder(out_dir, name) as out:
        _write_files(tracking, jobs, selection, out, runs[runs["role"] == layout.ROLE_REUSED])
    return Path(out_dir).expanduser() / name


def _write_files(tracking, jobs, selection, out, markers):
    trials = trials_of(jobs, markers)
    # A pruned run stopped early: its scores are partial, so table cells leave it out (the search or
    # early-stopping section lists it, with the epochs pruning saved). The axes are the grid's, pruned
    # values included: a cell's best lr is chosen among the values that trained to the end.
    pruned = jobs["pruned"].notna() if "pruned" in jobs else pd.Series(False, index=jobs.index)
    axes = extra_axes(jobs[~pruned | grid_pruned(jobs)])
    early_stopping = write_early_stopping_section(jobs, axes, out)
    stopped_cells = {
        (label(r[layout.HIDDEN_NEURONS]), r[layout.ACTIVATION], *(label(r[x]) for x in axes))
        for _, r in jobs[grid_pruned(jobs)].iterrows()
    }
    jobs = jobs[~pruned].reset_index(drop=True)
    specs = table_specs(jobs)
    frame = cell_frame(jobs, axes, specs)
    compare = set(jobs["dataset.name"]) == {PUBLISHED_DATASET} if "dataset.name" in jobs else False

    sections, missing_cells, tables = [], set(), []
    for spec in specs:
        table, activations = summarize(frame, spec, axes)
        tables.append(table)
        with np.errstate(over="ignore"):  # rounding an axis of huge values (lr 1e308) overflows harmlessly
            table.round(6).to_csv(out / f"{spec.stem}.csv", index=False)
        md = markdown_table(table, activations, axes, spec)
        (out / f"{spec.stem}.md").write_text(f"# {spec.label}: activation x hidden neurons ({selection})\n\n{md}")
        (out / f"{spec.stem}.tex").write_text(
            latex_table(table, activations, axes, f"{spec.label} ({selection})", spec)
        )
        comparison = None
        if spec.published_metric and compare:
            comparison = published_comparison(table, activations, spec)
            comparison.to_csv(out / f"{spec.stem}_vs_published.csv", index=False)
        sections.append((spec, md, comparison))
        for _, row in table.iterrows():
            missing_cells.update(
                (label(row["hidden_neurons"]), a, *(label(row[x]) for x in axes))
                for a in activations
                if pd.isna(row[a])
            )
    missing_cells -= stopped_cells  # stopped on purpose: the early-stopping section says so

    activations = ordered_activations(frame["activation"])
    (quality, time_table), quality_spec = tables, specs[0]
    histories = figures.loss_histories(tracking.client, frame, jobs["run_id"])  # store reads before drawing
    plots = [  # file, what it shows, how to draw it (returns why not, or None)
        (
            "loss_curves.png",
            "Loss per epoch, one panel per activation (solid: train, dashed: validation)",
            lambda path: figures.plot_loss_curves(histories, frame, jobs["run_id"], activations, path),
        ),
        (
            "accuracy_vs_width.png",
            "Table 1's metric vs width",
            lambda path: figures.plot_vs_width(quality, activations, quality_spec.label, path),
        ),
        (
            "time_vs_width.png",
            "Training time vs width",
            lambda path: figures.plot_vs_width(time_table, activations, "training time (s)", path, log_y=True),
        ),
        (
            "heatmap_test_accuracy.png",
            "Heatmap of Table 1",
            lambda path: figures.plot_heatmap(
                quality,
                activations,
                quality_spec.label,
                path,
                1,
                "viridis" if quality_spec.best == "max" else "viridis_r",
            ),
        ),
        (
            "heatmap_training_time.png",
            "Heatmap of Table 2",
            lambda path: figures.plot_heatmap(time_table, activations, "training time (s)", path, 1, "magma_r"),
        ),
    ]
    if quality_spec.metric == layout.TEST_ACCURACY:  # classification runs keep a confusion matrix
        best = figures.best_confusion_matrix(tracking.client, jobs)
        plots.append(
            (
                "confusion_matrix_best.png",
                "The test confusion matrix of the run chosen on validation",
                lambda path: figures.plot_confusion_matrix(best, path),
            )
        )
    best_lr = write_best_lr(jobs, axes, quality_spec, selection, out) if layout.LR in axes else None
    if best_lr is not None:
        plots.append((BEST_LR_FIGURE, "", best_lr[2]))
    # The figures are drawn on two cores where the machine has them (about 1 s of Matplotlib on one).
    reasons = run_shared(
        [functools.partial(draw, out / file) for file, _, draw in plots],
        [FIGURE_COSTS.get(file, 1.0) for file, _, _ in plots],
    )
    drawn = [(file, title, reason) for (file, title, _), reason in zip(plots, reasons) if file != BEST_LR_FIGURE]
    if best_lr is not None:
        best_lr = (*best_lr[:2], reasons[-1])
    literature = literature_rows(jobs)
    search = write_search_section(trials, out) + early_stopping
    (out / "report.md").write_text(
        _index(jobs, frame, selection, axes, sections, missing_cells, best_lr, literature, drawn, search)
    )


def literature_rows(jobs: pd.DataFrame) -> pd.DataFrame:
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
    machines = {
        f"{r.cpu or '?'}, {r.cpu_count or '?'} cores, NumPy {r.numpy or '?'}, BLAS {r.blas or '?'}"
        for r in jobs.itertuples()
    }
    return [
        *((name, _values(jobs, key)) for name, key in SETTINGS),
        ("axes besides activation x width", ", ".join(axes) or "none"),
        ("machine", "; ".join(sorted(machines))),
    ]


def _index(jobs, frame, selection, axes, sections, missing_cells, best_lr, literature, drawn, search):
    statuses = frame["status"].value_counts().to_dict()
    lines = [
        f"# fnn-sweep report: {selection}",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m pipeline.report` "
        f"from the runs MLflow holds ({len(frame)} runs: "
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + ").",
        "",
        "| setting | value |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in _settings(jobs, axes)),
        "",
    ]
    if axes:
        lines += [f"The runs also differ in {', '.join(axes)}: the tables have one row per value.", ""]
    if frame.groupby(["hidden_neurons", "activation", *axes], dropna=False).size().max() > 1:
        lines += ["Cells pool repeated seeds: mean ± standard deviation (n in the CSV).", ""]
    failed = jobs[jobs["status"] != "FINISHED"]
    lines += [f"## Failed or unfinished runs: {len(failed)}", ""]
    lines += [
        f"- {run.run_name or run.run_id} ({run.run_id[:8]}): {run.status}: {run.failure_reason or 'no reason recorded'}"
        for run in failed.itertuples()
    ]
    lines += ["" if len(failed) else "None.", "", f"## Missing cells (no finished run): {len(missing_cells)}", ""]
    lines += [f"- {', '.join(cell)}" for cell in sorted(missing_cells)] or ["None."]
    for spec, md, comparison in sections:
        links = f"[CSV]({spec.stem}.csv) · [Markdown]({spec.stem}.md) · [LaTeX]({spec.stem}.tex)"
        if comparison is not None:
            links += f" · [vs published CSV]({spec.stem}_vs_published.csv)"
        lines += ["", f"## {spec.label}", "", links + ". Bold: best in the row.", ""]
        if spec.metric == layout.TRAINING_TIME:
            lines += [
                f"Seconds inside fit (logging excluded), with {_values(jobs, layout.BLAS_THREADS)} BLAS "
                "thread(s) per job.",
                "",
            ]
        lines += [md]
        table1 = spec is sections[0][0]  # the literature and the best lr go beside Table 1
        if table1 and len(literature):
            lines += [
                "### Published single-hidden-layer MLP results on this dataset: other setups",
                "",
                "Context only, not comparable cell by cell: other training sets, epochs, losses and "
                "preprocessing (from pipeline/report/reference/literature_mlp.csv).",
                "",
                "| model | loss | preprocessing | test error (%) | test accuracy (%) | source |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            lines += [
                f"| {r.model} | {r.loss} | {r.preprocessing} | {r.test_error_pct} | "
                f"{100 - r.test_error_pct:.2f} | {r.source} |"
                for r in literature.itertuples()
            ]
            lines += [""]
        if table1 and best_lr is not None:
            note, best_md, not_drawn = best_lr
            figure = (
                "[figure: validation vs lr](val_vs_lr.png)"
                if not_drawn is None
                else f"no figure of validation vs lr: {not_drawn}"
            )
            lines += [
                f"## {spec.label} at the best learning rate per cell",
                "",
                f"[CSV]({BEST_LR_STEM}.csv) · [Markdown]({BEST_LR_STEM}.md) · [LaTeX]({BEST_LR_STEM}.tex) · {figure}.",
                "",
                note,
                "",
                best_md,
            ]
            lines += ["![validation vs learning rate](val_vs_lr.png)", ""] if not_drawn is None else []
        if comparison is None:
            continue
        lines += [
            f"### {spec.label}: ours vs the published study (MNIST, 60k/10k, SGD lr 0.1)",
            "",
            "| hidden neurons | activation | ours | published | difference |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r.hidden_neurons} | {r.activation} | {fmt(r.ours, spec.digits)} | {r.published} | "
            f"{fmt(r.difference, spec.digits)} |"
            for r in comparison.itertuples()
        ]
    lines += ["", *search] if search else []
    lines += ["", "## Figures", ""]
    lines += [
        f"- [{title}]({file})" if reason is None else f"- {title}: not drawn, {reason}" for file, title, reason in drawn
    ]
    lines += [""]
    for file, title, reason in drawn[:2]:  # the two a reader looks at first
        if reason is None:
            lines += [f"![{title}]({file})", ""]
    return "\n".join(lines)
