"""The default launcher (hydra/launcher=parallel) runs a sweep's jobs as Hydra's joblib launcher does."""

import functools

import pytest
import yaml
from omegaconf import OmegaConf

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


@functools.cache
def _launcher_config(launcher):
    """``hydra.launcher`` as Hydra composes it for ``hydra/launcher=<launcher>`` (once per module)."""
    from hydra import compose, initialize_config_dir

    import pipeline.sweep.grid  # noqa: F401  (n_jobs is ${fnn_sweep_workers:}, its resolver; run alone, no other test imports it)
    from helpers import REPO
    from pipeline.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True).hydra.launcher


def _with(launcher, override):
    """The launcher's config with ``override`` (key=value) merged as Hydra merges an override."""
    key, value = override.split("=", 1)
    config = _launcher_config(launcher).copy()
    OmegaConf.update(config, key.removeprefix("hydra.launcher."), yaml.safe_load(value), merge=True)
    return config


@pytest.mark.parametrize(
    "launcher, override, message",
    [
        ("parallel", "hydra.launcher.pre_dispatch=foo", "hydra.launcher.pre_dispatch=foo is not valid: must be 'all'"),
        ("parallel", "hydra.launcher.pre_dispatch=n_jobs-5", "hydra.launcher.pre_dispatch=n_jobs-5 is not valid"),
        ("parallel", "hydra.launcher.pre_dispatch=0", "hydra.launcher.pre_dispatch=0 is not valid"),
        ("parallel", "hydra.launcher.batch_size=0", "hydra.launcher.batch_size=0 is not valid: batch_size must be"),
        ("parallel", "hydra.launcher.max_nbytes=xyz", "hydra.launcher.max_nbytes=xyz is not valid: must be a size"),
        ("parallel", "hydra.launcher.mmap_mode=rw", "hydra.launcher.mmap_mode=rw is not valid: must be one of r+, r"),
        ("parallel", "hydra.launcher.prefer=nope", "hydra.launcher.prefer=nope is not valid"),
        ("parallel", "hydra.launcher.require=sharedmem", "hydra.launcher.require=sharedmem is not valid: the jobs run"),
        ("parallel", "hydra.launcher.timeout=0", "hydra.launcher.timeout=0.0 is not valid: must be a number of sec"),
        ("joblib", "hydra.launcher.batch_size=-2", "hydra.launcher.batch_size=-2 is not valid"),  # Hydra's, too
    ],
)
def test_a_bad_joblib_setting_is_one_line_before_any_run(launcher, override, message):
    """Settings joblib itself checks only when it launches (pre_dispatch, timeout) or maps an array
    (mmap_mode) are checked with the rest in the pre-flight, each naming its key."""
    from pipeline.constraints import ConfigError
    from pipeline.runtime import workers

    workers.check_launcher(_launcher_config(launcher))  # the defaults pass
    with pytest.raises(ConfigError) as raised:
        workers.check_launcher(_with(launcher, override))
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "override", ["hydra.launcher.pre_dispatch=3*n_jobs", "hydra.launcher.pre_dispatch=all", "hydra.launcher.timeout=60"]
)
def test_good_joblib_settings_pass_the_check(override):
    from pipeline.runtime import workers

    config = _with("parallel", override)
    workers.check_launcher(config)
    assert workers.joblib_settings(config)["backend"] == "loky"


@pytest.mark.slow  # a real sweep whose job outlasts joblib's timeout
@pytest.mark.parametrize("launcher", ["parallel", "joblib"])  # ours, the default, and Hydra's own
def test_a_job_past_the_timeout_ends_the_sweep_in_one_line_and_its_runs_killed(tmp_path, launcher):
    result = run_pipeline(
        tmp_path,
        "-m",
        f"hydra/launcher={launcher}",
        "dataset=digits",
        "train.epochs=1000000",
        "model.activation=relu,tanh,sigmoid",
        "model.hidden_neurons=8",
        "hydra.launcher.n_jobs=2",
        "hydra.launcher.timeout=2",
        "mlflow.log_model=false",
        "quiet=true",
    )
    timeout = "hydra.launcher.timeout=2 s" if launcher == "parallel" else "hydra.launcher.timeout"
    line = f"a job ran longer than {timeout}, and joblib stopped the sweep"
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [f"error: {line}; raise the timeout (or null: no limit)"], (
        result.stderr[-3000:]
    )
    runs = mlflow_runs(tmp_path)
    parent = runs[runs["tags.fnn_sweep.role"] == "sweep"]
    assert list(parent["status"]) == ["FAILED"] and line in parent["tags.failure_reason"].item()
    jobs = jobs_of(runs)
    assert len(jobs) == 2 and set(jobs["status"]) == {"KILLED"}  # the third never started
    assert "the same command resumes it" in result.stdout
