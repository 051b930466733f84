"""Speed benchmarks, run from the project's root (``python -m benchmarks.NAME``); each writes a report
under reports/. Not part of the installed package: they measure it."""
