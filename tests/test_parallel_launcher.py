"""The default launcher (hydra/launcher=parallel) runs a sweep's jobs as Hydra's joblib launcher does."""

import pytest
import yaml

from helpers import FAST, jobs_of, mlflow_runs, run_pipeline

SWEEP = ("dataset=digits", "train.epochs=1", "model.activation=relu,tanh", "model.hidden_neurons=8,16,32", *FAST)


def test_the_launcher_is_registered_where_hydra_looks():
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    from pipeline.__main__ import register_sweeper

    register_sweeper()
    names = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Launcher)}
    assert "hydra_plugins.fnn_sweep.parallel_launcher.ParallelLauncher" in names


def _job_files(sweep_dir):
    """{job number: (its overrides, its task config, its Hydra config less what differs by sweep)}."""
    jobs = {}
    for job_dir in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        read = lambda name: yaml.safe_load((job_dir / ".hydra" / name).read_text())  # noqa: B023, E731
        hydra = read("hydra.yaml")["hydra"]
        for key in ("sweep", "run", "launcher"):
            hydra.pop(key)
        hydra["runtime"].pop("output_dir")
        hydra["overrides"]["hydra"] = [o for o in hydra["overrides"]["hydra"] if not o.startswith("hydra/launcher")]
        hydra["runtime"]["choices"].pop("hydra/launcher")
        jobs[int(job_dir.name)] = (read("overrides.yaml"), read("config.yaml"), hydra)
    return jobs


@pytest.mark.slow  # two real sweeps
def test_jobs_numbers_files_and_runs_are_the_joblib_launchers(tmp_path):
    homes = {launcher: tmp_path / launcher for launcher in ("parallel", "joblib")}
    for launcher, home in homes.items():
        result = run_pipeline(home, "-m", f"hydra/launcher={launcher}", "hydra.launcher.n_jobs=2", *SWEEP)
        assert result.returncode == 0, result.stderr[-3000:]
        # Hydra's joblib launcher's own lines, word for word.
        assert "Joblib.Parallel(n_jobs=2,backend=loky," in result.stderr + result.stdout
        assert "\t#5 : model.hidden_neurons=32 model.activation=tanh" in result.stderr + result.stdout
        jobs = jobs_of(mlflow_runs(home))
        assert len(jobs) == 6 and set(jobs["status"]) == {"FINISHED"}
        assert jobs["metrics.test_accuracy"].between(0.3, 1.0).all()  # learned something

    [parallel_dir] = (homes["parallel"] / "multirun").glob("*/*")
    [joblib_dir] = (homes["joblib"] / "multirun").glob("*/*")
    parallel, joblib = _job_files(parallel_dir), _job_files(joblib_dir)
    assert sorted(parallel) == list(range(6))
    for number in parallel:  # the same job under the same number, with the same configs
        assert parallel[number][0] == joblib[number][0]
        assert parallel[number][1] == joblib[number][1]
        assert parallel[number][2] == joblib[number][2], number
