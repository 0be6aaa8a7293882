"""The real container engine: Docker through the docker SDK (the only module that imports it).

Blocking SDK calls run on a dedicated thread pool, so a burst of cold starts does not queue
behind the event loop's small default executor. Every failure leaves this module as
`EngineError` (or `ImageBuildError` for a failed build), mapped in one place: `_engine_error`.
What to ask Docker for is decided in docker_decisions.py (pure); the long-lived event and log
streams are consumed by docker_watchers.py, on threads, through calls this module passes in.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import docker
import docker.errors
import requests
from docker.types import IPAMConfig, IPAMPool

from fnplat.controller.cgroup_memory import PeakMemoryReader
from fnplat.controller.docker_decisions import (
    BUILD_LOG_TAIL,
    BUILD_TIMEOUT_S,
    CGROUP_ROOT,
    ICC_OPTION,
    build_failure,
    check_existing_network,
    container_environment,
    container_labels,
    container_state,
    cpu_limit_args,
    exit_event_filters,
    find_overlap,
    gateway_of,
    host_config_args,
    image_hint,
    image_volumes,
    managed_filters,
)
from fnplat.controller.docker_watchers import ExitWatcher, LoopHandoff, OpenStreams, OutputFollower
from fnplat.controller.dockerfile_check import FUNCTION_BASE_REASON, ImageReference, check_dockerfile, refusal
from fnplat.controller.engine import (
    LABEL_MANAGED,
    BuildLimits,
    ContainerHandle,
    ContainerState,
    ExitCallback,
    LinkCallback,
    NetworkInfo,
    OutputSink,
    TaskDefinition,
)
from fnplat.errors import EngineError, ImageBuildError

log = logging.getLogger(__name__)

KILL_WAIT_S = 30  # a SIGKILLed container is gone in well under a second

T = TypeVar("T")


class ClientFactory(Protocol):
    def __call__(self, *, max_pool_size: int) -> docker.DockerClient: ...


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def _engine_error(exc: BaseException, action: str, image: str | None = None) -> EngineError:
    """Map any failure of a Docker call into one EngineError with a message a person can act on."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, docker.errors.ImageNotFound) and image is not None:
        return EngineError(f"image {image} not found: {image_hint(image)}")
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


def _container_gone(exc: BaseException) -> bool:
    """A failure that only says the container was removed, or is dead or being removed (409)."""
    if isinstance(exc, docker.errors.NotFound):
        return True
    return isinstance(exc, docker.errors.APIError) and exc.status_code == 409


