"""README cannot rot: every command in its code blocks is run by a test.

A test that runs a README command says so with ``@pytest.mark.readme("<the command as README spells it>")``;
the fast check below matches README's commands against those declarations, both ways. The commands no
other test needs run here, for real, narrowed to one quick job on the test digits.
"""

import ast
import re
import shlex
from pathlib import Path

import pytest

from helpers import FAST, REPO, jobs_of, mlflow_runs, run_pipeline

TESTS = Path(__file__).resolve().parent


def readme_commands():
    """Every command line of README's bash blocks, comments and continuations folded."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", "", block).splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith(("#", "export ")):  # exports are settings, run by their tests
                commands.append(" ".join(line.split()))
    return commands


def declared_commands():
    """{command: [test names]} from every ``pytest.mark.readme(...)`` in tests/."""
    declared = {}
    for path in TESTS.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        # ``readme(*TABLE)``: the keys of a module-level dict literal.
        tables = {
            target.id: [ast.literal_eval(key) for key in node.value.keys]
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Dict)
            and all(isinstance(key, ast.Constant) for key in node.value.keys)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("mark.readme"):
                for arg in node.args:
                    found = tables[arg.value.id] if isinstance(arg, ast.Starred) else [ast.literal_eval(arg)]
                    for command in found:
                        declared.setdefault(" ".join(command.split()), []).append(path.name)
    return declared


def test_every_readme_command_is_run_by_a_test():
    commands, declared = readme_commands(), declared_commands()
    assert len(commands) > 20, "README's code blocks were not found"
    untested = [c for c in commands if c not in declared]
    assert not untested, f"README commands no test runs (add @pytest.mark.readme): {untested}"
    stale = [c for c in declared if c not in commands]
    assert not stale, f"tests declare commands README no longer has: {stale}"


@pytest.mark.readme('python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[test]" && python -m pytest')
def test_the_ci_script_runs_readmes_test_command_word_for_word():
    setup_and_test = next(c for c in readme_commands() if c.endswith("python -m pytest"))
    ci_lines = [" ".join(line.split()) for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert setup_and_test in ci_lines


ONE_JOB = ("model.activation=relu", "model.hidden_neurons=32", "train.epochs=1")  # narrows any grid to one job

SEARCH = ("hydra.sweeper.n_trials=2", "model.hidden_neurons=interval(8, 16)", "train.epochs=1")
JOBS_OF_A_SEARCH = 2

# README command -> what the test adds: a README sweep narrowed to one quick job on the test digits.
# (Other README commands run in the tests that need them: see their readme marks.)
PIPELINE_COMMANDS = {
    "python -m pipeline -m train.seed=0,1,2": ONE_JOB,
    "python -m pipeline -m +experiment=table1_published": ONE_JOB,
    "python -m pipeline -m hydra.launcher.n_jobs=4": ONE_JOB,
    "python -m pipeline -m compute.blas_threads=2": ONE_JOB,
    "python -m pipeline -m +experiment=lr_study_published train.seed=0,1,2": (*ONE_JOB, "optimizer.lr=0.03,0.3"),
    # A search, narrowed to two quick trials.
    "python -m pipeline -m hydra/sweeper=optuna hydra.sweeper.n_trials=40 'optimizer.lr=tag(log, interval(1e-3, 1))' "
    "'model.hidden_neurons=interval(16, 512)' 'model.activation=choice(relu,tanh,sigmoid)' "
    "'model.hidden_layers=range(1,4)' train.batch_size=32,64,128": SEARCH,
    "python -m pipeline -m hydra/sweeper=optuna hydra.sweeper.pruner=median 'optimizer.lr=tag(log, interval(1e-3, 1))' "
    "model.activation=relu,tanh": (*SEARCH, "train.epochs=2"),
}
JOBS = {
    "python -m pipeline -m train.seed=0,1,2": 3,
    "python -m pipeline -m +experiment=lr_study_published train.seed=0,1,2": 6,
}


@pytest.mark.slow
@pytest.mark.readme(*PIPELINE_COMMANDS)
@pytest.mark.parametrize("command", PIPELINE_COMMANDS)
def test_readme_pipeline_commands_run(command, home, mnist_dir):
    args = shlex.split(command)[3:] + [
        *PIPELINE_COMMANDS[command],
        f"dataset.dir={mnist_dir}",
        "quiet=true",
        "mlflow.log_model=false",
    ]
    result = run_pipeline(home, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = jobs_of(mlflow_runs(home))
    searched = "hydra/sweeper=optuna" in command
    assert len(jobs) == (JOBS_OF_A_SEARCH if searched else JOBS.get(command, 1)) and set(jobs["status"]) == {"FINISHED"}
    if searched:  # every trial a child run tagged with its study, which optuna.db keeps beside mlflow.db
        assert jobs["tags.fnn_sweep.trial"].notna().all() and (home / "optuna.db").is_file()
    if "blas_threads=2" in command:
        assert set(jobs["params.compute.blas_threads"]) == {"2"}
    if "published" in command:
        assert set(jobs["params.batch_size"]) == {"1"} and set(jobs["params.model.init"]) == {"normal"}
    if "lr_study" in command:
        assert (home / "reports" / "latest" / "table1_best_lr.csv").is_file()  # lr is an axis of the preset's grid


@pytest.mark.slow
@pytest.mark.readme("python -m pipeline -m dataset=fashion_mnist")
def test_readme_fashion_mnist_sweep(home):
    from pipeline.data import load_dataset
    from pipeline.data.errors import DataError

    try:
        load_dataset({"name": "fashion_mnist"}, 0.1, 0)
    except DataError as exc:
        pytest.skip(f"Fashion-MNIST is not here ({exc}); apt-get install -y dataset-fashion-mnist")
    result = run_pipeline(home, "-m", "dataset=fashion_mnist", *ONE_JOB, *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(jobs_of(mlflow_runs(home))["params.dataset.name"]) == {"fashion_mnist"}


@pytest.mark.slow
@pytest.mark.readme("python -m pipeline --cfg job")
def test_readme_cfg_command_prints_the_composed_config(home):
    result = run_pipeline(home, "--cfg", "job")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "activation: relu" in result.stdout and "hidden_neurons: 128" in result.stdout
