"""The benchmarks' Markdown: one column per measured configuration, one row per figure."""

from __future__ import annotations

from collections.abc import Callable, Mapping


def markdown_columns(
    results: Mapping[str, Mapping[str, float]], fmt: Callable[[str, float], str], corner: str = ""
) -> list[str]:
    """``results`` {column: {row: value}} as Markdown table lines, rows in the first column's order;
    ``fmt(row, value)`` writes a cell, ``corner`` heads the row names."""
    lines = [f"| {corner} | " + " | ".join(results) + " |", "| --- |" + " ---: |" * len(results)]
    for key in next(iter(results.values())):
        lines.append(f"| {key} | " + " | ".join(fmt(key, r[key]) for r in results.values()) + " |")
    return lines
