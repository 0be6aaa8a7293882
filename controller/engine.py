"""The narrow interface between the controller and a container engine.

`docker_engine.DockerEngine` is the only implementation that talks to Docker (and the only
module that imports the docker SDK); `fake_engine.FakeEngine` is an in-memory stand-in for
unit tests. Every engine failure is raised as `fnplat.errors.EngineError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fnplat.domain import NetworkMode, frozen_map

LABEL_MANAGED = "fnplat.managed"  # "true" on every container we start
LABEL_INSTANCE = "fnplat.instance"  # which controller owns it (orphan clean-up filters on this)
LABEL_FUNCTION = "fnplat.function"
LABEL_VERSION = "fnplat.version"
LABEL_TASK = "fnplat.task"
LABEL_NETWORK = "fnplat.network"  # the function's network mode: "default" or "none"


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """What to run for one function version (ECS: a task definition). Compiled by taskdef.py."""

    family: str  # function name
    revision: int  # function version
    image: str
    command: tuple[str, ...] | None  # None = the image's own entrypoint/cmd
    memory_mb: int
    environment: Mapping[str, str] = field(default_factory=frozen_map)
    labels: Mapping[str, str] = field(default_factory=frozen_map)
    code_dir: Path | None = None  # host directory bind-mounted read-only at /var/task
    tmp_size_mb: int = 512
    pids_limit: int = 1024
    user: str = "993:990"
    cpu_shares: int | None = None  # weight under contention
    cpus: float | None = None  # hard limit (CFS quota), in vCPUs
    cpu_limit_after_init: bool = False  # the limit is set by limit_cpu() once the task is ready
    network: NetworkMode = "default"  # "none": an address in the subnet's isolated part


@dataclass(frozen=True, slots=True)
class BuildLimits:
    """How image builds are confined besides their network (see docker_engine.build_image)."""

    memory_mb: int = 2048  # per build step container, no swap
    allow_function_bases: bool = False  # may a Dockerfile build on a function image (fnplat-fn/*)?


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    name: str
    subnet: str  # CIDR
    gateway_ip: str  # the host's address on that network: where the Runtime API listens


@dataclass(frozen=True, slots=True)
class ContainerHandle:
    container_id: str
    name: str
    ip: str


@dataclass(frozen=True, slots=True)
class ContainerExit:
    container_id: str
    exit_code: int
    oom_killed: bool


@dataclass(frozen=True, slots=True)
class ContainerState:
    """One of our containers as the engine reports it when asked (not from its event stream)."""

    container_id: str
    running: bool
    exit_code: int  # -1 while running or when the engine does not say
    oom_killed: bool
    task_id: str | None = None  # its LABEL_TASK: which task of ours it is


ExitCallback = Callable[[ContainerExit], Awaitable[None] | None]


class OutputSink(Protocol):
    """Where an engine delivers its containers' output (controller/output_gate.py's OutputGate)."""

    @property
    def max_line_bytes(self) -> int:
        """Lines are cut at this many bytes (with a marker) by the engine as it frames them."""
        ...

    def offer(self, function: str, container_id: str, line: bytes, timestamp: float) -> None:
        """One line, without its newline, with its unix timestamp. Called on any thread; never
        blocks on the event loop."""
        ...
# Called on the event loop when the engine's event stream broke (events may be missed from now
# on) and when it is open again (the caller re-reads the state it may have missed).
LinkCallback = Callable[[], None]


class ContainerEngine(Protocol):
    async def ensure_network(self, name: str, subnet: str) -> NetworkInfo:
        """Create the isolated task network if missing (no inter-container traffic); return it."""
        ...

    async def ensure_build_network(self, name: str, subnet: str) -> NetworkInfo:
        """Create the network image builds run their steps on if missing (no inter-container
        traffic); builds use it from then on (before: no network at all)."""
        ...

    async def run(
        self, taskdef: TaskDefinition, name: str, ip: str, environment: Mapping[str, str]
    ) -> ContainerHandle:
        """Create and start a locked-down container for a task at a fixed address on the task network.

        `environment` is merged over taskdef.environment (per-task values such as the Runtime API address).
        """
        ...

    async def limit_cpu(self, container_id: str, cpus: float) -> None:
        """Set a running container's CPU limit (CFS quota). A missing container is not an error."""
        ...

    async def kill(self, container_id: str) -> None:
        """SIGKILL the container and remove it with its anonymous volumes. Idempotent: a missing
        container is not an error."""
        ...

    async def list_managed(self, instance_id: str) -> list[str]:
        """Ids of all containers (running or not) labelled as ours for this controller instance."""
        ...

    async def list_states(self, instance_id: str) -> list[ContainerState]:
        """Every container labelled as ours for this controller instance, with its state (how
        a dead one ended included): what reconciling after missed events compares against."""
        ...

    def max_memory_used_mb(self, container_id: str) -> int | None:
        """Peak memory of the container's cgroup in MB, or None when unknown. Cheap (a file read)."""
        ...

    async def watch(
        self,
        on_exit: ExitCallback,
        output: OutputSink,
        on_disconnect: LinkCallback | None = None,
        on_reconnect: LinkCallback | None = None,
    ) -> None:
        """Start watching our containers: `on_exit` when one dies (with its OOM flag), and each
        line a followed container writes to stdout/stderr offered to `output`.
        When the engine drops the event stream (dockerd restarted), `on_disconnect` is called,
        the engine reconnects by itself, and `on_reconnect` is called once the stream is open
        again: exits in between may have been missed (see list_states).
        Returns once watching has started; stops on close()."""
        ...

    async def follow_output(self, container_id: str, function: str, since: float | None = None) -> None:
        """Start offering a started container's output lines, as `function`'s, to the `output`
        given to watch(): from its first line, or from unix time `since` (following again after
        the engine restarted under a running container). No-op when its output is being followed
        already."""
        ...

    async def build_image(self, context_dir: Path, tag: str) -> str:
        """Build a Dockerfile context offline, confined (build network, memory limit, no
        function image as a base unless allowed); return the image id.

        Raises InvalidParameter naming a refused Dockerfile line, ImageBuildError carrying the
        tail of the build log."""
        ...

    async def image_exists(self, tag: str) -> bool: ...

    async def remove_image(self, tag: str) -> None:
        """Remove an image tag (the image too when no other tag names it). A missing tag is not an
        error; an image a container still uses is not removed (EngineError)."""
        ...

    async def close(self) -> None: ...
