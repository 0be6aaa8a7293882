"""The bench's pure parts: wrk's summary line, REPORT lines, renamed specs, the table, burst counts."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.cli import parse_args
from bench.cold import init_duration_ms
from bench.loadgen import BurstResult, ClientStats
from bench.report import FLAG, MISS, PASS, Report, Row, verdict
from bench.target import PlatformError, renamed_spec
from bench.wrk import WrkError, WrkRun, WrkSeries, parse_wrk_output

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8080/
  Latency Distribution
     50%  110.00us
BENCH-JSON {"requests":2000,"duration_us":2000000,"connect":0,"read":1,"write":0,"status":3,\
"timeout":2,"p50_us":110.5,"p90_us":250.0,"p99_us":1200.0,"max_us":5000.0}
"""


def test_wrk_summary_line_becomes_a_run_with_its_errors() -> None:
    run = parse_wrk_output(WRK_OUTPUT)
    assert run.rps == 1000
    assert (run.p50_ms, run.p90_ms, run.p99_ms) == (0.1105, 0.25, 1.2)
    assert run.non_2xx == 3 and run.socket_errors == 3 and run.has_errors


def test_wrk_output_without_summary_is_an_error() -> None:
    with pytest.raises(WrkError, match="no summary line"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def _run(p50: float, errors: int = 0) -> WrkRun:
    return WrkRun(1000, 1.0, p50, p50 * 2, p50 * 3, non_2xx=errors, socket_errors=0)


def test_series_uses_medians_and_names_the_runs_with_errors() -> None:
    series = WrkSeries("route", 1, (_run(1.0), _run(9.0, errors=4), _run(2.0)))
    assert series.p50_ms == 2.0
    assert series.runs_with_errors == [2]
    assert "run 2: non-2xx 4" in series.error_note()


def test_a_run_with_errors_is_flagged_even_when_fast() -> None:
    assert verdict(True) == PASS
    assert verdict(False) == MISS
    assert verdict(True, "run 1: non-2xx 1") == FLAG


def test_report_lists_every_run_and_flags_errors() -> None:
    report = Report("python -m bench", "quick", {"cores": "2"})
    report.add(Row("P1 x", "1 ms", verdict=PASS))
    report.series.append(WrkSeries("route", 1, (_run(1.0), _run(1.0, errors=2))))
    table = report.render()
    assert "| P1 x | 1 ms |" in table
    assert table.count("| route | 1 |") == 2
    assert "ERRORS" in table


def test_init_duration_comes_from_the_report_line() -> None:
    lines = [
        "START RequestId: r Version: $LATEST",
        "REPORT RequestId: r\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\t"
        "Init Duration: 291.52 ms",
    ]
    assert init_duration_ms(lines) == 291.52
    assert init_duration_ms(["REPORT RequestId: r\tDuration: 1.00 ms"]) is None


def test_renamed_spec_renames_function_and_routes() -> None:
    spec = "name: bench-py\nroutes:\n  - GET /bench-py\n"
    assert renamed_spec(spec, "bench-cold") == "name: bench-cold\nroutes:\n  - GET /bench-cold\n"
    with pytest.raises(PlatformError):
        renamed_spec("runtime: python3.11\n", "x")


def test_burst_counts_429_and_exceptions_as_failures() -> None:
    result = BurstResult(
        (
            ClientStats(0.5, Counter({200: 10, 429: 2}), exceptions=0),
            ClientStats(None, Counter({502: 1}), exceptions=3),
        ),
        duration_s=2.0,
    )
    assert result.ok == 10 and result.throttled == 2 and result.exceptions == 3
    assert result.failed == 6 and result.total == 16
    assert result.all_first_ok_s is None  # the second client never got a 2xx
    ok = BurstResult((ClientStats(0.5, Counter({200: 1}), 0), ClientStats(1.5, Counter({200: 1}), 0)), 1.0)
    assert ok.all_first_ok_s == 1.5


def test_only_selects_figures_and_rejects_unknown_ones() -> None:
    assert parse_args(["--only", "p1,P3"]).figures == ["P1", "P3b"]
    assert parse_args([]).figures == ["P1", "P2", "P3b", "P4", "P6", "MEM", "PLACE"]
    assert parse_args(["--only", "place"]).figures == ["PLACE"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "P9"])
    with pytest.raises(SystemExit):
        parse_args(["--runs", "0"])
