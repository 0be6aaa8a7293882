"""The real container engine: Docker through the docker SDK (the only module that imports it).

Blocking SDK calls run on a dedicated thread pool, so a burst of cold starts does not queue
behind the event loop's small default executor. Every failure leaves this module as
`EngineError` (or `ImageBuildError` for a failed build), mapped in one place: `_engine_error`.
Two long-lived kinds of threads stream from the engine: one consumes the events stream (exits
and OOM kills of our containers), one per followed container streams its log lines.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import ipaddress
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import docker
import docker.errors
import requests
from docker.types import IPAMConfig, IPAMPool, LogConfig

from fnplat.controller.engine import (
    LABEL_INSTANCE,
    LABEL_MANAGED,
    ContainerExit,
    ContainerHandle,
    ExitCallback,
    NetworkInfo,
    TaskDefinition,
)
from fnplat.errors import EngineError, ImageBuildError

log = logging.getLogger(__name__)

T = TypeVar("T")
LineCallback = Callable[[str, str, float], None]  # (container_id, line, unix timestamp)

ICC_OPTION = "com.docker.network.bridge.enable_icc"
LOG_MAX_SIZE = "1m"  # the controller reads lines as they come; the file is only a buffer
BUILD_TIMEOUT_S = 1800  # seconds without build output before we give up (apt steps are slow)
BUILD_LOG_TAIL = 20
CGROUP_ROOT = Path("/sys/fs/cgroup")
_FULL_ID_RE = re.compile(r"^[0-9a-f]{64}$")


class ClientFactory(Protocol):
    def __call__(self, *, max_pool_size: int) -> docker.DockerClient: ...


# --------------------------------------------------------------------------------------------
# Pure decisions: what to ask Docker for, and what its answers mean. No I/O below this line
# until DockerEngine.


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def _image_hint(image: str) -> str:
    if image.startswith("fnplat/"):
        return "run scripts/build-images.sh"
    return "build or load it on this host first (no registry is used)"


def _engine_error(exc: BaseException, action: str, image: str | None = None) -> EngineError:
    """Map any failure of a Docker call into one EngineError with a message a person can act on."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, docker.errors.ImageNotFound) and image is not None:
        return EngineError(f"image {image} not found: {_image_hint(image)}")
    if isinstance(exc, requests.exceptions.Timeout):
        return EngineError(f"Docker engine at {docker_host()} did not answer in time to {action}")
    if isinstance(exc, requests.exceptions.ConnectionError) or (
        isinstance(exc, docker.errors.DockerException) and "fetching server API version" in str(exc)
    ):
        return EngineError(f"Docker engine not reachable at {docker_host()}: is dockerd running? ({exc})")
    if isinstance(exc, docker.errors.APIError):
        detail = exc.explanation or str(exc)
        return EngineError(f"Docker engine failed to {action} (HTTP {exc.status_code}): {detail}")
    if isinstance(exc, docker.errors.DockerException):
        return EngineError(f"Docker failed to {action}: {exc}")
    return EngineError(f"unexpected failure trying to {action}: {type(exc).__name__}: {exc}")


def gateway_of(subnet: str) -> str:
    return str(next(ipaddress.ip_network(subnet).hosts()))


def check_existing_network(name: str, subnet: str, attrs: Mapping[str, Any]) -> NetworkInfo:
    """Accept an existing network only if it is ours and has the subnet we asked for."""
    labels = attrs.get("Labels") or {}
    if labels.get(LABEL_MANAGED) != "true":
        raise EngineError(f"network {name} exists but was not created by fnplat (no {LABEL_MANAGED} label)")
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    if not configs or not configs[0].get("Subnet"):
        raise EngineError(f"network {name} exists but has no IPv4 subnet")
    have = ipaddress.ip_network(configs[0]["Subnet"])
    if have != ipaddress.ip_network(subnet):
        raise EngineError(
            f"network {name} exists with subnet {have}, not {subnet}: remove it or change the setting"
        )
    return NetworkInfo(
        name=name, subnet=str(have), gateway_ip=configs[0].get("Gateway") or gateway_of(subnet)
    )


