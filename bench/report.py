"""The result table: rows of figures with their baseline, ratio, target and verdict (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.wrk import WrkSeries

PASS, MISS, FLAG, INFO = "PASS", "MISS", "FLAG", "—"


@dataclass(frozen=True, slots=True)
class Row:
    figure: str  # e.g. "P1 route (python) p50 overhead"
    value: str  # what was measured
    baseline: str = ""  # what it is compared with
    derived: str = ""  # overhead / ratio
    target: str = ""
    verdict: str = INFO
    note: str = ""  # errors of runs, mode remarks


def verdict(ok: bool, errors: str = "") -> str:
    """A run with errors is flagged whatever its numbers say."""
    if errors:
        return FLAG
    return PASS if ok else MISS


def ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f} ms" if abs(value) < 10 else f"{value:.0f} ms"


def signed_ms(value: float) -> str:
    return ("+" if value >= 0 else "-") + ms(abs(value))


def rps(value: float) -> str:
    return f"{value:,.0f} req/s"


@dataclass
class Report:
    command: str
    mode: str
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    series: list[WrkSeries] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def render(self) -> str:
        out = [
            "## fnplat benchmark",
            "",
            f"- command: `{self.command}`",
            f"- mode: {self.mode}",
            "- machine: " + ", ".join(f"{k} {v}" for k, v in self.machine.items()),
            "",
            "| figure | measured | baseline | overhead / ratio | target | result | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r.figure} | {r.value} | {r.baseline} | {r.derived} | {r.target} | {r.verdict} | {r.note} |"
            for r in self.rows
        ]
        if self.series:
            out += [
                "",
                "### wrk runs (each run; figures above use the medians)",
                "",
                "| load | c | run | req/s | p50 | p90 | p99 | non-2xx | socket errors | flag |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for s in self.series:
                for i, run in enumerate(s.runs, 1):
                    flag = "ERRORS" if run.has_errors else ""
                    latency = f"{ms(run.p50_ms)} | {ms(run.p90_ms)} | {ms(run.p99_ms)}"
                    out.append(
                        f"| {s.label} | {s.connections} | {i} | {run.rps:,.0f} | {latency} | "
                        f"{run.non_2xx} | {run.socket_errors} | {flag} |"
                    )
        if self.notes:
            out += ["", *[f"- {n}" for n in self.notes]]
        return "\n".join(out) + "\n"
