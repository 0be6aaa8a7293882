"""Helpers for the real Docker engine tests: a harness around one DockerEngine, and clean-up.

Every test here needs a running Docker engine and the base image `fnplat/debian:bookworm`
(scripts/build-images.sh base); they fail, not skip, without them. Set-up and clean-up use the
`docker` CLI (the project's only docker SDK user is the module under test) and touch only what
this run created: a task network with a random name on a free subnet, and containers carrying
this run's `fnplat.test-run` label.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import subprocess
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import docker_subnets
import pytest
from docker_subnets import ENGINE_SUBNETS

from fnplat.controller.docker_engine import DockerEngine
from fnplat.controller.docker_log_lines import MAX_LINE_BYTES
from fnplat.controller.engine import ContainerExit, ContainerHandle, NetworkInfo, TaskDefinition
from fnplat.controller.output_gate import OutputGate
from fnplat.controller.output_limits import OutputLimits
from fnplat.domain import frozen_map

BASE_IMAGE = "fnplat/debian:bookworm"
TEST_LABEL = "fnplat.test-run"
RUN_ID = uuid.uuid4().hex[:10]
WAIT_S = 60.0  # generous: two shared cores, other helpers run containers too


def docker_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def free_subnets(count: int) -> list[str]:
    """Subnets in the engine tests' range that overlap no existing network."""
    try:
        return docker_subnets.free_subnets(ENGINE_SUBNETS, count)
    except RuntimeError as exc:
        pytest.fail(str(exc))


def remove_test_containers() -> None:
    ids = docker_cli("ps", "-aq", "--filter", f"label={TEST_LABEL}={RUN_ID}").stdout.split()
    if ids:
        docker_cli("rm", "-f", *ids, check=False)


@dataclass(frozen=True)
class NetworkUnderTest:
    name: str
    subnet: str
    spare_subnet: str  # free, for tests that need a second network


_addresses = itertools.count(10)


@dataclass
class Recorder:
    """What the engine's watchers delivered, with awaitable conditions (no sleeps)."""

    exits: dict[str, asyncio.Future[ContainerExit]] = field(default_factory=dict)
    lines: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: defaultdict(list))
    _new_line: asyncio.Event = field(default_factory=asyncio.Event)

    def _exit_future(self, container_id: str) -> asyncio.Future[ContainerExit]:
        if container_id not in self.exits:
            self.exits[container_id] = asyncio.get_running_loop().create_future()
        return self.exits[container_id]

    async def on_exit(self, exit_: ContainerExit) -> None:
        # async on purpose: the engine must await what on_exit returns
        future = self._exit_future(exit_.container_id)
        if not future.done():
            future.set_result(exit_)

    def on_output(self, container_id: str, line: str, ts: float) -> None:
        self.lines[container_id].append((line, ts))
        self._new_line.set()
        self._new_line = asyncio.Event()

    async def exit_of(self, container_id: str, limit_s: float = WAIT_S) -> ContainerExit:
        return await asyncio.wait_for(asyncio.shield(self._exit_future(container_id)), limit_s)

    def text(self, container_id: str) -> list[str]:
        return [line for line, _ in self.lines[container_id]]

    async def wait_line(self, container_id: str, wanted: str, limit_s: float = WAIT_S) -> None:
        async with asyncio.timeout(limit_s):
            while wanted not in self.text(container_id):
                await self._new_line.wait()

    async def output_until_end(self, container_id: str) -> dict[str, str]:
        """The `key=value` lines a probe script printed before its final `END` line."""
        await self.wait_line(container_id, "END")
        pairs = (line.split("=", 1) for line in self.text(container_id) if "=" in line)
        return {key: value for key, value in pairs}


def make_taskdef(command: tuple[str, ...] | None, **overrides: object) -> TaskDefinition:
    """A small task on the base image, labelled for this run's clean-up."""
    values: dict[str, object] = {
        "family": "enginetest",
        "revision": 1,
        "image": BASE_IMAGE,
        "command": command,
        "memory_mb": 64,
        "labels": frozen_map({TEST_LABEL: RUN_ID}),
    }
    values.update(overrides)
    return TaskDefinition(**values)  # type: ignore[arg-type]


@dataclass
class Harness:
    engine: DockerEngine
    recorder: Recorder
    network: NetworkInfo
    instance_id: str

    def next_ip(self) -> str:
        return str(ipaddress.ip_network(self.network.subnet)[next(_addresses)])

    def taskdef(self, command: tuple[str, ...] | None, **overrides: object) -> TaskDefinition:
        return make_taskdef(command, **overrides)

    async def run(
        self, script: str, env: dict[str, str] | None = None, **overrides: object
    ) -> ContainerHandle:
        """Start `bash -c script` in a sandbox and follow its output."""
        taskdef = self.taskdef(("bash", "-c", script), **overrides)
        name = f"enginetest-{RUN_ID}-{uuid.uuid4().hex[:8]}"
        handle = await self.engine.run(taskdef, name, self.next_ip(), env or {})
        await self.engine.follow_output(handle.container_id, taskdef.family)
        return handle


async def open_harness(network: NetworkUnderTest, instance_id: str | None = None) -> Harness:
    instance_id = instance_id or f"enginetest-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    engine = DockerEngine(instance_id)
    info = await engine.ensure_network(network.name, network.subnet)
    recorder = Recorder()
    await engine.watch(recorder.on_exit, output_gate(recorder))
    return Harness(engine=engine, recorder=recorder, network=info, instance_id=instance_id)


def output_gate(recorder: Recorder) -> OutputGate:
    """The controller's own gate between the reading threads and the loop, with no rate limit."""
    return OutputGate(
        OutputLimits(lines_per_s=0, bytes_per_s=0, burst_s=1, max_line_bytes=MAX_LINE_BYTES),
        asyncio.get_running_loop(),
        on_line=recorder.on_output,
        on_dropped=lambda notice, text: recorder.on_output(notice.container_id, text, notice.timestamp),
    )


async def close_harness(harness: Harness) -> None:
    for container_id in await harness.engine.list_managed(harness.instance_id):
        await harness.engine.kill(container_id)
    await harness.engine.close()
