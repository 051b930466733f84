"""The test command checks the code too: ruff's lint and format, mypy's types, and the layering."""

import ast
import subprocess
import sys

import pytest

from helpers import REPO

CHECKED = ["benchmarks", "conf", "fnn_core", "pipeline", "tests"]


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


def _unannotated(path):
    """Public functions and methods of ``path`` with a parameter or the return not annotated."""
    found = []

    def visit(node, prefix, in_class):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                visit(child, f"{prefix}{child.name}.", True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if child.name.startswith("_") and child.name not in ("__init__", "__call__"):
                    continue
                params = [*child.args.posonlyargs, *child.args.args, *child.args.kwonlyargs]
                if in_class and params and params[0].arg in ("self", "cls"):
                    params = params[1:]
                params += [a for a in (child.args.vararg, child.args.kwarg) if a is not None]
                no_return = child.returns is None and child.name != "__init__"
                if no_return or any(a.annotation is None for a in params):
                    found.append(f"{path.relative_to(REPO)}:{child.lineno} {prefix}{child.name}")

    visit(ast.parse(path.read_text()), "", False)
    return found


def test_every_public_function_is_annotated():
    """mypy checks the bodies of annotated functions only: the public API is all of them."""
    sources = [p for package in ("fnn_core", "pipeline", "benchmarks") for p in sorted((REPO / package).rglob("*.py"))]
    assert [name for path in sources for name in _unannotated(path)] == []


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


@pytest.fixture(scope="module")
def imported_by_layer():
    """{layer: the modules a fresh interpreter has after importing the layer and all its modules}: one
    interpreter per layer, all at once (each takes 0.1-2 s, most of it imports)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "package = importlib.import_module(sys.argv[1])\n"
        "for module in pkgutil.walk_packages(getattr(package, '__path__', []), package.__name__ + '.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    processes = {
        layer: subprocess.Popen([sys.executable, "-c", code, layer], cwd=REPO, stdout=subprocess.PIPE, text=True)
        for layer in LAYERS
    }
    imported = {layer: process.communicate(timeout=300)[0].split() for layer, process in processes.items()}
    assert all(process.returncode == 0 for process in processes.values())
    return imported


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_nothing_above_it(layer, imported_by_layer):
    imported = imported_by_layer[layer]
    above = sorted({f for f in LAYERS[layer] for name in imported if name == f or name.startswith(f + ".")})
    assert imported and above == [], f"{layer} imports {above}"
