"""The task network, image builds, and how engine failures reach the caller."""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_harness import RUN_ID, Harness, NetworkUnderTest, docker_cli, make_taskdef

from fnplat.controller.docker_engine import DockerEngine
from fnplat.errors import EngineError, ImageBuildError

pytestmark = pytest.mark.docker


# ---- network ----------------------------------------------------------------------------------


async def test_ensure_network_creates_an_isolated_bridge_once(task_network: NetworkUnderTest) -> None:
    engine = DockerEngine(f"enginetest-{RUN_ID}-net")
    try:
        first = await engine.ensure_network(task_network.name, task_network.subnet)
        again = await engine.ensure_network(task_network.name, task_network.subnet)
    finally:
        await engine.close()

    assert first == again
    assert first.subnet == task_network.subnet
    assert first.gateway_ip == str(next(ipaddress.ip_network(task_network.subnet).hosts()))
    attrs = json.loads(docker_cli("network", "inspect", task_network.name).stdout)[0]
    assert attrs["Driver"] == "bridge"
    assert attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert attrs["Labels"]["fnplat.managed"] == "true"


async def test_ensure_network_refuses_a_different_subnet(harness: Harness) -> None:
    with pytest.raises(EngineError, match=r"exists with subnet .* not 10\.250\.0\.0/24"):
        await harness.engine.ensure_network(harness.network.name, "10.250.0.0/24")


async def test_ensure_network_refuses_an_overlapping_subnet(harness: Harness) -> None:
    overlapping = str(next(ipaddress.ip_network(harness.network.subnet).subnets(new_prefix=25)))
    with pytest.raises(EngineError, match=f"overlaps network {harness.network.name}"):
        await harness.engine.ensure_network(f"fnplat-test-engine-{RUN_ID}-overlap", overlapping)


@pytest.fixture
def foreign_network(task_network: NetworkUnderTest) -> Iterator[str]:
    name = f"fnplat-test-engine-{RUN_ID}-foreign"
    docker_cli("network", "create", "--subnet", task_network.spare_subnet, name)
    yield name
    docker_cli("network", "rm", name, check=False)


async def test_ensure_network_refuses_a_network_that_is_not_ours(
    foreign_network: str, task_network: NetworkUnderTest
) -> None:
    engine = DockerEngine(f"enginetest-{RUN_ID}-foreign")
    try:
        with pytest.raises(EngineError, match="not created by fnplat"):
            await engine.ensure_network(foreign_network, task_network.spare_subnet)
    finally:
        await engine.close()


async def test_invalid_subnet_is_a_clear_error() -> None:
    engine = DockerEngine(f"enginetest-{RUN_ID}-bad")
    try:
        with pytest.raises(EngineError, match="invalid task subnet"):
            await engine.ensure_network("fnplat-test-never-created", "not-a-subnet")
    finally:
        await engine.close()


# ---- images -----------------------------------------------------------------------------------


@pytest.fixture
def image_tag() -> Iterator[str]:
    tag = f"fnplat-test/engine-{RUN_ID}:{uuid.uuid4().hex[:8]}"
    yield tag
    docker_cli("image", "rm", "-f", tag, check=False)


def write_context(directory: Path, dockerfile: str) -> Path:
    directory.mkdir()
    (directory / "Dockerfile").write_text(dockerfile)
    return directory


async def test_build_image_builds_offline_and_labels(
    harness: Harness, image_tag: str, tmp_path: Path
) -> None:
    context = write_context(
        tmp_path / "ctx", "FROM fnplat/debian:bookworm\nRUN echo built-in-image > /built.txt\n"
    )
    assert not await harness.engine.image_exists(image_tag)

    image_id = await harness.engine.build_image(context, image_tag)

    assert image_id.startswith("sha256:")
    assert await harness.engine.image_exists(image_tag)
    attrs = json.loads(docker_cli("image", "inspect", image_tag).stdout)[0]
    assert attrs["Id"] == image_id
    assert attrs["Config"]["Labels"]["fnplat.managed"] == "true"
    handle = await harness.run("cat /built.txt", image=image_tag)
    await harness.recorder.wait_line(handle.container_id, "built-in-image")


async def test_failed_build_raises_with_the_log_tail(
    harness: Harness, image_tag: str, tmp_path: Path
) -> None:
    context = write_context(
        tmp_path / "ctx", "FROM fnplat/debian:bookworm\nRUN echo step-marker-xyz && exit 3\n"
    )

    with pytest.raises(ImageBuildError) as failure:
        await harness.engine.build_image(context, image_tag)

    assert "returned a non-zero code: 3" in failure.value.message
    assert "step-marker-xyz" in failure.value.message  # the build's own output, for the user
    assert not await harness.engine.image_exists(image_tag)


async def test_bad_dockerfile_and_missing_dockerfile_are_build_errors(
    harness: Harness, image_tag: str, tmp_path: Path
) -> None:
    bad = write_context(tmp_path / "bad", "FROM fnplat/debian:bookworm\nFLY away\n")
    with pytest.raises(ImageBuildError, match=r"(?i)unknown instruction"):
        await harness.engine.build_image(bad, image_tag)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageBuildError, match="has no Dockerfile"):
        await harness.engine.build_image(empty, image_tag)


# ---- failures ---------------------------------------------------------------------------------


async def test_missing_image_is_an_engine_error_with_a_hint(harness: Harness) -> None:
    with pytest.raises(
        EngineError, match=r"image fnplat/runtime-never:latest not found: run scripts/build-images\.sh"
    ):
        await harness.run("true", image="fnplat/runtime-never:latest")
    assert await harness.engine.list_managed(harness.instance_id) == []


async def test_duplicate_name_is_an_engine_error_and_leaves_nothing_behind(harness: Harness) -> None:
    first = await harness.run("sleep 300")
    name = json.loads(docker_cli("inspect", first.container_id).stdout)[0]["Name"].lstrip("/")

    with pytest.raises(EngineError, match="409"):
        await harness.engine.run(harness.taskdef(("true",)), name, harness.next_ip(), {})

    assert await harness.engine.list_managed(harness.instance_id) == [first.container_id]


async def test_address_outside_the_network_fails_and_is_cleaned_up(harness: Harness) -> None:
    with pytest.raises(EngineError):
        await harness.engine.run(harness.taskdef(("true",)), f"enginetest-{RUN_ID}-badip", "10.99.0.5", {})
    assert await harness.engine.list_managed(harness.instance_id) == []


async def test_unreachable_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    socket = tmp_path / "no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    engine = DockerEngine(f"enginetest-{RUN_ID}-down")
    try:
        with pytest.raises(
            EngineError, match=f"Docker engine not reachable at unix://{socket}: is dockerd running"
        ):
            await engine.list_managed("anything")
    finally:
        await engine.close()


async def test_run_needs_the_network_and_an_open_engine(task_network: NetworkUnderTest) -> None:
    engine = DockerEngine(f"enginetest-{RUN_ID}-order")
    with pytest.raises(EngineError, match="ensure_network"):
        await engine.run(make_taskdef(("true",)), "never", "172.31.255.1", {})
    with pytest.raises(EngineError, match="watch"):
        await engine.follow_output("0" * 64, "enginetest")

    await engine.ensure_network(task_network.name, task_network.subnet)
    await engine.close()
    with pytest.raises(EngineError, match="closed"):
        await engine.list_managed("anything")
