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


# Which top-level packages each layer may import, transitively (a fresh interpreter imports the layer).
LAYERS = {
    "fnn_core": ("pipeline", "hydra", "omegaconf", "mlflow", "pandas", "sklearn"),  # a library: NumPy alone
    "pipeline.data": ("hydra", "omegaconf"),
    "pipeline.tracking": ("hydra", "omegaconf"),
}


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_nothing_above_it(layer):
    code = (
        "import importlib, pkgutil, sys\n"
        f"package = importlib.import_module({layer!r})\n"
        "for module in pkgutil.walk_packages(getattr(package, '__path__', []), package.__name__ + '.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    imported = set(result.stdout.split())
    assert imported.isdisjoint(LAYERS[layer]), f"{layer} imports {sorted(imported & set(LAYERS[layer]))}"
