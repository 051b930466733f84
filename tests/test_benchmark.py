"""The benchmark command runs and writes its table (timings themselves are not asserted)."""

import pytest

from helpers import REPO, run_pipeline

pytestmark = pytest.mark.slow  # the real benchmark command


def test_benchmark_writes_a_row_per_config(tmp_path, mnist_dir):
    out = tmp_path / "benchmark.md"
    result = run_pipeline(tmp_path, "--epochs", "1", "--repeats", "1", "--hidden", "8", "16", "--activations",
                          "relu", "tanh", "--no-torch", "--data-dir", str(mnist_dir), "--out", str(out),
                          module="pipeline.benchmark")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith(("| relu", "| tanh"))]
    assert len(rows) == 4
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        ours, sklearn, ratio = float(cells[2]), float(cells[3]), float(cells[4].rstrip("x"))
        assert ours > 0 and abs(ratio - sklearn / ours) < 0.03 * ratio
    assert f"IDX files in {mnist_dir}" in out.read_text()
    assert not (REPO / "benchmark.md").exists()


def test_benchmark_without_data_is_one_line(tmp_path):
    result = run_pipeline(tmp_path, "--data-dir", str(tmp_path), module="pipeline.benchmark")
    assert result.returncode == 2 and result.stderr.startswith("error: dataset.dir=")
