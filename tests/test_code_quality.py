"""The test command checks the code too: ruff's lint and format, mypy's types, and the layering."""

import subprocess
import sys

import pytest

from helpers import REPO

CHECKED = ["conf", "fnn_core", "pipeline", "tests"]


def _run(*command):
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_finds_no_lint_error():
    result = _run("ruff", "check", *CHECKED)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_code_is_formatted_as_ruff_formats_it():
    result = _run("ruff", "format", "--check", *CHECKED)
    assert result.returncode == 0, f"run `ruff format {' '.join(CHECKED)}`:\n{result.stdout[-4000:]}"


@pytest.mark.slow  # about 10 s without its cache
def test_mypy_finds_no_type_error():
    result = _run("mypy")  # files and settings: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


# What each layer may not import, transitively (a fresh interpreter imports the layer): packages, or
# pipeline's own parts above it.
ABOVE_TRACKING = ("pipeline.job", "pipeline.sweep", "pipeline.report")
LAYERS = {
    "fnn_core": ("pipeline", "hydra", "omegaconf", "mlflow", "pandas", "sklearn"),  # a library: NumPy alone
    "pipeline.data": ("hydra", "omegaconf", "mlflow", "pipeline.tracking", *ABOVE_TRACKING),
    "pipeline.tracking": ("hydra", "omegaconf", *ABOVE_TRACKING),
    "pipeline.job": ("pipeline.sweep", "pipeline.report"),  # a job runs the same outside any sweep
    # The command's first step runs before Hydra, MLflow and NumPy are imported (lifecycle, step 1).
    "pipeline.runtime.lifecycle": ("hydra", "omegaconf", "mlflow", "numpy", "pandas"),
    "pipeline.runtime.fork_server": ("hydra", "omegaconf", "mlflow", "numpy", "pandas"),
}


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_nothing_above_it(layer):
    code = (
        "import importlib, pkgutil, sys\n"
        f"package = importlib.import_module({layer!r})\n"
        "for module in pkgutil.walk_packages(getattr(package, '__path__', []), package.__name__ + '.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    imported = result.stdout.split()
    above = sorted({f for f in LAYERS[layer] for name in imported if name == f or name.startswith(f + ".")})
    assert above == [], f"{layer} imports {above}"
