"""`python -m bench`: run the suite against a fresh platform and print one Markdown table."""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bench.baselines import aiohttp_hop, responder
from bench.cold import p3b, p4, p6
from bench.context import NODE_FN, PYTHON_FN, Context
from bench.docker_cli import BENCH_LABEL, remove_labelled, server_version
from bench.memory import memory
from bench.modes import Mode, select_mode
from bench.placement_sim import placement
from bench.profiling import recording
from bench.report import Report, Row
from bench.target import new_run_id, running_platform
from bench.warm import p1, p2

FIGURES: dict[str, Callable[[Context], None]] = {
    "P1": p1,
    "P2": p2,
    "P3b": p3b,
    "P4": p4,
    "P6": p6,
    "MEM": memory,
}
# Figures that need no platform (pure computation): run before it starts, or without it.
OFFLINE_FIGURES: dict[str, Callable[[Report], None]] = {"PLACE": placement}
PROFILED = ("P1", "P2")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs and shorter loads (< 2 minutes)")
    parser.add_argument("--runs", type=int, default=None, help="wrk runs per load (default 3, quick 1)")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated figures to run, of {','.join([*FIGURES, *OFFLINE_FIGURES])} (default all)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the platform during P1/P2 into DIR"
    )
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    wanted = [f.strip() for f in args.only.split(",") if f.strip()]
    every = [*FIGURES, *OFFLINE_FIGURES]
    by_upper = {k.upper(): k for k in every} | {"P3": "P3b"}
    unknown = [f for f in wanted if f.upper() not in by_upper]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(every)}")
    args.figures = [k for k in every if not wanted or k in {by_upper[f.upper()] for f in wanted}]
    return args


def machine_facts() -> dict[str, str]:
    return {
        "cores": str(os.cpu_count()),
        "kernel": os.uname().release,
        "docker": server_version(),
        "python": sys.version.split()[0],
    }


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwind the context managers: platform, containers and network go


def run(args: argparse.Namespace) -> tuple[Report, bool]:
    mode = select_mode(args.quick, args.runs)
    command = "python -m bench " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "python -m bench"
    report = Report(command.strip(), mode.describe(), machine_facts())
    failed = False
    started = time.monotonic()
    platform_figures = [f for f in args.figures if f in FIGURES]
    if platform_figures:
        failed = _platform_figures(platform_figures, args, mode, report)
        report.notes.append(f"functions: {PYTHON_FN} / {NODE_FN} (bench/functions)")
    for name in [f for f in args.figures if f in OFFLINE_FIGURES]:
        failed = _figure(name, functools.partial(OFFLINE_FIGURES[name], report), report) or failed
    report.notes.append(f"whole run {time.monotonic() - started:.0f} s")
    return report, failed


def _platform_figures(names: list[str], args: argparse.Namespace, mode: Mode, report: Report) -> bool:
    run_id = new_run_id()
    failed = False
    try:
        with (
            responder(run_id) as floor_url,
            aiohttp_hop(floor_url) as hop_url,
            running_platform(run_id) as plat,
        ):
            plat.deploy("noop-python")
            plat.deploy("noop-node")
            ctx = Context(plat, floor_url, hop_url, mode, report)
            for name in names:

                def measure(name: str = name) -> None:
                    with recording(plat.pid, args.profile if name in PROFILED else None, name):
                        FIGURES[name](ctx)

                failed = _figure(name, measure, report) or failed
    finally:
        remove_labelled(BENCH_LABEL, run_id)
    return failed


def _figure(name: str, measure: Callable[[], None], report: Report) -> bool:
    """Run one figure; True when it failed (its row says ERROR)."""
    print(f"bench: {name}...", file=sys.stderr, flush=True)
    try:
        measure()
    except Exception as exc:  # one broken figure must not hide the others' numbers
        traceback.print_exc()
        report.add(Row(f"{name}", "ERROR", "", "", "", "ERROR", str(exc).splitlines()[0][:200]))
        return True
    return False


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    report, failed = run(args)
    table = report.render()
    print(table)
    if args.out is not None:
        args.out.write_text(table)
    sys.exit(1 if failed else 0)
