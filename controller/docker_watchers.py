"""The long-lived streams from the Docker engine, each consumed on a thread of its own.

`ExitWatcher` consumes the events stream (deaths and OOM kills of our containers) and hands
each death to the event loop through `LoopHandoff`; `OutputFollower` streams each followed
container's log lines into the `OutputSink` (output_gate.py), which bounds and batches them on
their way to the loop. They never import the docker SDK (only docker_engine.py does):
docker_engine.py passes in the calls that open streams and ask Docker questions, and the
knowledge of which failures mean "the container is gone".
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fnplat.controller.docker_decisions import parse_exit_event
from fnplat.controller.docker_log_lines import LogLines
from fnplat.controller.engine import ContainerExit, ExitCallback, LinkCallback, OutputSink

log = logging.getLogger(__name__)

EventStreamOpener = Callable[[str | None], Iterable[Mapping[str, Any]]]  # since -> events
LogStreamOpener = Callable[[str, bool, float | None], Iterable[bytes]]  # (id, follow, since) -> frames


class OpenStreams:
    """The Docker streams open right now, and the shutdown flag every streaming thread watches.

    Closing a stream is how a thread blocked reading it is woken at shutdown.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, Any] = {}  # key -> open CancellableStream
        self._closing = threading.Event()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def wait_closing(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True once shutdown has begun."""
        return self._closing.wait(timeout)

    def track(self, key: str, stream: Any) -> None:
        with self._lock:
            self._streams[key] = stream
        if self._closing.is_set():  # close_all() ran while we were connecting
            close_stream(stream)

    def untrack(self, key: str) -> None:
        with self._lock:
            self._streams.pop(key, None)

    def close_all(self) -> None:
        """Begin shutdown: set the flag, then close every open stream."""
        self._closing.set()
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            close_stream(stream)


def close_stream(stream: Any) -> None:
    try:
        stream.close()
    except Exception:  # already closed, or the socket is gone: either way it is closed
        log.debug("closing a Docker stream failed", exc_info=True)


class LoopHandoff:
    """Hands calls from streaming threads to the event loop (the loop may be gone at shutdown)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def deliver(self, callback: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(callback, *args)


# Reconnect attempts back off from 0.1 s to this: a dockerd restart is noticed within a second of
# the engine answering again (invocations wait for that re-sync), and a dead engine is asked only
# once a second.
RECONNECT_BACKOFF_MAX_S = 1.0


class ExitWatcher:
    """Consumes container events on a thread and calls `on_exit` on the loop for each death.

    When the stream breaks (dockerd restarting), `on_disconnect` is called on the loop, the
    stream is reopened from the last event seen (Docker replays what it still has), and once it
    is open `on_reconnect` is called on the loop: deaths while no stream was open may have been
    missed (a restarting dockerd closes its API before it stops containers), so the listener
    re-reads the containers' state.
    """

    def __init__(
        self,
        *,
        open_events: EventStreamOpener,
        oom_killed: Callable[[str], bool],
        on_exit: ExitCallback,
        streams: OpenStreams,
        handoff: LoopHandoff,
        on_disconnect: LinkCallback | None = None,
        on_reconnect: LinkCallback | None = None,
    ) -> None:
        self._open_events = open_events
        self._oom_killed = oom_killed  # asks Docker; False when it cannot know
        self._on_exit = on_exit
        self._on_disconnect = on_disconnect
        self._on_reconnect = on_reconnect
        self._streams = streams
        self._handoff = handoff
        self._thread: threading.Thread | None = None
        self._pending: set[asyncio.Future[None]] = set()  # awaitables returned by on_exit

    def open(self, since: str | None) -> Iterable[Mapping[str, Any]]:
        """Open the events stream (blocking) and register it, so close_all() can end it."""
        stream = self._open_events(since)
        self._streams.track("events", stream)
        return stream

    def start(self, stream: Iterable[Mapping[str, Any]]) -> None:
        """Consume `stream` (from open()) on a thread until shutdown."""
        self._thread = threading.Thread(
            target=self._run, args=(stream,), name="fnplat-docker-events", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, stream: Iterable[Mapping[str, Any]] | None) -> None:
        """Consume events until shutdown; reconnect (from the last event seen) if dockerd drops us."""
        oom_seen: set[str] = set()
        resume_nano = time.time_ns()  # after a reconnect, replay from just after the last event seen
        backoff = 0.1
        lost_at: float | None = None  # monotonic time the stream broke, while it is broken
        while not self._streams.closing:
            try:
                if stream is None:
                    stream = self.open(f"{resume_nano // 10**9}.{resume_nano % 10**9:09d}")
                    if lost_at is not None:
                        log.info("Docker events stream open again after %.1f s", time.monotonic() - lost_at)
                        lost_at = None
                        if self._on_reconnect is not None:
                            self._handoff.deliver(self._on_reconnect)
                for event in stream:
                    backoff = 0.1
                    if event.get("timeNano"):
                        resume_nano = int(event["timeNano"]) + 1
                    self._handle_event(event, oom_seen)
                failure: Exception | None = None
            except Exception as exc:
                failure = exc
            stream = None
            if self._streams.wait_closing(0):  # shutting down: the stream was closed on purpose
                break
            if lost_at is None:
                lost_at = time.monotonic()
                log.warning("Docker events stream lost (%s); reconnecting", failure or "closed by the engine")
                if self._on_disconnect is not None:
                    self._handoff.deliver(self._on_disconnect)
            else:
                log.debug("reconnecting to the Docker events stream failed: %s", failure)
            if self._streams.wait_closing(backoff):  # wait out a dockerd restart, not a test sync
                break
            backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX_S)

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
        self._handoff.deliver(self._dispatch_exit, ContainerExit(container_id, exit_code, oom))

    def _dispatch_exit(self, exit_: ContainerExit) -> None:
        """On the loop: call on_exit and keep any awaitable it returns running to completion."""
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


class OutputFollower:
    """Streams a container's output lines into `output`, one thread per container.

    Lines are cut at the sink's `max_line_bytes` as they are framed, and the sink drops what
    its function may not write: a thread holds at most one line, whatever the container writes.
    """

    def __init__(
        self,
        *,
        open_logs: LogStreamOpener,
        container_gone: Callable[[BaseException], bool],
        output: OutputSink,
        streams: OpenStreams,
    ) -> None:
        self._open_logs = open_logs
        self._container_gone = container_gone  # the failure says: removed or dying, nothing to read
        self._output = output
        self._streams = streams
        self._following: set[str] = set()  # containers with a follower thread (set ops are atomic)

    def following(self, container_id: str) -> bool:
        return container_id in self._following

    def start(self, container_id: str, function: str, since: float | None = None) -> None:
        """Follow from the container's first line, or from unix time `since`, as `function`'s output."""
        self._following.add(container_id)
        threading.Thread(
            target=self._follow,
            args=(container_id, function, since),
            name=f"fnplat-logs-{container_id[:12]}",
            daemon=True,
        ).start()

    def _follow(self, container_id: str, function: str, since: float | None) -> None:
        key = f"logs:{container_id}"
        lines = LogLines(self._output.max_line_bytes)
        offer = self._output.offer

        def read(follow: bool) -> None:
            stream = self._open_logs(container_id, follow, since if follow else lines.since())
            self._streams.track(key, stream)
            for frame in stream:
                for line, ts in lines.feed(frame, replay=not follow):
                    offer(function, container_id, line, ts)

        try:
            read(follow=True)
            if not self._streams.closing:
                # Docker can end a follow stream before it has written the container's last
                # output (a race at exit): read once more from where we are and skip the rest.
                lines.begin_replay()
                read(follow=False)
        except Exception as exc:
            if not self._container_gone(exc) and not self._streams.closing:
                log.exception("following the output of %s failed", container_id[:12])
        finally:
            for line, ts in lines.flush():
                offer(function, container_id, line, ts)
            self._streams.untrack(key)
            self._following.discard(container_id)
