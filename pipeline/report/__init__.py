"""Reporting stage: read runs back from MLflow and write Tables 1 and 2, figures and an index.

select (which runs) -> tables (frames) -> render (Markdown, LaTeX) and figures -> index (report.md).
It reads only what MLflow holds, sorts numeric axes as numbers, and writes
every file in a fixed order and format, so a regenerated report diffs cleanly.
"""

from pipeline.report.index import write_report
from pipeline.report.register import register_best_model
from pipeline.report.select import ReportError

__all__ = ["ReportError", "register_best_model", "write_report"]
