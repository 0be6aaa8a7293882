"""Hostile Runtime API clients over raw loopback sockets, and a meter of what the server holds.

Shared by the HTTP layer's unit tests and the Runtime API fault test.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from fnplat.controller.runtime_http import HttpConnection, HttpServer


def held(server: HttpServer) -> int:
    return sum(server.buffered_bytes().values())


@dataclass
class Meter:
    """Samples what the server holds after every read it handles; the connections it made."""

    server: HttpServer
    peak: int = 0
    peak_queue: int = 0
    connections: list[HttpConnection] = field(default_factory=list)

    def attach(self) -> None:
        """Before server.start(): wrap the protocol factory."""
        make = self.server._connection

        def connection() -> HttpConnection:
            made = make()
            received = made.data_received

            def data_received(data: bytes) -> None:
                received(data)
                self.sample(made)

            made.data_received = data_received  # type: ignore[method-assign]
            self.connections.append(made)
            return made

        self.server._connection = connection  # type: ignore[method-assign]

    def sample(self, connection: HttpConnection | None = None) -> int:
        now = held(self.server)
        self.peak = max(self.peak, now)
        if connection is not None:
            self.peak_queue = max(self.peak_queue, len(connection._queue))
        return now


SOCKET_BUFFER = 64 * 1024  # small kernel buffers: a flood stalls after little data


def small_kernel_buffers(server: HttpServer) -> None:
    """After start(): connections accepted from now on get small kernel buffers (inherited from
    the listening socket), so a client that stops reading or a server that stops reading is
    felt after kilobytes, not megabytes."""
    assert server._server is not None
    for listening in server._server.sockets:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)


def raw_connection(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


@dataclass
class Flood:
    """Writes `unit` (one or more whole requests) over and over on a non-blocking socket, never
    reading, until the server stops reading (our socket buffers fill) or `give_up()` says so."""

    sock: socket.socket
    unit: bytes
    sent: int = 0  # bytes written so far
    _stream: memoryview = field(init=False)

    def __post_init__(self) -> None:
        # Small units are repeated to make a write worth a syscall; large ones are not copied.
        repeat = 1 if len(self.unit) >= 65536 else 65536 // len(self.unit) + 1
        self._stream = memoryview(self.unit * repeat if repeat > 1 else self.unit)

    def try_send(self) -> int:
        """One non-blocking write of what comes next; 0 when the socket takes nothing."""
        offset = self.sent % len(self.unit)
        try:
            written = self.sock.send(self._stream[offset:])
        except BlockingIOError:
            return 0
        self.sent += written
        return written

    async def until_stalled(self, server_stopped: Callable[[], bool], give_up: Callable[[], bool]) -> None:
        while not give_up():
            if not self.try_send() and server_stopped():
                return  # the server reads no more and our buffers are full
            await asyncio.sleep(0)  # let the server (same loop) take its turn

    async def finish_unit(self) -> int:
        """Send the rest of a partly written request; return how many whole units were sent."""
        offset = self.sent % len(self.unit)
        loop = asyncio.get_running_loop()
        if offset:
            await loop.sock_sendall(self.sock, self.unit[offset:])
            self.sent += len(self.unit) - offset
        return self.sent // len(self.unit)


class ReplyReader:
    """Reads HTTP replies from a raw socket as they come (their status codes, in order)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.statuses: list[int] = []
        self._buffer = bytearray()
        self._progress = asyncio.Event()
        self._closed = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            chunk = await loop.sock_recv(self.sock, 1 << 20)
            if not chunk:
                self._closed = True
                self._progress.set()
                return
            self._buffer += chunk
            self._parse()
            self._progress.set()

    async def wait_for(self, count: int) -> list[int]:
        while len(self.statuses) < count:
            if self._closed:
                raise ConnectionError(f"closed after {len(self.statuses)} replies")
            self._progress.clear()
            await self._progress.wait()
        return self.statuses[:count]

    def _parse(self) -> None:
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            length = next(
                (int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length:")), 0
            )
            if len(buffer) < end + 4 + length:
                return
            self.statuses.append(int(head[0].split()[1]))
            del buffer[: end + 4 + length]


async def read_replies(sock: socket.socket, count: int) -> list[int]:
    """Read `count` HTTP replies (status codes, in order) from a raw socket."""
    reader = ReplyReader(sock)
    reading = asyncio.ensure_future(reader.run())
    try:
        return await reader.wait_for(count)
    finally:
        reading.cancel()


async def finish_and_read(flood: Flood, before: int = 0) -> list[int]:
    """Complete the flood's last request while reading every reply to it (and `before` earlier
    ones): a server that stopped reading for unread replies goes on only once they are read."""
    reader = ReplyReader(flood.sock)
    reading = asyncio.ensure_future(reader.run())
    try:
        count = await flood.finish_unit()
        return await reader.wait_for(before + count)
    finally:
        reading.cancel()