def find_overlap(subnet: str, networks: list[Mapping[str, Any]]) -> str | None:
    """Name and subnet of the first existing network whose subnet overlaps ours, if any."""
    wanted = ipaddress.ip_network(subnet)
    for net in networks:
        for config in (net.get("IPAM") or {}).get("Config") or []:
            other = config.get("Subnet")
            if not other:
                continue
            try:
                other_net = ipaddress.ip_network(other)
            except ValueError:
                continue
            if other_net.version == wanted.version and other_net.overlaps(wanted):
                return f"{net.get('Name')} ({other_net})"
    return None


def container_labels(taskdef: TaskDefinition, instance_id: str) -> dict[str, str]:
    return {**taskdef.labels, LABEL_MANAGED: "true", LABEL_INSTANCE: instance_id}


def container_environment(taskdef: TaskDefinition, environment: Mapping[str, str]) -> list[str]:
    merged = {**taskdef.environment, **environment}
    return [f"{key}={value}" for key, value in merged.items()]


def host_config_args(taskdef: TaskDefinition, network: str) -> dict[str, Any]:
    """The sandbox: everything `create_host_config` gets for a task (see product.md, sandboxes)."""
    args: dict[str, Any] = {
        "network_mode": network,  # the task network only, never the default bridge
        "read_only": True,
        # exec: Lambda lets functions run programs they unpack into /tmp.
        "tmpfs": {"/tmp": f"rw,exec,size={taskdef.tmp_size_mb}m,mode=1777"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": taskdef.pids_limit,
        "mem_limit": f"{taskdef.memory_mb}m",
        "memswap_limit": f"{taskdef.memory_mb}m",  # equal to mem_limit: no swap
        "init": True,  # reap zombies the function leaves behind
        "auto_remove": False,  # we need the exit state (exit code, OOMKilled) after it dies
        "log_config": LogConfig(type="json-file", config={"max-size": LOG_MAX_SIZE, "max-file": "1"}),
    }
    if taskdef.cpu_shares is not None:
        args["cpu_shares"] = taskdef.cpu_shares
    if taskdef.code_dir is not None:
        args["binds"] = {str(taskdef.code_dir): {"bind": "/var/task", "mode": "ro"}}
    return args


def build_failure(tag: str, error: str, tail: collections.deque[str]) -> str:
    message = f"image build of {tag} failed: {error.strip()}"
    if tail:
        message += "\n--- last lines of the build log ---\n" + "\n".join(tail)
    return message


def parse_exit_event(event: Mapping[str, Any]) -> tuple[str, str, int]:
    """(action, container id, exit code) of a container event; exit code -1 when absent."""
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    action = str(event.get("Action") or event.get("status") or "")
    container_id = str(actor.get("ID") or event.get("id") or "")
    try:
        code = int(attributes.get("exitCode", -1))
    except (TypeError, ValueError):
        code = -1
    return action, container_id, code


def parse_timestamp_ns(text: str) -> int | None:
    """Docker's RFC 3339 timestamps (`2024-05-01T10:20:30.123456789Z`) as integer nanoseconds."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", text)
    if match is None:
        return None
    whole = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return int(whole.timestamp()) * 10**9 + int((match.group(2) or "0").ljust(9, "0"))


class LogLines:
    """Turns timestamped log frames into complete lines, and remembers how far it has read.

    Docker splits lines longer than 16 KiB into partial frames without a newline that share
    one timestamp: frames are joined while their timestamp stays the same, and a frame without
    a newline followed by a different timestamp is a line of its own (output that did not end
    in a newline). The read position lets a second read skip what the first delivered.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._pending_ns = 0
        self._last_ns = 0  # newest frame timestamp seen
        self._seen_at_last = 0  # frames seen with exactly that timestamp
        self._replay_skip = 0

    def since(self) -> int | None:
        """Whole second to re-read from (Docker's `since` is inclusive), or None for everything."""
        return self._last_ns // 10**9 if self._last_ns else None

    def begin_replay(self) -> None:
        """A second read starts: frames up to and including the read position are skipped."""
        self._replay_skip = self._seen_at_last

    def feed(self, frame: bytes, replay: bool = False) -> list[tuple[str, float]]:
        text = frame.decode("utf-8", errors="replace")
        stamp, sep, message = text.partition(" ")
        ts_ns = parse_timestamp_ns(stamp) if sep else None
        if ts_ns is None:  # not timestamped: take the frame as it is
            ts_ns, message = time.time_ns(), text
        if replay and not self._is_new(ts_ns):
            return []
        if ts_ns > self._last_ns:
            self._last_ns, self._seen_at_last = ts_ns, 1
        elif ts_ns == self._last_ns:
            self._seen_at_last += 1
        return self._assemble(ts_ns, message)

    def _is_new(self, ts_ns: int) -> bool:
        if ts_ns < self._last_ns:
            return False
        if ts_ns == self._last_ns and self._replay_skip > 0:
            self._replay_skip -= 1
            return False
        return True

    def _assemble(self, ts_ns: int, message: str) -> list[tuple[str, float]]:
        lines: list[tuple[str, float]] = []
        if self._pending and ts_ns != self._pending_ns:
            lines.extend(self.flush())
        if not self._pending:
            self._pending_ns = ts_ns
        *complete, self._pending = (self._pending + message).split("\n")
        lines.extend((line, self._pending_ns / 1e9) for line in complete)
        return lines

    def flush(self) -> list[tuple[str, float]]:
        if not self._pending:
            return []
        line, self._pending = self._pending, ""
        return [(line, self._pending_ns / 1e9)]


def cgroup_peak_files(container_id: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Where the kernel keeps a container's peak memory, for each cgroup version and driver."""
    if not _FULL_ID_RE.match(container_id):
        return []  # never build a path from anything but a full container id
    return [
        root / "memory" / "docker" / container_id / "memory.max_usage_in_bytes",  # v1, cgroupfs
        root / "memory" / "system.slice" / f"docker-{container_id}.scope" / "memory.max_usage_in_bytes",
        root / "docker" / container_id / "memory.peak",  # v2, cgroupfs
        root / "system.slice" / f"docker-{container_id}.scope" / "memory.peak",  # v2, systemd
    ]


# --------------------------------------------------------------------------------------------


class DockerEngine:
    """`ContainerEngine` on the local Docker engine. See controller/engine.py for the contract."""

    def __init__(
        self,
        instance_id: str,
        *,
        client_factory: ClientFactory = docker.from_env,
        max_workers: int = 32,
        cgroup_root: Path = CGROUP_ROOT,
    ) -> None:
        self.instance_id = instance_id
        self._client_factory = client_factory
        self._max_workers = max_workers
        self._cgroup_root = cgroup_root
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fnplat-docker")
        self._client_lock = threading.Lock()
        self._client: docker.DockerClient | None = None
        self._network: NetworkInfo | None = None
        self._closing = threading.Event()
        self._streams_lock = threading.Lock()
        self._streams: dict[str, Any] = {}  # key -> open CancellableStream, closed on close()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_exit: ExitCallback | None = None
        self._on_output: LineCallback | None = None
        self._event_thread: threading.Thread | None = None
        self._pending: set[asyncio.Future[None]] = set()  # awaitables returned by on_exit

    # ---- plumbing ---------------------------------------------------------------------------

    def _api(self) -> Any:
        """The low-level APIClient, created on first use (on a worker thread: it talks to dockerd)."""
        with self._client_lock:
            if self._client is None:
                # Pool as large as the executor: each worker thread may hold a connection.
                self._client = self._client_factory(max_pool_size=self._max_workers)
            return self._client.api

    async def _call(self, action: str, fn: Callable[..., T], *args: Any, image: str | None = None) -> T:
        """Run a blocking Docker operation on our pool; every failure becomes an EngineError."""
        if self._closing.is_set():
            raise EngineError(f"cannot {action}: the container engine is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, partial(fn, *args))
        except ImageBuildError:
            raise
        except Exception as exc:
            raise _engine_error(exc, action, image) from exc

    def _deliver(self, callback: Callable[..., Any], *args: Any) -> None:
        """Hand a call to the event loop from a streaming thread (the loop may be gone at shutdown)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(callback, *args)

    # ---- network ----------------------------------------------------------------------------

    async def ensure_network(self, name: str, subnet: str) -> NetworkInfo:
        try:
            ipaddress.ip_network(subnet)
        except ValueError as exc:
            raise EngineError(f"invalid task subnet {subnet!r}: {exc}") from exc
        info = await self._call(f"set up network {name}", self._ensure_network_sync, name, subnet)
        self._network = info
        return info

    def _ensure_network_sync(self, name: str, subnet: str) -> NetworkInfo:
        api = self._api()
        existing = self._inspect_network(api, name)
        if existing is not None:
            return check_existing_network(name, subnet, existing)
        overlap = find_overlap(subnet, api.networks())
        if overlap is not None:
            raise EngineError(f"cannot create network {name}: subnet {subnet} overlaps network {overlap}")
        gateway = gateway_of(subnet)
        try:
            api.create_network(
                name,
                driver="bridge",
                ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet, gateway=gateway)]),
                options={ICC_OPTION: "false"},  # tasks cannot reach each other
                labels={LABEL_MANAGED: "true"},
                check_duplicate=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: another controller created it just now
                raise
        existing = self._inspect_network(api, name)
        if existing is None:
            raise EngineError(f"network {name} vanished right after it was created")
        return check_existing_network(name, subnet, existing)

    @staticmethod
    def _inspect_network(api: Any, name: str) -> dict[str, Any] | None:
        try:
            attrs = cast(dict[str, Any], api.inspect_network(name))
        except docker.errors.NotFound:
            return None
        # inspect also matches id prefixes: only an exact name is the network we mean.
        return attrs if attrs.get("Name") == name else None

    # ---- containers -------------------------------------------------------------------------

    async def run(
        self, taskdef: TaskDefinition, name: str, ip: str, environment: Mapping[str, str]
    ) -> ContainerHandle:
        network = self._network
        if network is None:
            raise EngineError("ensure_network() must be called before run()")
        container_id = await self._call(
            f"start container {name}",
            self._run_sync,
            taskdef,
            name,
            ip,
            environment,
            network.name,
            image=taskdef.image,
        )
        return ContainerHandle(container_id=container_id, name=name, ip=ip)

    def _run_sync(
        self, taskdef: TaskDefinition, name: str, ip: str, environment: Mapping[str, str], network: str
    ) -> str:
        api = self._api()
        created = api.create_container(
            image=taskdef.image,
            command=list(taskdef.command) if taskdef.command is not None else None,
            name=name,
            user=taskdef.user,
            environment=container_environment(taskdef, environment),
            labels=container_labels(taskdef, self.instance_id),
            host_config=api.create_host_config(**host_config_args(taskdef, network)),
            networking_config=api.create_networking_config(
                {network: api.create_endpoint_config(ipv4_address=ip)}
            ),
        )
        container_id = cast(str, created["Id"])
        try:
            api.start(container_id)
        except Exception:
            # A created-but-never-started container would hold its name and address: remove it.
            try:
                api.remove_container(container_id, force=True)
            except docker.errors.DockerException:
                log.warning("could not remove container %s after a failed start", container_id)
            raise
        return container_id

    async def kill(self, container_id: str) -> None:
        await self._call(f"remove container {container_id[:12]}", self._kill_sync, container_id)

    def _kill_sync(self, container_id: str) -> None:
        try:
            # force=True is SIGKILL then remove, in one call.
            self._api().remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "already in progress" in str(exc.explanation):
                return  # a concurrent kill of the same container is doing it
            raise

    async def list_managed(self, instance_id: str) -> list[str]:
        filters = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={instance_id}"]}
        return await self._call("list containers", self._list_sync, filters)

    def _list_sync(self, filters: dict[str, list[str]]) -> list[str]:
        found = cast(list[dict[str, Any]], self._api().containers(all=True, filters=filters))
        return [str(container["Id"]) for container in found]

    def max_memory_used_mb(self, container_id: str) -> int | None:
        for path in cgroup_peak_files(container_id, self._cgroup_root):
            try:
                peak = int(path.read_text().strip())
            except (OSError, ValueError):
                continue
            return math.ceil(peak / (1024 * 1024))
        return None

    # ---- images -----------------------------------------------------------------------------

    async def build_image(self, context_dir: Path, tag: str) -> str:
        if not (context_dir / "Dockerfile").is_file():
            raise ImageBuildError(f"cannot build {tag}: {context_dir} has no Dockerfile")
        return await self._call(f"build image {tag}", self._build_sync, context_dir, tag)

    def _build_sync(self, context_dir: Path, tag: str) -> str:
        api = self._api()
        tail: collections.deque[str] = collections.deque(maxlen=BUILD_LOG_TAIL)
        image_id: str | None = None
        try:
            for chunk in api.build(
                path=str(context_dir),
                tag=tag,
                pull=False,
                rm=True,
                forcerm=True,
                decode=True,
                labels={LABEL_MANAGED: "true"},
                timeout=BUILD_TIMEOUT_S,
            ):
                if "stream" in chunk:
                    tail.extend(line for line in str(chunk["stream"]).splitlines() if line.strip())
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = str(aux["ID"])
                if "error" in chunk:
                    raise ImageBuildError(build_failure(tag, str(chunk["error"]), tail))
        except docker.errors.APIError as exc:
            # The daemon refused the build itself (no Dockerfile, unknown instruction, bad option).
            raise ImageBuildError(build_failure(tag, str(exc.explanation or exc), tail)) from exc
        if image_id is None:
            image_id = str(api.inspect_image(tag)["Id"])
        return image_id

    async def image_exists(self, tag: str) -> bool:
        return await self._call(f"inspect image {tag}", self._image_exists_sync, tag)

    def _image_exists_sync(self, tag: str) -> bool:
        try:
            self._api().inspect_image(tag)
        except docker.errors.ImageNotFound:
            return False
        return True

    # ---- watching ---------------------------------------------------------------------------

    async def watch(self, on_exit: ExitCallback, on_output: LineCallback) -> None:
        if self._event_thread is not None:
            raise EngineError("watch() was already called on this engine")
        self._loop = asyncio.get_running_loop()
        self._on_exit, self._on_output = on_exit, on_output
        # Open the stream before returning, so no exit after watch() returns can be missed.
        stream = await self._call("watch container events", self._open_events, None)
        self._event_thread = threading.Thread(
            target=self._event_loop, args=(stream,), name="fnplat-docker-events", daemon=True
        )
        self._event_thread.start()

    def _open_events(self, since: str | None) -> Any:
        stream = self._api().events(
            since=since,
            decode=True,
            filters={
                "type": "container",
                "label": f"{LABEL_INSTANCE}={self.instance_id}",
                "event": ["die", "oom"],
            },
        )
        self._track("events", stream)
        return stream

    def _event_loop(self, stream: Any) -> None:
        """Consume events until close(); reconnect (from the last event seen) if dockerd drops us."""
        oom_seen: set[str] = set()
        resume_nano = time.time_ns()  # after a reconnect, replay from just after the last event seen
        backoff = 0.1
        while not self._closing.is_set():
            try:
                if stream is None:
                    stream = self._open_events(f"{resume_nano // 10**9}.{resume_nano % 10**9:09d}")
                for event in stream:
                    backoff = 0.1
                    if event.get("timeNano"):
                        resume_nano = int(event["timeNano"]) + 1
                    self._handle_event(event, oom_seen)
            except Exception:
                if not self._closing.is_set():
                    log.exception("Docker events stream failed; reconnecting")
            stream = None
            if self._closing.wait(backoff):  # wait out a dockerd restart, not a test synchronisation
                break
            backoff = min(backoff * 2, 5.0)

    def _handle_event(self, event: Mapping[str, Any], oom_seen: set[str]) -> None:
        action, container_id, exit_code = parse_exit_event(event)
        if action == "oom":
            oom_seen.add(container_id)
            return
        if action != "die" or not container_id:
            return
        oom = container_id in oom_seen
        oom_seen.discard(container_id)
        if not oom and exit_code != 0:
            # The oom event can be missing (or come late); the container state is authoritative.
            # A clean exit cannot be an OOM kill, so we skip that round trip.
            oom = self._oom_killed(container_id)
        self._deliver(self._dispatch_exit, ContainerExit(container_id, exit_code, oom))

    def _oom_killed(self, container_id: str) -> bool:
        try:
            state = self._api().inspect_container(container_id)["State"]
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False  # removed already (kill() removes): not an OOM we can know about
        return bool(state.get("OOMKilled"))

    def _dispatch_exit(self, exit_: ContainerExit) -> None:
        """On the loop: call on_exit and keep any awaitable it returns running to completion."""
        if self._on_exit is None:
            return
        try:
            result = self._on_exit(exit_)
        except Exception:
            log.exception("on_exit callback failed for %s", exit_.container_id)
            return
        if inspect.isawaitable(result):
            future = asyncio.ensure_future(result)
            self._pending.add(future)
            future.add_done_callback(self._finish_exit_callback)

    def _finish_exit_callback(self, future: asyncio.Future[None]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("on_exit callback failed", exc_info=future.exception())

    async def follow_output(self, container_id: str) -> None:
        if self._on_output is None:
            raise EngineError("watch() must be called before follow_output()")
        if self._closing.is_set():
            raise EngineError("cannot follow output: the container engine is closed")
        # No round trip here: logs are read from the start, so nothing written before the
        # stream opens is lost, and run() → ready stays on the fast path.
        threading.Thread(
            target=self._follow_sync,
            args=(container_id,),
            name=f"fnplat-logs-{container_id[:12]}",
            daemon=True,
        ).start()

    def _follow_sync(self, container_id: str) -> None:
        key = f"logs:{container_id}"
        lines = LogLines()
        on_output = self._on_output
        assert on_output is not None

        def read(follow: bool) -> None:
            stream = self._api().logs(
                container_id,
                stdout=True,
                stderr=True,
                stream=True,
                follow=follow,
                timestamps=True,
                since=None if follow else lines.since(),
            )
            self._track(key, stream)
            for frame in cast(Iterator[bytes], stream):
                for line, ts in lines.feed(frame, replay=not follow):
                    self._deliver(on_output, container_id, line, ts)

        try:
            read(follow=True)
            if not self._closing.is_set():
                # Docker can end a follow stream before it has written the container's last
                # output (a race at exit): read once more from where we are and skip the rest.
                lines.begin_replay()
                read(follow=False)
        except docker.errors.NotFound:
            pass  # removed (killed): nothing more to read
        except docker.errors.APIError as exc:
            # 409: the container is dead or being removed (killed): nothing more to read.
            if exc.status_code != 409 and not self._closing.is_set():
                log.exception("following the output of %s failed", container_id[:12])
        except Exception:
            if not self._closing.is_set():
                log.exception("following the output of %s failed", container_id[:12])
        finally:
            for line, ts in lines.flush():
                self._deliver(on_output, container_id, line, ts)
            self._untrack(key)

    def _track(self, key: str, stream: Any) -> None:
        with self._streams_lock:
            self._streams[key] = stream
        if self._closing.is_set():  # close() ran while we were connecting
            self._close_stream(stream)

    def _untrack(self, key: str) -> None:
        with self._streams_lock:
            self._streams.pop(key, None)

    @staticmethod
    def _close_stream(stream: Any) -> None:
        try:
            stream.close()
        except Exception:  # already closed, or the socket is gone: either way it is closed
            log.debug("closing a Docker stream failed", exc_info=True)

    # ---- shutdown ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        with self._streams_lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            self._close_stream(stream)
        if self._event_thread is not None:
            await asyncio.to_thread(self._event_thread.join, 5.0)
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
