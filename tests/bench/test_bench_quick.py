"""Smoke test of the benchmark suite: `python -m bench --quick` runs and prints every figure's row.

Not a timed test: the values are not checked, only that the suite ran against a real platform.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

EXPECTED_ROWS = (
    "P1 baseline: bare aiohttp hop, c=1",
    "P1 warm overhead p50, route, python",
    "P1 warm overhead p99, route, python",
    "P1 warm overhead p50, invoke API, python",
    "P1 warm overhead p50, route, node",
    "P2 warm throughput c=1, route python",
    "P2 warm throughput c=8, route python",
    "P2 warm throughput c=32, route python",
    "P3b cold start, median of",
    "P3b init duration (REPORT line), median",
    "P4 burst from zero, N=10,",
    "P4 burst from zero, N=50,",
    "P6 `fnctl deploy examples/hello-python` -> first 2xx",
    "controller RSS with 0 idle warm tasks",
    "controller RSS with 20 idle warm tasks",
    "PLACE placement N=64, 10,000 functions",
)


@pytest.mark.docker
@pytest.mark.timeout(600)
def test_quick_mode_prints_a_table_with_every_figure(docker_images: None, tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, f"bench failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}"
    table = out.read_text()
    assert table.strip() in done.stdout  # --out writes the table that was printed
    missing = [row for row in EXPECTED_ROWS if f"| {row}" not in table]
    assert not missing, f"rows missing from the table: {missing}\n{table}"
    assert "| ERROR |" not in table
    assert "### wrk runs" in table and "machine: cores" in table
