"""A sweep: the Hydra callback around a multirun and what it relies on.

- ``callback``: ``SweepTracking``, the sweep's parent run from pre-flight to summary and report;
- ``preflight``: every check made before any run exists;
- ``grid``: the jobs as the grid sweeper expands them, and the parallel launcher's worker count;
- ``progress``: the sweep's progress, read from the store.
"""
