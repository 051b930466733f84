"""Any install works: a built wheel in a fresh venv runs a job, a sweep and a search from a directory outside
the repository."""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from helpers import MLFLOW_DEFAULTS, REPO, mlflow_runs

pytestmark = pytest.mark.slow  # builds a wheel and a venv


@pytest.mark.readme("python3 -m venv .venv && . .venv/bin/activate && pip install -q -e . && python -m pipeline -m")
def test_a_wheel_in_a_fresh_venv_runs_a_job_outside_the_repository(tmp_path):
    source, wheels, venv, elsewhere = (tmp_path / name for name in ("source", "wheels", "venv", "elsewhere"))
    # Built from a copy: a build writes build/ and *.egg-info beside the sources, never into the checkout.
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", "mlflow.db*", "mlartifacts", "outputs", "multirun"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = next(wheels.glob("fnn_sweep-*.whl"))
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    # The wheel's dependencies come from the test's own venv, on a path line after the new venv's
    # site-packages (a path line runs none of that directory's .pth files, so the checkout's
    # editable finder stays out): resolving them again cost 40 s of the suite, and every install of
    # the project (CI's included) resolves the same metadata. What this test checks is the wheel.
    [site] = (venv / "lib").glob("python3*/site-packages")
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere.mkdir()
    dropped = ("FNN_SWEEP_HOME", "PYTHONPATH", "VIRTUAL_ENV", *MLFLOW_DEFAULTS)
    env = {k: v for k, v in os.environ.items() if k not in dropped}

    def installed(*args):  # the venv's python, run from elsewhere, as a user of the wheel would
        return subprocess.run(
            [str(venv / "bin" / "python"), *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
        )

    result = installed("-m", "pipeline", "dataset=digits", "train.epochs=2", "quiet=true")
    assert result.returncode == 0, result.stderr[-3000:]
    # The configs came with the package; the store and outputs went to the working directory.
    assert (elsewhere / "mlflow.db").is_file() and (elsewhere / "outputs").is_dir()
    runs = mlflow_runs(elsewhere)
    assert list(runs["status"]) == ["FINISHED"] and runs["metrics.test_accuracy"].item() > 0.5
    # A parallel sweep: its workers fork from a server that imports the installed package.
    sweep = installed(
        "-m", "pipeline", "-m", "dataset=digits", "train.epochs=2", "model.activation=relu,tanh",
        "model.hidden_neurons=16", "quiet=true",
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    jobs = mlflow_runs(elsewhere)
    jobs = jobs[jobs["tags.mlflow.parentRunId"].notna()]  # the sweep's, not the single run above
    assert len(jobs) == 2 and set(jobs["status"]) == {"FINISHED"}
    imported = installed("-c", "import pipeline; print(pipeline.__file__)")
    assert imported.returncode == 0 and str(venv) in imported.stdout  # the installed copy ran, not the checkout
    # The search sweeper ships in Hydra's plugin namespace, where a wheel's Hydra finds it too.
    searched = installed(
        "-m", "pipeline", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "dataset=digits",
        "train.epochs=1", "model.activation=relu", "model.hidden_neurons=interval(8, 16)", "quiet=true",
        "mlflow.log_model=false",
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr[-3000:]
    assert (elsewhere / "optuna.db").is_file() and "Best trial" in searched.stdout
