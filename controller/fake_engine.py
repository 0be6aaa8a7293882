"""An in-memory `ContainerEngine` for unit tests: no Docker, deterministic, fast.

Its task network is loopback (127.0.0.0/16, gateway 127.0.0.1). A "container" is an asyncio
task that speaks the real Runtime API over HTTP from its own address (the client socket is bound
to the task's 127.0.x.y), so the controller's source-address checks are exercised for real. What
a fake container does is chosen per function name or image with a `FakeFunction`.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from fnplat.controller.engine import (
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_TASK,
    ContainerExit,
    ContainerHandle,
    ContainerState,
    ExitCallback,
    LinkCallback,
    NetworkInfo,
    OutputSink,
    TaskDefinition,
)
from fnplat.errors import EngineError

FAKE_SUBNET = "127.0.0.0/16"
FAKE_GATEWAY = "127.0.0.1"
KILLED_EXIT_CODE = 137


@dataclass(slots=True)
class FakeContext:
    """What a fake handler learns about its invocation, plus a way to write output lines."""

    request_id: str
    headers: Mapping[str, str]
    container_id: str
    _print: Callable[[str], None]

    def print(self, line: str) -> None:
        self._print(line)


Handler = Callable[[bytes, FakeContext], Awaitable[bytes]]


class FakeExit(Exception):
    """Raised by a fake handler: the container exits with this code (OOM-killed if `oom`)."""

    def __init__(self, code: int, oom: bool = False) -> None:
        super().__init__(f"exit {code}")
        self.code = code
        self.oom = oom


class FakeFunctionError(Exception):
    """Raised by a fake handler: posted to /invocation/{id}/error with this errorType."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


async def echo(event: bytes, ctx: FakeContext) -> bytes:
    return event


def returns(value: object) -> Handler:
    body = value if isinstance(value, bytes) else json.dumps(value).encode()

    async def handler(event: bytes, ctx: FakeContext) -> bytes:
        return body

    return handler


def raises(error_type: str, message: str) -> Handler:
    async def handler(event: bytes, ctx: FakeContext) -> bytes:
        raise FakeFunctionError(error_type, message)

    return handler


def hangs() -> Handler:
    """Never answers (past any timeout) until the container is killed."""

    async def handler(event: bytes, ctx: FakeContext) -> bytes:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return handler


def crashes(code: int) -> Handler:
    async def handler(event: bytes, ctx: FakeContext) -> bytes:
        raise FakeExit(code)

    return handler


def runs_out_of_memory() -> Handler:
    async def handler(event: bytes, ctx: FakeContext) -> bytes:
        raise FakeExit(KILLED_EXIT_CODE, oom=True)

    return handler


@dataclass(frozen=True, slots=True)
class FakeFunction:
    handler: Handler = echo
    init_error: tuple[str, str] | None = None  # (errorType, message): POST /init/error, then exit 1
    never_ready: bool = False  # init never finishes: the runtime never asks for an event
    exit_during_init: int | None = None  # exit with this code before asking for an event
    init_delay_s: float = 0.0  # a slow init (a real await in the fake container, not in the tests)
    max_memory_mb: int | None = 42


@dataclass(slots=True, eq=False)
class FakeContainer:
    container_id: str
    name: str
    ip: str
    taskdef: TaskDefinition | None
    labels: Mapping[str, str]
    environment: Mapping[str, str]
    behaviour: FakeFunction
    running: bool = True
    exit: ContainerExit | None = None
    requests: list[str] = field(default_factory=list)  # request ids this container received
    job: asyncio.Task[None] | None = None


