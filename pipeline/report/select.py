"""Which runs a report covers: the latest sweep, a named sweep, or every job run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from pipeline.config import result_neutral
from pipeline.errors import InputError
from pipeline.tracking import layout, store

if TYPE_CHECKING:
    from pipeline.tracking.store import Store


class ReportError(InputError):
    """Nothing to report (no such experiment or sweep); the message says what to run."""


def load_runs(
    tracking: Store, experiment_name: str, sweep_id: str | None = None, sweep_runs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The runs of the experiment in ``tracking`` that ``select_jobs(runs, sweep_id)`` needs: a
    ``layout.read_runs`` frame.

    For one sweep (``sweep_id`` None: the latest) that is every parent run, the sweep's own runs and
    the runs it reused; never the whole experiment, which a store of many earlier sweeps makes slow
    (10,000 runs: 15 s). "all" reads every job run. ``sweep_runs``: the named sweep's job runs as
    its launching process just read them (``runs.sweep_jobs``), not read again (1,000 runs: 1.5 s).
    """
    experiment_id = store.find_experiment(tracking.uri, experiment_name)
    if experiment_id is None:
        raise ReportError(f"no experiment '{experiment_name}' in {tracking.shown}; run `python -m pipeline -m` first")
    ids = [experiment_id]
    if sweep_id == "all":
        return layout.read_runs(tracking, ids, layout.tag_is(layout.TAG_ROLE, layout.ROLE_JOB))
    parents = layout.read_runs(tracking, ids, layout.tag_is(layout.TAG_ROLE, layout.ROLE_SWEEP))
    if sweep_id is None:
        if parents.empty:
            return parents
        sweep_id = parents.sort_values("start_time")["sweep_id"].iloc[-1]
    if sweep_runs is None:
        own = layout.read_runs(tracking, ids, layout.tag_is(layout.TAG_SWEEP_ID, sweep_id))
    else:  # the sweep's parent run is among the parents
        own = sweep_runs[sweep_runs["sweep_id"] == sweep_id]
    frames = [parents, own]
    if "reused_run" in own and own["reused_run"].notna().any():
        frames.append(layout.read_runs(tracking, ids, layout.run_id_in(own["reused_run"].dropna().unique())))
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return parents
    return pd.concat(frames).drop_duplicates("run_id").sort_values("start_time", kind="stable").reset_index(drop=True)


def select_jobs(runs: pd.DataFrame, sweep_id: str) -> tuple[pd.DataFrame, str, str]:
    """The job runs to report (oldest first), a description of the selection and its name (the sweep's
    id, or "all": the report's folder).

    sweep_id None: the latest sweep; "all": every job run of the experiment.
    """
    jobs = runs[runs["role"] == layout.ROLE_JOB]
    if sweep_id == "all":
        if jobs.empty:
            raise ReportError("no job run in this experiment yet; run `python -m pipeline -m` first")
        return jobs.reset_index(drop=True), "all runs of the experiment", "all"
    sweeps = runs[runs["role"] == layout.ROLE_SWEEP].sort_values("start_time", ascending=False)
    if sweep_id is None:
        if sweeps.empty:
            raise ReportError(
                "no sweep in this experiment yet; run `python -m pipeline -m`, "
                "or report every run with report.sweep_id=all"
            )
        sweep_id = sweeps["sweep_id"].iloc[0]
    # A job the sweep skipped as already FINISHED counts through the run it reused.
    markers = runs[(runs["role"] == layout.ROLE_REUSED) & (runs["sweep_id"] == sweep_id)]
    selected = jobs[(jobs["sweep_id"] == sweep_id) | jobs["run_id"].isin(markers["reused_run"])]
    if selected.empty:
        known = ", ".join(sweeps["sweep_id"].head(5))
        raise ReportError(f"no runs for sweep '{sweep_id}' (latest sweeps: {known or 'none'})")
    return selected.reset_index(drop=True), f"sweep {sweep_id}", sweep_id


def extra_axes(jobs: pd.DataFrame) -> list[str]:
    """Config keys, besides activation, width and seed, whose value differs between runs."""
    fixed = {layout.ACTIVATION, layout.HIDDEN_NEURONS, layout.SEED, "dataset.dir"}  # where, not what
    return sorted(
        key
        for key in layout.param_columns(jobs)
        if key not in fixed and not result_neutral(key) and jobs[key].nunique(dropna=False) > 1
    )
