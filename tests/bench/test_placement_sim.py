"""The placement simulation, run small: its rows, its table and its bench figure."""

from __future__ import annotations

import pytest

from bench.placement_sim import main, placement, render, simulate
from bench.report import PASS, Report


def test_small_simulation_shows_minimal_movement_near_1_over_n() -> None:
    rows = simulate((1, 2, 4, 8), functions=2000)
    assert [r.nodes for r in rows] == [1, 2, 4, 8]
    for r in rows:
        assert r.minimal, r
        assert r.join_moved == pytest.approx(1 / (r.nodes + 1), abs=0.05)
        assert 1.0 <= r.max_over_mean < 1.3
    one = rows[0]
    assert one.max_over_mean == 1.0 and one.leave_moved is None and one.leave_expected is None
    for r in rows[1:]:
        assert r.leave_moved == pytest.approx(1 / r.nodes, abs=0.05)


def test_table_and_bench_rows() -> None:
    table = render(simulate((1, 3), functions=300))
    assert table.splitlines()[0].startswith("| nodes | functions | max/mean | join moves |")
    assert "| 1 | 300 | 1.000 |" in table and "| n/a | n/a | yes |" in table
    report = Report("python -m bench", "quick", {})
    placement(report)
    assert [r.figure for r in report.rows][-1] == "PLACE placement N=64, 10,000 functions"
    assert all(r.verdict == PASS for r in report.rows)


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--nodes", "2,3", "--functions", "100"])
    assert "| 3 | 100 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--nodes", "0"])
