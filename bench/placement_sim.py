"""Placement simulation: 10,000 functions over N = 1..64 equal nodes with fnplat's rendezvous
placement (fnplat.cluster.placement). For each N it reports the load spread (most functions on
one node / the mean) and the share of functions whose home moves when one node joins (expected
1/(N+1), all of them to the new node) and when one leaves (expected 1/N, all of them from the
leaving node). Pure computation, no platform: about a second.

`python -m bench.placement_sim` prints the table; `python -m bench` adds its rows (figure PLACE).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bench.report import MISS, PASS, Report, Row
from fnplat.cluster.placement import PlacementNode, score

NODE_COUNTS: tuple[int, ...] = (1, 2, 3, 4, 8, 16, 32, 64)
FUNCTIONS = 10_000


@dataclass(frozen=True, slots=True)
class SimRow:
    nodes: int
    functions: int
    max_over_mean: float  # functions on the busiest node / functions per node on average
    join_moved: float  # share of functions whose home changed when node N+1 joined
    join_only_to_new: bool  # every one of them moved to the new node
    leave_moved: float | None  # share that moved when one node left (None for N = 1)
    leave_only_from_leaver: bool

    @property
    def join_expected(self) -> float:
        return 1 / (self.nodes + 1)

    @property
    def leave_expected(self) -> float | None:
        return 1 / self.nodes if self.nodes > 1 else None

    @property
    def minimal(self) -> bool:
        return self.join_only_to_new and self.leave_only_from_leaver


def simulate(node_counts: Sequence[int] = NODE_COUNTS, functions: int = FUNCTIONS) -> list[SimRow]:
    keys = [f"fn-{i}:1" for i in range(functions)]
    nodes = [PlacementNode(f"node-{i}") for i in range(max(node_counts) + 1)]
    # One score per (function, node), computed once and shared by every node set below: the
    # home among a set of nodes is the node with the highest score, as placement.home() decides.
    scores = [[score(k, node) for k in keys] for node in nodes]

    def homes(members: Sequence[int]) -> list[int]:
        best, home = list(scores[members[0]]), [members[0]] * functions
        for m in members[1:]:
            column = scores[m]
            for f in range(functions):
                if column[f] > best[f]:
                    best[f], home[f] = column[f], m
        return home

    rows = []
    for n in node_counts:
        base = homes(range(n))
        max_over_mean = max(Counter(base).values()) / (functions / n)
        joined = homes(range(n + 1))
        join_moved = [f for f in range(functions) if joined[f] != base[f]]
        leave_moved: list[int] | None = None
        leave_only = True
        if n > 1:
            leaver = n // 2
            left = homes([m for m in range(n) if m != leaver])
            leave_moved = [f for f in range(functions) if left[f] != base[f]]
            leave_only = set(leave_moved) == {f for f in range(functions) if base[f] == leaver}
        rows.append(
            SimRow(
                nodes=n,
                functions=functions,
                max_over_mean=max_over_mean,
                join_moved=len(join_moved) / functions,
                join_only_to_new=all(joined[f] == n for f in join_moved),
                leave_moved=None if leave_moved is None else len(leave_moved) / functions,
                leave_only_from_leaver=leave_only,
            )
        )
    return rows


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render(rows: Sequence[SimRow]) -> str:
    lines = [
        "| nodes | functions | max/mean | join moves | 1/(N+1) | leave moves | 1/N"
        " | moves only to/from the changed node |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.nodes} | {r.functions:,} | {r.max_over_mean:.3f} | {_share(r.join_moved)} | "
            f"{_share(r.join_expected)} | {_share(r.leave_moved)} | {_share(r.leave_expected)} | "
            f"{'yes' if r.minimal else 'NO'} |"
        )
    return "\n".join(lines)


def placement(report: Report) -> None:
    """The bench's PLACE figure: one row per node count."""
    for r in simulate():
        report.add(
            Row(
                f"PLACE placement N={r.nodes}, {r.functions:,} functions",
                f"max/mean {r.max_over_mean:.3f}",
                "",
                f"join moves {_share(r.join_moved)} (1/(N+1) {_share(r.join_expected)}), "
                f"leave moves {_share(r.leave_moved)} (1/N {_share(r.leave_expected)})",
                "moves ≈ 1/N, only to/from the changed node",
                PASS if r.minimal else MISS,
                "equal capacities; `python -m bench.placement_sim`",
            )
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.placement_sim", description=__doc__)
    parser.add_argument("--functions", type=int, default=FUNCTIONS)
    parser.add_argument(
        "--nodes", default=",".join(map(str, NODE_COUNTS)), help="comma-separated node counts"
    )
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.nodes.split(",") if n.strip()]
    if not counts or min(counts) < 1 or args.functions < 1:
        parser.error("node counts and --functions must be at least 1")
    print(render(simulate(counts, args.functions)))


if __name__ == "__main__":
    main()
