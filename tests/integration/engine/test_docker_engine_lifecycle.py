"""A task's life on the real engine: exits, OOM kills, output lines, memory peaks, kill, orphans."""

from __future__ import annotations

import asyncio
import time

import pytest
from engine_harness import (
    RUN_ID,
    Harness,
    NetworkUnderTest,
    Recorder,
    close_harness,
    docker_cli,
    open_harness,
    output_gate,
)

from fnplat.controller.docker_engine import DockerEngine

pytestmark = pytest.mark.docker

MB = 1024 * 1024


async def test_exit_codes_are_delivered(harness: Harness) -> None:
    failing = await harness.run("exit 7")
    clean = await harness.run("true")

    failed = await harness.recorder.exit_of(failing.container_id)
    succeeded = await harness.recorder.exit_of(clean.container_id)

    assert (failed.exit_code, failed.oom_killed) == (7, False)
    assert (succeeded.exit_code, succeeded.oom_killed) == (0, False)


async def test_allocating_past_the_memory_limit_is_an_oom_kill(harness: Harness) -> None:
    allocate_256mb = 'perl -e \'$x = "a" x (256 * 1024 * 1024); print "survived\\n"\''
    handle = await harness.run(allocate_256mb, memory_mb=32)

    exit_ = await harness.recorder.exit_of(handle.container_id)

    assert exit_.oom_killed is True
    assert exit_.exit_code == 137  # SIGKILL, as the init reports its child's death
    assert "survived" not in harness.recorder.text(handle.container_id)


async def test_output_lines_are_delivered_whole_with_the_container_id(harness: Harness) -> None:
    started = time.time()
    handle = await harness.run(
        "echo first; echo to-stderr >&2; head -c 40000 /dev/zero | tr '\\0' x; echo; printf no-newline"
    )
    await harness.recorder.exit_of(handle.container_id)
    await harness.recorder.wait_line(handle.container_id, "no-newline")  # flushed when the stream ends

    lines = harness.recorder.lines[handle.container_id]
    texts = [line for line, _ in lines]
    assert sorted(texts) == sorted(["first", "to-stderr", "x" * 40000, "no-newline"])
    assert texts.index("first") < texts.index("x" * 40000)  # stdout keeps its order
    assert all(started - 5 <= ts <= time.time() + 1 for _, ts in lines)
    assert set(harness.recorder.lines) == {handle.container_id}


async def test_max_memory_used_reads_the_cgroup_peak(harness: Harness) -> None:
    handle = await harness.run(
        'perl -e \'$| = 1; $x = "a" x (48 * 1024 * 1024); print "ready\\n"; sleep 300\'', memory_mb=128
    )
    await harness.recorder.wait_line(handle.container_id, "ready")

    peak = harness.engine.max_memory_used_mb(handle.container_id)

    assert peak is not None and 48 <= peak <= 128
    await harness.engine.kill(handle.container_id)
    assert harness.engine.max_memory_used_mb(handle.container_id) is None  # cgroup gone with it
    assert harness.engine.max_memory_used_mb("../../etc") is None
    assert harness.engine.max_memory_used_mb(handle.container_id[:12]) is None  # full ids only


async def test_kill_removes_and_is_idempotent(harness: Harness) -> None:
    handle = await harness.run("sleep 300")
    assert handle.container_id in await harness.engine.list_managed(harness.instance_id)

    await harness.engine.kill(handle.container_id)
    await harness.engine.kill(handle.container_id)  # already gone: not an error
    await harness.engine.kill("0" * 64)  # never existed: not an error

    assert handle.container_id not in await harness.engine.list_managed(harness.instance_id)
    exit_ = await harness.recorder.exit_of(handle.container_id)
    assert (exit_.exit_code, exit_.oom_killed) == (137, False)


