"""A hostile task against the Runtime API: what it can make the controller hold.

The task queues the largest posts it may send behind its own pending `next`, on every
connection it may open, or floods tiny requests, and never reads a reply. The controller must
stop reading from it and hold no more than runtime_http.py documents (~10 MiB per task), where
it used to hold 16 queued 6 MB bodies per connection and every unread reply.

Measured with tracemalloc (the Python heap of this process: server and client), so the test
needs nothing from the server but its listening port.
"""

from __future__ import annotations

import asyncio
import socket
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import uvloop

from fnplat.controller.runtime_api import NEXT, RuntimeApi, RuntimeApiServer
from fnplat.controller.task import Task, TaskState
from fnplat.domain import RESPONSE_PAYLOAD_LIMIT, FunctionVersion, frozen_map

SOCKET_BUFFER = 64 * 1024  # small kernel buffers: a server that stops reading is felt soon
CONNECTIONS = 8  # what one task address may open
# The documented ~10 MiB per task, plus a moment's copy of one body as it is joined, plus slack
# for the test's own allocations.
BOUND = 18 * 1024 * 1024
STALLED_TURNS = 50  # writes refused this many loop turns in a row: the server reads no more


@dataclass
class Flood:
    """Writes `unit` (a whole request) over and over on a non-blocking socket, never reading."""

    sock: socket.socket
    unit: bytes
    sent: int = 0
    _stream: memoryview = field(init=False)

    def __post_init__(self) -> None:
        # Small units repeated so a write is worth a syscall; large ones not copied.
        repeat = 1 if len(self.unit) >= 65536 else 65536 // len(self.unit) + 1
        self._stream = memoryview(self.unit * repeat if repeat > 1 else self.unit)

    def try_send(self) -> int:
        offset = self.sent % len(self.unit)
        try:
            written = self.sock.send(self._stream[offset:])
        except BlockingIOError:
            return 0
        self.sent += written
        return written


def connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def small_kernel_buffers(server: RuntimeApiServer) -> None:
    """Accepted connections inherit the listening socket's buffer sizes."""
    for listening in server._http._server.sockets:  # type: ignore[union-attr]
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)


class Hooks:
    def on_first_next(self, task: Task) -> None:
        task.ready_at = time.perf_counter()

    def on_init_error(self, task: Task, body: bytes, error_type: str | None) -> bool:
        return False


def idle_task(ip: str) -> Task:
    version = FunctionVersion(
        function_name="hostile",
        version=1,
        runtime="python3.11",
        handler="app.handler",
        memory=128,
        timeout=3,
        environment=frozen_map(),
        code_sha256="0" * 64,
        image=None,
        created_at=datetime.now(UTC),
    )
    now = time.perf_counter()
    return Task("t-1", version, ip, now, time.time(), now, state=TaskState.IDLE)


async def flood_all(floods: list[Flood], over: Callable[[], bool]) -> bool:
    """Write until every flood is refused STALLED_TURNS loop turns in a row (True), or `over()`."""
    refused = [0] * len(floods)
    while not over():
        for i, flood in enumerate(floods):
            refused[i] = 0 if flood.try_send() else refused[i] + 1
        if min(refused) >= STALLED_TURNS:
            return True
        await asyncio.sleep(0)  # the server runs on this loop
    return False


async def hostile_task(make_units: Callable[[], list[bytes]], first: bytes) -> tuple[int, bool]:
    """(bytes the heap grew by at most, whether the server stopped reading) for one task."""
    api = RuntimeApi({"127.0.0.1": idle_task("127.0.0.1")}, Hooks())
    server = RuntimeApiServer(api)
    port = await server.start("127.0.0.1", 0)
    small_kernel_buffers(server)
    socks: list[socket.socket] = []
    try:
        units = make_units()
        socks = [connect(port) for _ in range(CONNECTIONS)]
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(socks[0], first)  # the task's own long poll: nothing to deliver
        floods = [Flood(sock, unit) for sock, unit in zip(socks, units, strict=True)]
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        try:
            stopped = await flood_all(
                floods, over=lambda: tracemalloc.get_traced_memory()[0] - baseline > BOUND
            )
            grown = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            tracemalloc.stop()
        return grown, stopped
    finally:
        for sock in socks:
            sock.close()
        await server.close()


def post(size: int) -> bytes:
    head = b"POST /2018-06-01/runtime/invocation/x/response HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % size
    return head + b"r" * size


def run(loop_factory: Callable[[], asyncio.AbstractEventLoop], coro: object) -> tuple[int, bool]:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


LOOPS = pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)


@LOOPS
def test_posts_queued_behind_a_pending_next_are_bounded_per_task(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    largest = post(RESPONSE_PAYLOAD_LIMIT)  # one object shared by every flood
    grown, stopped = run(
        loop_factory,
        hostile_task(lambda: [largest] * CONNECTIONS, f"GET {NEXT} HTTP/1.1\r\n\r\n".encode()),
    )
    assert grown <= BOUND, f"the controller held over {grown / 2**20:.0f} MiB for one task"
    assert stopped


@LOOPS
def test_replies_a_task_never_reads_are_bounded(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    ping = b"GET /2018-06-01/ping HTTP/1.1\r\n\r\n"
    grown, stopped = run(loop_factory, hostile_task(lambda: [ping] * CONNECTIONS, ping))
    assert grown <= BOUND, f"the controller held over {grown / 2**20:.0f} MiB of unread replies"
    assert stopped
