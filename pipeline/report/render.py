"""Tables as Markdown and LaTeX: mean ± std per cell, the best cell of each row in bold, missing as —."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.report.tables import label

if TYPE_CHECKING:
    from pipeline.report.tables import TableSpec

MISSING = "—"


def fmt(value: float, digits: int) -> str:
    return MISSING if pd.isna(value) else f"{value:.{digits}f}"


def _cell(row, activation, digits, plus_minus):
    text = fmt(row[activation], digits)
    if f"{activation}_std" in row and row.get(f"{activation}_n", 0) > 1:
        text += f" {plus_minus} {fmt(row[f'{activation}_std'], digits)}"
    return text


def _row_labels(row, axes):
    return [label(row["hidden_neurons"]), *(label(row[a]) for a in axes)]


def markdown_table(table: pd.DataFrame, activations: Sequence[str], axes: Sequence[str], spec: TableSpec) -> str:
    header = ["hidden neurons", *axes, *activations]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for _, row in table.iterrows():
        means = row[activations].astype(float)
        target = means.max() if spec.best == "max" else means.min()
        cells = []
        for activation in activations:
            text = _cell(row, activation, spec.digits, "±")
            if not pd.isna(row[activation]) and row[activation] == target and means.notna().sum() > 1:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(_row_labels(row, axes) + cells) + " |")
    return "\n".join(lines) + "\n"


def latex_table(
    table: pd.DataFrame,
    activations: Sequence[str],
    axes: Sequence[str],
    caption: str,
    spec: TableSpec,
    cell: Callable[[Any, str], str] | None = None,
) -> str:
    """``cell(row, activation)``: a cell's text (default: mean ± std)."""
    cell = cell or (lambda row, a: _cell(row, a, spec.digits, r"$\pm$"))
    columns = ["hidden neurons", *axes, *activations]
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\begin{tabular}{" + "r" * len(columns) + "}",
        r"\hline",
        " & ".join(c.replace("_", r"\_") for c in columns) + r" \\",
        r"\hline",
    ]
    for _, row in table.iterrows():
        cells = [cell(row, a).replace(MISSING, "--") for a in activations]
        lines.append(" & ".join(_row_labels(row, axes) + cells) + r" \\")
    caption = caption.replace("%", r"\%")  # a bare % starts a LaTeX comment
    lines += [r"\hline", r"\end{tabular}", rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"