async def test_kill_of_exiting_containers_leaves_the_network_removable(
    task_network: NetworkUnderTest,
) -> None:
    # Containers that exit on their own while they are killed (what a stopped task does: its
    # runtime exits when its `next` is refused) must leave no endpoint behind on the network.
    network = NetworkUnderTest(f"fnplat-test-kill-{RUN_ID}", task_network.spare_subnet, "")
    harness = await open_harness(network)
    try:
        exited = await harness.run("true")
        await harness.recorder.exit_of(exited.container_id)
        racing = [await harness.run("exit 3") for _ in range(12)]
        await asyncio.gather(*(harness.engine.kill(h.container_id) for h in [exited, *racing]))
        assert await harness.engine.list_managed(harness.instance_id) == []
    finally:
        await close_harness(harness)
    removed = docker_cli("network", "rm", network.name, check=False)
    assert removed.returncode == 0, removed.stderr


async def test_list_managed_finds_only_this_instances_containers(
    harness: Harness, task_network: NetworkUnderTest
) -> None:
    other = await open_harness(task_network)
    try:
        ours_running = await harness.run("sleep 300")
        ours_exited = await harness.run("true")
        theirs = await other.run("sleep 300")
        await harness.recorder.exit_of(ours_exited.container_id)

        listed = await harness.engine.list_managed(harness.instance_id)

        assert sorted(listed) == sorted([ours_running.container_id, ours_exited.container_id])
        assert theirs.container_id in await harness.engine.list_managed(other.instance_id)
        # Each engine's watcher sees only its own instance's containers.
        await harness.engine.kill(theirs.container_id)
        await other.recorder.exit_of(theirs.container_id)
        marker = await harness.run("true")  # our stream is ordered: its exit comes after any earlier one
        await harness.recorder.exit_of(marker.container_id)
        assert theirs.container_id not in harness.recorder.exits
    finally:
        await close_harness(other)


async def test_list_states_says_which_containers_run_and_how_dead_ones_ended(harness: Harness) -> None:
    running = await harness.run("sleep 300")
    exited = await harness.run("exit 3")
    oom = await harness.run("perl -e '$x = \"a\" x (256 * 1024 * 1024)'", memory_mb=32)
    for dead in (exited, oom):
        await harness.recorder.exit_of(dead.container_id)

    # The list can trail the `die` event by a moment: ask until it says they stopped.
    async with asyncio.timeout(30):
        while True:
            states = {s.container_id: s for s in await harness.engine.list_states(harness.instance_id)}
            if not (states[exited.container_id].running or states[oom.container_id].running):
                break
            await asyncio.sleep(0.1)  # polling the engine, another process

    assert set(states) == {running.container_id, exited.container_id, oom.container_id}
    assert states[running.container_id].running
    assert (states[exited.container_id].running, states[exited.container_id].exit_code) == (False, 3)
    assert states[oom.container_id].oom_killed and not states[oom.container_id].running


async def test_following_again_from_a_time_skips_what_came_before(harness: Harness) -> None:
    handle = await harness.run("echo early; sleep 300")
    await harness.recorder.wait_line(handle.container_id, "early")
    # Already followed: a second follow is a no-op, so nothing arrives twice.
    await harness.engine.follow_output(handle.container_id, "fn", since=time.time() - 60)
    marker = await harness.run("true")
    await harness.recorder.exit_of(marker.container_id)
    assert harness.recorder.text(handle.container_id) == ["early"]

    late = await harness.run("echo before; sleep 2; echo after; sleep 300")
    await harness.recorder.wait_line(late.container_id, "after")
    # As after a dockerd restart with live-restore: a follower from a moment between the lines.
    lines = harness.recorder.lines[late.container_id]
    cut = (lines[0][1] + lines[1][1]) / 2
    again = await open_harness_following(harness, late.container_id, cut)
    try:
        await again.recorder.wait_line(late.container_id, "after")
        assert again.recorder.text(late.container_id) == ["after"]
    finally:
        await again.engine.close()


async def open_harness_following(harness: Harness, container_id: str, since: float) -> Harness:
    """A second engine on the same instance that follows `container_id` from `since`."""
    other = DockerEngine(harness.instance_id)
    await other.ensure_network(harness.network.name, harness.network.subnet)
    recorder = Recorder()
    await other.watch(recorder.on_exit, output_gate(recorder))
    await other.follow_output(container_id, "fn", since=since)
    return Harness(engine=other, recorder=recorder, network=harness.network, instance_id=harness.instance_id)