class DockerEngine:
    """`ContainerEngine` on the local Docker engine. See controller/engine.py for the contract."""

    def __init__(
        self,
        instance_id: str,
        *,
        client_factory: ClientFactory = docker.from_env,
        max_workers: int = 32,
        cgroup_root: Path = CGROUP_ROOT,
        build_limits: BuildLimits | None = None,
    ) -> None:
        self.instance_id = instance_id
        self._build_limits = build_limits or BuildLimits()
        self._client_factory = client_factory
        self._max_workers = max_workers
        self._peak_memory = PeakMemoryReader(cgroup_root)
        self._kill_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fnplat-docker")
        self._client_lock = threading.Lock()
        self._client: docker.DockerClient | None = None
        self._network: NetworkInfo | None = None
        self._build_network: NetworkInfo | None = None
        # VOLUMEs each image declares, inspected once per image (tags of function images are
        # content-addressed): the only per-image Docker round trip on the cold-start path.
        self._image_volumes: dict[str, tuple[str, ...]] = {}
        self._streams = OpenStreams()  # also carries the closing flag
        self._exit_watcher: ExitWatcher | None = None
        self._output_follower: OutputFollower | None = None

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
        if self._streams.closing:
            raise EngineError(f"cannot {action}: the container engine is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, partial(fn, *args))
        except ImageBuildError:
            raise
        except Exception as exc:
            raise _engine_error(exc, action, image) from exc

    # ---- network ----------------------------------------------------------------------------

    async def ensure_network(self, name: str, subnet: str) -> NetworkInfo:
        try:
            ipaddress.ip_network(subnet)
        except ValueError as exc:
            raise EngineError(f"invalid task subnet {subnet!r}: {exc}") from exc
        info = await self._call(f"set up network {name}", self._ensure_network_sync, name, subnet)
        self._network = info
        return info

    async def ensure_build_network(self, name: str, subnet: str) -> NetworkInfo:
        try:
            ipaddress.ip_network(subnet)
        except ValueError as exc:
            raise EngineError(f"invalid build subnet {subnet!r}: {exc}") from exc
        info = await self._call(f"set up network {name}", self._ensure_network_sync, name, subnet)
        self._build_network = info
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
            # 409, or 403 "pool overlaps": another controller created it just now (several
            # share the build network); anything else, or no such network now, is a failure.
            if exc.status_code not in (403, 409) or self._inspect_network(api, name) is None:
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
        volumes = self._image_volumes.get(taskdef.image)
        if volumes is None:
            volumes = image_volumes(api.inspect_image(taskdef.image))
            self._image_volumes[taskdef.image] = volumes
        created = api.create_container(
            image=taskdef.image,
            command=list(taskdef.command) if taskdef.command is not None else None,
            name=name,
            user=taskdef.user,
            environment=container_environment(taskdef, environment),
            labels=container_labels(taskdef, self.instance_id),
            host_config=api.create_host_config(**host_config_args(taskdef, network, volumes)),
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
                api.remove_container(container_id, force=True, v=True)
            except docker.errors.DockerException:
                log.warning("could not remove container %s after a failed start", container_id)
            raise
        return container_id

    async def limit_cpu(self, container_id: str, cpus: float) -> None:
        action = f"limit the CPU of container {container_id[:12]}"
        await self._call(action, self._limit_cpu_sync, container_id, cpus)

    def _limit_cpu_sync(self, container_id: str, cpus: float) -> None:
        try:
            self._api().update_container(container_id, **cpu_limit_args(cpus))
        except docker.errors.APIError as exc:
            if not _container_gone(exc):
                raise

    async def kill(self, container_id: str) -> None:
        self._peak_memory.forget(container_id)
        # One at a time: containers of one network removed concurrently make Docker 20.10 miscount
        # the network's endpoints (then it can never be removed until dockerd restarts): 1 run in
        # 3-5 leaked when 100 tasks were stopped at once, none in 5 when serialised. A kill takes
        # tens of milliseconds; the waiting is done here, on the loop, not by the thread pool.
        async with self._kill_lock:
            await self._call(f"remove container {container_id[:12]}", self._kill_sync, container_id)

    def _kill_sync(self, container_id: str) -> None:
        # SIGKILL, wait for the exit, then remove. Not remove(force=True): when a container exits
        # on its own while a forced removal runs (a stopped task's runtime exits as soon as its
        # `next` is refused), Docker 20.10 leaks the network endpoint; the leaked endpoint keeps
        # its address and the network can never be removed again (until dockerd restarts).
        api = self._api()
        try:
            api.kill(container_id)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: not running any more, which is what we want
                raise
        try:
            api.wait(container_id, timeout=KILL_WAIT_S)
            api.remove_container(container_id, v=True)  # v: its anonymous volumes too
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "already in progress" in str(exc.explanation):
                return  # a concurrent kill of the same container is doing it
            raise
        except requests.exceptions.ReadTimeout:
            # Stuck past SIGKILL (a hung mount, say): force it, as nothing else would.
            api.remove_container(container_id, force=True, v=True)

    async def list_managed(self, instance_id: str) -> list[str]:
        return await self._call("list containers", self._list_sync, managed_filters(instance_id))

    def _list_sync(self, filters: dict[str, list[str]]) -> list[str]:
        found = cast(list[dict[str, Any]], self._api().containers(all=True, filters=filters))
        return [str(container["Id"]) for container in found]

    async def list_states(self, instance_id: str) -> list[ContainerState]:
        return await self._call("list containers", self._states_sync, managed_filters(instance_id))

    def _states_sync(self, filters: dict[str, list[str]]) -> list[ContainerState]:
        api = self._api()
        found = cast(list[dict[str, Any]], api.containers(all=True, filters=filters))
        states = []
        for container in found:
            container_id = str(container["Id"])
            labels = container.get("Labels") or {}
            if container.get("State") == "running":
                states.append(container_state(container_id, {"Running": True}, labels))
                continue
            # The list does not say how a dead one ended (exit code, OOM kill): inspect says.
            try:
                detail = api.inspect_container(container_id).get("State") or {}
            except docker.errors.NotFound:
                continue  # removed meanwhile: gone is what a missing container means
            states.append(container_state(container_id, detail, labels))
        return states

    def max_memory_used_mb(self, container_id: str) -> int | None:
        return self._peak_memory.max_used_mb(container_id)

    # ---- images -----------------------------------------------------------------------------

    async def build_image(self, context_dir: Path, tag: str) -> str:
        dockerfile = context_dir / "Dockerfile"
        if not dockerfile.is_file():
            raise ImageBuildError(f"cannot build {tag}: {context_dir} has no Dockerfile")
        allow_function_bases = self._build_limits.allow_function_bases
        text = await asyncio.to_thread(dockerfile.read_text, encoding="utf-8", errors="replace")
        references = check_dockerfile(text, allow_function_bases)
        if not allow_function_bases and references:
            found = await self._call("inspect base images", self._function_image_among, references)
            if found is not None:
                raise refusal(found.instruction, FUNCTION_BASE_REASON)
        return await self._call(f"build image {tag}", self._build_sync, context_dir, tag)

    def _function_image_among(self, references: list[ImageReference]) -> ImageReference | None:
        """The first reference naming an image our builds made, by any of its names or its id."""
        api = self._api()
        for reference in references:
            try:
                attrs = api.inspect_image(reference.image)
            except docker.errors.NotFound:
                continue  # not here: the build fails on it
            except docker.errors.APIError as exc:
                if exc.status_code == 400:
                    continue  # not a valid name: the build fails on it
                raise  # anything else: refuse to build rather than skip the check
            if ((attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_MANAGED) == "true":
                return reference
        return None

    def _build_sync(self, context_dir: Path, tag: str) -> str:
        api = self._api()
        memory = self._build_limits.memory_mb * 1024 * 1024
        # No network unless the build network is set up (the controller does at start).
        network = self._build_network.name if self._build_network is not None else "none"
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
                network_mode=network,
                container_limits={"memory": memory, "memswap": memory},  # memswap = memory: no swap
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

    async def remove_image(self, tag: str) -> None:
        await self._call(f"remove image {tag}", self._remove_image_sync, tag)

    def _remove_image_sync(self, tag: str) -> None:
        try:
            # Not forced: an image a container still uses stays (409, an EngineError).
            self._api().remove_image(tag, force=False, noprune=False)
        except docker.errors.ImageNotFound:
            return

    # ---- watching (the threads live in docker_watchers.py) ----------------------------------

    async def watch(
        self,
        on_exit: ExitCallback,
        output: OutputSink,
        on_disconnect: LinkCallback | None = None,
        on_reconnect: LinkCallback | None = None,
    ) -> None:
        if self._exit_watcher is not None:
            raise EngineError("watch() was already called on this engine")
        handoff = LoopHandoff(asyncio.get_running_loop())
        self._output_follower = OutputFollower(
            open_logs=self._open_logs,
            container_gone=_container_gone,
            output=output,
            streams=self._streams,
        )
        watcher = ExitWatcher(
            open_events=self._open_events,
            oom_killed=self._oom_killed,
            on_exit=on_exit,
            streams=self._streams,
            handoff=handoff,
            on_disconnect=on_disconnect,
            on_reconnect=on_reconnect,
        )
        # Open the stream before returning, so no exit after watch() returns can be missed.
        stream = await self._call("watch container events", watcher.open, None)
        watcher.start(stream)
        self._exit_watcher = watcher

    def _open_events(self, since: str | None) -> Any:
        return self._api().events(since=since, decode=True, filters=exit_event_filters(self.instance_id))

    def _oom_killed(self, container_id: str) -> bool:
        try:
            state = self._api().inspect_container(container_id)["State"]
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False  # removed already (kill() removes): not an OOM we can know about
        return bool(state.get("OOMKilled"))

    async def follow_output(self, container_id: str, function: str, since: float | None = None) -> None:
        if self._output_follower is None:
            raise EngineError("watch() must be called before follow_output()")
        if self._streams.closing:
            raise EngineError("cannot follow output: the container engine is closed")
        if self._output_follower.following(container_id):
            return
        # No round trip here: logs are read from the start, so nothing written before the
        # stream opens is lost, and run() → ready stays on the fast path.
        self._output_follower.start(container_id, function, since)

    def _open_logs(self, container_id: str, follow: bool, since: float | None) -> Iterator[bytes]:
        stream = self._api().logs(
            container_id,
            stdout=True,
            stderr=True,
            stream=True,
            follow=follow,
            timestamps=True,
            since=since,
        )
        return cast(Iterator[bytes], stream)

    # ---- shutdown ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self._streams.closing:
            return
        self._streams.close_all()
        if self._exit_watcher is not None:
            await asyncio.to_thread(self._exit_watcher.join, 5.0)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._peak_memory.close()
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
