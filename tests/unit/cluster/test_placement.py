"""Rendezvous placement: deterministic, balanced, capacity-weighted, minimal movement."""

from __future__ import annotations

import hashlib
import statistics
import subprocess
import sys
from collections import Counter

import pytest

from fnplat.cluster.placement import (
    Placement,
    PlacementNode,
    candidates,
    home,
    rank,
    score,
    unit_hash,
)

KEYS = [f"fn-{i}:1" for i in range(4000)]


def nodes(n: int, weight: float = 1.0) -> list[PlacementNode]:
    return [PlacementNode(f"node-{i}", weight) for i in range(n)]


def homes(keys: list[str], members: list[PlacementNode]) -> dict[str, str | None]:
    return {k: home(k, members) for k in keys}


def test_pinned_values_are_the_same_in_every_process_and_release() -> None:
    # A change here moves every function to another node on upgrade: it must be deliberate.
    digest = hashlib.blake2b(b"hello:1\x00node-a", digest_size=8).digest()
    assert unit_hash("hello:1", "node-a") == ((int.from_bytes(digest, "big") >> 12) + 0.5) / 2**52
    assert unit_hash("hello:1", "node-a") == 0.07683828865685627
    assert rank("hello:1", nodes(5)) == ("node-1", "node-4", "node-3", "node-2", "node-0")


def test_another_process_with_another_hash_seed_agrees() -> None:
    code = (
        "from fnplat.cluster.placement import PlacementNode, rank;"
        "print(','.join(rank('hello:1', [PlacementNode(f'node-{i}') for i in range(5)])))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == ",".join(rank("hello:1", nodes(5)))


def test_order_of_the_node_list_does_not_matter() -> None:
    members = nodes(8)
    for key in KEYS[:200]:
        assert rank(key, members) == rank(key, list(reversed(members)))
        assert home(key, members) == rank(key, members)[0]


@pytest.mark.parametrize("n", [1, 2, 3, 8, 32])
def test_rank_is_a_permutation_and_candidates_a_prefix(n: int) -> None:
    members = nodes(n)
    for key in KEYS[:50]:
        ranking = rank(key, members)
        assert sorted(ranking) == sorted(m.node_id for m in members)
        assert candidates(key, members, 3) == ranking[:3]


def test_no_nodes() -> None:
    assert home("x", []) is None and rank("x", []) == () and candidates("x", [], 2) == ()
    assert Placement([]).home("x") is None


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_balance(n: int) -> None:
    counts = Counter(homes(KEYS, nodes(n)).values())
    assert len(counts) == n
    mean = len(KEYS) / n
    # Binomial spread: 4 standard deviations is far beyond what a fair hash shows here.
    sigma = (mean * (1 - 1 / n)) ** 0.5
    assert max(counts.values()) <= mean + 4 * sigma
    assert min(counts.values()) >= mean - 4 * sigma


def test_capacity_weighting_is_proportional() -> None:
    members = [PlacementNode("small", 1024), PlacementNode("medium", 2048), PlacementNode("large", 4096)]
    counts = Counter(homes(KEYS, members).values())
    shares = {node: counts[node] / len(KEYS) for node in ("small", "medium", "large")}
    assert shares["small"] == pytest.approx(1 / 7, abs=0.03)
    assert shares["medium"] == pytest.approx(2 / 7, abs=0.03)
    assert shares["large"] == pytest.approx(4 / 7, abs=0.03)


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16])
def test_join_moves_about_1_over_n_plus_1_and_only_to_the_new_node(n: int) -> None:
    before = homes(KEYS, nodes(n))
    after = homes(KEYS, nodes(n + 1))
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(after[k] == f"node-{n}" for k in moved)
    assert len(moved) / len(KEYS) == pytest.approx(1 / (n + 1), abs=0.04)


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_leave_moves_only_the_leaving_nodes_functions(n: int) -> None:
    members = nodes(n)
    before = homes(KEYS, members)
    leaving = members[n // 2].node_id
    after = homes(KEYS, [m for m in members if m.node_id != leaving])
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == {k for k in KEYS if before[k] == leaving}
    assert len(moved) / len(KEYS) == pytest.approx(1 / n, abs=0.04)


def test_the_leaving_nodes_functions_go_to_their_next_candidate() -> None:
    members = nodes(6)
    for key in KEYS[:300]:
        first, second = rank(key, members)[:2]
        remaining = [m for m in members if m.node_id != first]
        assert home(key, remaining) == second


def test_spill_over_of_one_full_node_spreads_over_all_others() -> None:
    # Each function has its own order: the second choices of node-0's functions are spread out,
    # not piled onto one neighbour as on a hash ring.
    members = nodes(8)
    seconds = Counter(rank(k, members)[1] for k in KEYS if home(k, members) == "node-0")
    assert len(seconds) == 7
    assert max(seconds.values()) / statistics.mean(seconds.values()) < 1.5


def test_placement_memoises_and_bounds_its_cache() -> None:
    placement = Placement(nodes(4), cache_size=10)
    for key in KEYS[:50]:
        assert placement.rank(key) == rank(key, nodes(4))
        assert placement.home(key) == home(key, nodes(4))
        assert placement.candidates(key, 2) == candidates(key, nodes(4), 2)
    assert len(placement._cache) == 10
    assert [n.node_id for n in placement.nodes] == ["node-0", "node-1", "node-2", "node-3"]


@pytest.mark.parametrize("weight", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_weights_are_refused(weight: float) -> None:
    with pytest.raises(ValueError, match="weight must be a positive number"):
        PlacementNode("n", weight)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="tries must be at least 1"):
        candidates("x", nodes(2), 0)
    with pytest.raises(ValueError, match="tries must be at least 1"):
        Placement(nodes(2)).candidates("x", 0)
    with pytest.raises(ValueError, match="node ids must be unique"):
        Placement([PlacementNode("a"), PlacementNode("a", 2)])


def test_scores_are_finite_and_positive() -> None:
    for key in KEYS[:500]:
        for member in nodes(4):
            value = score(key, member)
            assert 0 < value < float("inf")
            assert 0 < unit_hash(key, member.node_id) < 1
