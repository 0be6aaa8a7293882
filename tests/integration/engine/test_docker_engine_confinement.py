"""Confinement the engine applies: CPU limits in the task's cgroup, no IPv6, image VOLUMEs as
tmpfs with no volume left behind, builds on their own network with a memory limit, and no
function image as a base by any of its names."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from engine_harness import RUN_ID, Harness, NetworkUnderTest, docker_cli, free_subnets

from fnplat.controller.docker_engine import DockerEngine
from fnplat.controller.engine import BuildLimits
from fnplat.errors import InvalidParameter

pytestmark = pytest.mark.docker

CGROUP = Path("/sys/fs/cgroup")


def cpu_quota(container_id: str) -> tuple[int, int]:
    """(quota, period) in microseconds of the container's cgroup, as the kernel has them."""
    scope = f"docker-{container_id}.scope"
    for v1 in (CGROUP / "cpu" / "docker" / container_id, CGROUP / "cpu" / "system.slice" / scope):
        if v1.is_dir():
            return int((v1 / "cpu.cfs_quota_us").read_text()), int((v1 / "cpu.cfs_period_us").read_text())
    for v2 in (CGROUP / "docker" / container_id, CGROUP / "system.slice" / scope):
        if v2.is_dir():
            quota, period = (v2 / "cpu.max").read_text().split()
            return (-1 if quota == "max" else int(quota)), int(period)
    raise AssertionError(f"no CPU cgroup for {container_id}")


@pytest.fixture
def image_tags() -> Iterator[list[str]]:
    tags: list[str] = []
    yield tags
    for tag in tags:
        docker_cli("image", "rm", "-f", tag, check=False)


def new_tag(tags: list[str]) -> str:
    tags.append(f"fnplat-test/confine-{RUN_ID}:{uuid.uuid4().hex[:8]}")
    return tags[-1]


def context(directory: Path, dockerfile: str) -> Path:
    directory.mkdir()
    (directory / "Dockerfile").write_text(dockerfile)
    return directory


async def test_the_cpu_limit_is_in_the_tasks_cgroup(harness: Harness) -> None:
    at_start = await harness.run("sleep 60", cpus=0.25)
    assert cpu_quota(at_start.container_id) == (5_000, 20_000)

    later = await harness.run("sleep 60", cpus=0.5, cpu_limit_after_init=True)
    assert cpu_quota(later.container_id)[0] == -1  # unthrottled until the controller says so
    await harness.engine.limit_cpu(later.container_id, 0.5)
    assert cpu_quota(later.container_id) == (10_000, 20_000)

    await harness.engine.kill(later.container_id)
    await harness.engine.limit_cpu(later.container_id, 0.5)  # gone: not an error


async def test_tasks_have_no_ipv6(harness: Harness) -> None:
    handle = await harness.run(
        "echo all=$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6); "
        "echo eth0=$(cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6); "
        "echo addresses=$(wc -l < /proc/net/if_inet6); echo END"
    )
    found = await harness.recorder.output_until_end(handle.container_id)
    assert found == {"all": "1", "eth0": "1", "addresses": "0"}


async def test_declared_volumes_are_tmpfs_and_leave_no_volume(
    harness: Harness, image_tags: list[str], tmp_path: Path
) -> None:
    tag = new_tag(image_tags)
    dockerfile = (
        "FROM fnplat/debian:bookworm\nRUN mkdir -p /data && echo from-image > /data/seed\nVOLUME /data\n"
    )
    await harness.engine.build_image(context(tmp_path / "ctx", dockerfile), tag)
    volumes_before = set(docker_cli("volume", "ls", "-q").stdout.split())

    handle = await harness.run(
        "echo mount=$(grep ' /data ' /proc/mounts | cut -d' ' -f3); "
        "echo owner=$(stat -c %u:%g /data); "
        "touch /data/written && echo write=ok || echo write=denied; "
        "echo seed=$(cat /data/seed 2>/dev/null || echo none); "
        "dd if=/dev/zero of=/data/big bs=1M count=16 2>/dev/null && echo big=ok || echo big=full; echo END",
        image=tag,
        tmp_size_mb=8,
        user="993:990",
    )
    found = await harness.recorder.output_until_end(handle.container_id)
    mounts = json.loads(docker_cli("inspect", handle.container_id).stdout)[0]["Mounts"]
    await harness.engine.kill(handle.container_id)

    # Not host-backed: a size-limited tmpfs the task's user owns (the image's files are not copied).
    assert found == {"mount": "tmpfs", "owner": "993:990", "write": "ok", "seed": "none", "big": "full"}
    assert [m for m in mounts if m["Type"] == "volume"] == []
    assert set(docker_cli("volume", "ls", "-q").stdout.split()) <= volumes_before


@pytest.fixture
async def build_engine(task_network: NetworkUnderTest) -> AsyncIterator[tuple[DockerEngine, str, str]]:
    (subnet,) = free_subnets(1)
    name = f"fnplat-test-builds-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    engine = DockerEngine(f"enginetest-{RUN_ID}-build", build_limits=BuildLimits(memory_mb=300))
    try:
        info = await engine.ensure_build_network(name, subnet)
        yield engine, name, info.gateway_ip
    finally:
        await engine.close()
        docker_cli("network", "rm", name, check=False)


async def test_builds_run_on_their_network_with_a_memory_limit(
    build_engine: tuple[DockerEngine, str, str], image_tags: list[str], tmp_path: Path
) -> None:
    engine, _, gateway = build_engine
    tag = new_tag(image_tags)
    dockerfile = (
        "FROM fnplat/debian:bookworm\n"
        "RUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /build-memory"
        " && awk '$2 == \"00000000\" {print $3}' /proc/net/route > /build-gateway\n"
    )
    await engine.build_image(context(tmp_path / "ctx", dockerfile), tag)
    out = docker_cli("run", "--rm", "--network", "none", tag, "cat", "/build-memory", "/build-gateway").stdout
    memory, gateway_hex = out.split()
    assert int(memory) == 300 * 1024 * 1024
    # /proc/net/route keeps addresses as little-endian hex: the build step's default gateway.
    assert socket.inet_ntoa(bytes.fromhex(gateway_hex)[::-1]) == gateway


async def test_a_function_image_is_no_base_by_any_name(
    harness: Harness, image_tags: list[str], tmp_path: Path
) -> None:
    function_image = new_tag(image_tags)
    await harness.engine.build_image(context(tmp_path / "a", "FROM fnplat/debian:bookworm\n"), function_image)
    image_id = json.loads(docker_cli("image", "inspect", function_image).stdout)[0]["Id"]
    alias = new_tag(image_tags)
    docker_cli("tag", function_image, alias)  # another name for the same image

    for index, base in enumerate((image_id, image_id.removeprefix("sha256:")[:12], alias)):
        copycat = new_tag(image_tags)
        with pytest.raises(InvalidParameter, match=r"^Dockerfile line 2: FROM ") as refused:
            await harness.engine.build_image(context(tmp_path / f"b{index}", f"# x\nFROM {base}\n"), copycat)
        assert "fnplat-fn/*" in refused.value.message
        assert docker_cli("image", "inspect", copycat, check=False).returncode != 0  # nothing built