class FakeEngine:
    def __init__(self, default: FakeFunction | None = None) -> None:
        self.default = default or FakeFunction()
        self.by_function: dict[str, FakeFunction] = {}
        self.by_image: dict[str, FakeFunction] = {}
        self.containers: dict[str, FakeContainer] = {}
        self.killed: list[str] = []
        self.images: set[str] = set()
        self.run_error: EngineError | None = None  # set to make run() fail
        self.run_delay_s = 0.0
        # Set to hold run()'s return until it is set: the container runs (and may ask for its
        # first event) before the controller learns its id, as Docker's answer can be late.
        self.run_returns: asyncio.Event | None = None
        self.cpu_limits: dict[str, float] = {}  # container id -> vCPUs, as limit_cpu() set them
        self.limit_cpu_error: EngineError | None = None  # set to make limit_cpu() fail
        self.run_gate: asyncio.Event | None = None  # set: run() waits for it (a slow `docker run`)
        self.list_gate: asyncio.Event | None = None  # set: list_states() takes its listing, then waits
        self.listings = 0  # listings list_states() has taken
        self.network: NetworkInfo | None = None
        self._ids = itertools.count(1)
        self.followed: list[tuple[str, float | None]] = []  # follow_output calls after a restart
        self.list_error: EngineError | None = None  # set to make list_states() fail
        self.kill_error: EngineError | None = None  # set to make kill() fail (the engine is away)
        self._on_exit: ExitCallback | None = None
        self._output: OutputSink | None = None
        self._on_disconnect: LinkCallback | None = None
        self._on_reconnect: LinkCallback | None = None
        self._changed: asyncio.Event | None = None

    # -- test set-up and observation ---------------------------------------------------------------
    def register(self, function_name: str, behaviour: FakeFunction) -> None:
        self.by_function[function_name] = behaviour

    def register_image(self, image: str, behaviour: FakeFunction) -> None:
        self.by_image[image] = behaviour

    def add_container(self, labels: Mapping[str, str], *, running: bool = False) -> str:
        """A container that exists before the controller starts (an orphan, or someone else's)."""
        container_id = f"fake-{next(self._ids)}"
        self.containers[container_id] = FakeContainer(
            container_id, container_id, "", None, dict(labels), {}, self.default, running=running
        )
        return container_id

    def running(self) -> list[FakeContainer]:
        return [c for c in self.containers.values() if c.running]

    def lose_events(self) -> None:
        """The event stream breaks, as when dockerd begins to restart (it closes its API first)."""
        if self._on_disconnect is not None:
            self._on_disconnect()

    async def die_unseen(self, container_id: str, code: int = KILLED_EXIT_CODE) -> None:
        """A container dies while no event stream is open: no `die` reaches the watcher, and the
        dead container stays listed (as Docker keeps a stopped container until it is removed)."""
        container = self.containers[container_id]
        if container.job is not None and not container.job.done():
            container.job.cancel()
            await asyncio.gather(container.job, return_exceptions=True)
        container.running = False
        container.exit = ContainerExit(container_id, code, False)
        self._notify()

    def regain_events(self) -> None:
        """The event stream is open again (dockerd answers again)."""
        if self._on_reconnect is not None:
            self._on_reconnect()

    async def restart(self, *, live_restore: bool = False) -> None:
        """dockerd restarts: the stream breaks, every container dies unseen (or, with live-restore,
        keeps running), and the stream comes back."""
        self.lose_events()
        if not live_restore:
            for container in self.running():
                await self.die_unseen(container.container_id)
        self.regain_events()

    async def wait_until(self, predicate: Callable[[], bool], within_s: float = 5.0) -> None:
        """Wait for an engine-visible condition (re-checked on every change), failing after within_s."""
        async with asyncio.timeout(within_s):
            while not predicate():
                if self._changed is None:
                    self._changed = asyncio.Event()
                await self._changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # -- ContainerEngine ----------------------------------------------------------------------------
    async def ensure_network(self, name: str, subnet: str) -> NetworkInfo:
        self.network = NetworkInfo(name=name, subnet=FAKE_SUBNET, gateway_ip=FAKE_GATEWAY)
        return self.network

    async def ensure_build_network(self, name: str, subnet: str) -> NetworkInfo:
        gateway = str(next(ipaddress.ip_network(subnet).hosts()))
        return NetworkInfo(name=name, subnet=subnet, gateway_ip=gateway)

    async def run(
        self, taskdef: TaskDefinition, name: str, ip: str, environment: Mapping[str, str]
    ) -> ContainerHandle:
        if self.run_delay_s:
            await asyncio.sleep(self.run_delay_s)
        if self.run_gate is not None:
            await self.run_gate.wait()
        if self.run_error is not None:
            raise self.run_error
        behaviour = self.by_function.get(taskdef.family) or self.by_image.get(taskdef.image) or self.default
        container_id = f"fake-{next(self._ids)}"
        container = FakeContainer(
            container_id,
            name,
            ip,
            taskdef,
            dict(taskdef.labels),
            {**taskdef.environment, **environment},
            behaviour,
        )
        self.containers[container_id] = container
        container.job = asyncio.get_running_loop().create_task(self._life(container))
        self._notify()
        if self.run_returns is not None:
            await self.run_returns.wait()
        return ContainerHandle(container_id=container_id, name=name, ip=ip)

    async def limit_cpu(self, container_id: str, cpus: float) -> None:
        if self.limit_cpu_error is not None:
            raise self.limit_cpu_error
        self.cpu_limits[container_id] = cpus

    async def kill(self, container_id: str) -> None:
        if self.kill_error is not None:
            raise self.kill_error
        container = self.containers.pop(container_id, None)
        if container is None:
            return
        self.killed.append(container_id)
        if container.job is not None and not container.job.done():
            container.job.cancel()
            await asyncio.gather(container.job, return_exceptions=True)
        if container.running:  # Docker reports the kill as a `die` event
            await self._exited(container, KILLED_EXIT_CODE, False)
        self._notify()

    async def list_managed(self, instance_id: str) -> list[str]:
        return [
            c.container_id
            for c in self.containers.values()
            if c.labels.get(LABEL_MANAGED) == "true" and c.labels.get(LABEL_INSTANCE) == instance_id
        ]

    async def list_states(self, instance_id: str) -> list[ContainerState]:
        if self.list_error is not None:
            raise self.list_error
        ours = set(await self.list_managed(instance_id))
        states = [
            ContainerState(
                c.container_id,
                c.running,
                c.exit.exit_code if c.exit is not None else -1,
                c.exit.oom_killed if c.exit is not None else False,
                c.labels.get(LABEL_TASK),
            )
            for c in self.containers.values()
            if c.container_id in ours
        ]
        self.listings += 1
        self._notify()
        if self.list_gate is not None:
            await self.list_gate.wait()
        return states

    def max_memory_used_mb(self, container_id: str) -> int | None:
        container = self.containers.get(container_id)
        return container.behaviour.max_memory_mb if container is not None else None

    async def watch(
        self,
        on_exit: ExitCallback,
        output: OutputSink,
        on_disconnect: LinkCallback | None = None,
        on_reconnect: LinkCallback | None = None,
    ) -> None:
        self._on_exit, self._output = on_exit, output
        self._on_disconnect, self._on_reconnect = on_disconnect, on_reconnect

    async def follow_output(self, container_id: str, function: str, since: float | None = None) -> None:
        # Output is always delivered once watch() was called; only a follow again is noted.
        if since is not None:
            self.followed.append((container_id, since))

    async def build_image(self, context_dir: Path, tag: str) -> str:
        self.images.add(tag)
        return f"sha256:{abs(hash((str(context_dir), tag))):064x}"[:71]

    async def image_exists(self, tag: str) -> bool:
        return tag in self.images

    async def remove_image(self, tag: str) -> None:
        if any(c.taskdef is not None and c.taskdef.image == tag for c in self.containers.values()):
            raise EngineError(f"image {tag} is in use by a container")
        self.images.discard(tag)

    async def close(self) -> None:
        for container_id in list(self.containers):
            await self.kill(container_id)

    # -- a fake container's life ------------------------------------------------------------------
    async def _life(self, container: FakeContainer) -> None:
        base = f"http://{container.environment['AWS_LAMBDA_RUNTIME_API']}/2018-06-01"
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(container.ip, 0)),
            timeout=aiohttp.ClientTimeout(total=None),  # `next` long-polls without limit
        )
        try:
            code, oom = await self._runtime(container, session, base)
        except aiohttp.ClientError:
            code, oom = 1, False  # the runtime lost its API: it exits
        finally:
            await session.close()
        await self._exited(container, code, oom)

    async def _runtime(
        self, container: FakeContainer, session: aiohttp.ClientSession, base: str
    ) -> tuple[int, bool]:
        behaviour = container.behaviour
        if behaviour.init_delay_s:
            await asyncio.sleep(behaviour.init_delay_s)
        if behaviour.exit_during_init is not None:
            return behaviour.exit_during_init, False
        if behaviour.init_error is not None:
            error_type, message = behaviour.init_error
            body = {"errorMessage": message, "errorType": error_type, "requestId": "", "stackTrace": []}
            headers = {"Lambda-Runtime-Function-Error-Type": error_type}
            async with session.post(f"{base}/runtime/init/error", json=body, headers=headers):
                pass
            return 1, False
        if behaviour.never_ready:
            await asyncio.Event().wait()
        while True:
            async with session.get(f"{base}/runtime/invocation/next") as response:
                if response.status != 200:
                    return 1, False
                event = await response.read()
                headers = dict(response.headers)
            request_id = headers["Lambda-Runtime-Aws-Request-Id"]
            container.requests.append(request_id)
            self._notify()
            context = FakeContext(request_id, headers, container.container_id, self._printer(container))
            try:
                result = await behaviour.handler(event, context)
            except FakeExit as exit_:
                return exit_.code, exit_.oom
            except Exception as exc:
                error_type = exc.error_type if isinstance(exc, FakeFunctionError) else type(exc).__name__
                # As awslambdaric: the type only in the body, no Error-Type header.
                error = {
                    "errorMessage": str(exc),
                    "errorType": error_type,
                    "requestId": request_id,
                    "stackTrace": [],
                }
                url, data = f"{base}/runtime/invocation/{request_id}/error", json.dumps(error).encode()
            else:
                url, data = f"{base}/runtime/invocation/{request_id}/response", result
            async with session.post(url, data=data, headers={"Content-Type": "application/json"}) as posted:
                if posted.status >= 300:
                    return 1, False  # as awslambdaric: a refused POST ends the process

    def _printer(self, container: FakeContainer) -> Callable[[str], None]:
        def emit(line: str) -> None:
            if self._output is not None:
                function = container.taskdef.family if container.taskdef is not None else ""
                self._output.offer(function, container.container_id, line.encode(), time.time())

        return emit

    async def _exited(self, container: FakeContainer, code: int, oom: bool) -> None:
        if not container.running:
            return
        container.running = False
        container.exit = ContainerExit(container.container_id, code, oom)
        self._notify()
        if self._on_exit is not None:
            outcome = self._on_exit(container.exit)
            if inspect.isawaitable(outcome):
                await outcome
