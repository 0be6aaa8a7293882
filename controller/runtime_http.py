"""The HTTP/1.1 server under the Lambda Runtime API: an asyncio protocol on httptools (llhttp).

Every invocation crosses it twice (the runtime posts its result, then asks for the next event),
so it does no more than the contract needs: requests are parsed by llhttp, handled in order per
connection (keep-alive and pipelining), and answered with one write. A handler returns a `Reply`
at once, or a `Pending` for the long-poll `next`: the connection then waits, without a task,
until the pending future resolves, and the remaining pipelined requests wait behind it.

Bodies are buffered up to `max_body` bytes; past that the rest is read and dropped and the
request reaches the handler with `oversize` set, so it can refuse it with its own error.

Its clients run untrusted function code, so what one of them can make the controller hold is
bounded: request heads (MAX_HEAD_BYTES, else 431 and hang up), queued pipelined requests
(MAX_PIPELINED, then reading pauses) and connections per source address (MAX_CONNECTIONS_PER_PEER;
more are closed at once).
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import httptools

log = logging.getLogger(__name__)

MAX_PIPELINED = 16  # requests queued on one connection before we stop reading from it
MAX_HEAD_BYTES = 64 * 1024  # request line and headers of one request
MAX_CONNECTIONS_PER_PEER = 8  # a runtime needs one (two while it reconnects)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS = {status.value: status.phrase.encode() for status in http.HTTPStatus}


@dataclass(slots=True)
class Request:
    method: str
    path: str  # without the query string
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value
    body: bytes
    oversize: int | None  # bytes declared or received when over the limit (the body is then empty)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"

    def encode(self, *, close: bool) -> bytes:
        head = [
            b"HTTP/1.1 %d %s\r\n" % (self.status, _REASONS.get(self.status, b"Unknown")),
            b"Content-Type: %s\r\nContent-Length: %d\r\n" % (self.content_type.encode(), len(self.body)),
        ]
        for name, value in self.headers:
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name} has a line break in its value")
            head.append(f"{name}: {value}\r\n".encode())
        if close:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        return b"".join(head) + self.body


@dataclass(slots=True)
class Pending:
    """A reply that is not ready yet: `resume()` builds it once `future` is done; `abandon()` is
    called instead if the connection goes away first."""

    future: asyncio.Future[Any]
    resume: Callable[[], Reply]
    abandon: Callable[[], None]


class Handler(Protocol):
    def __call__(self, request: Request, peer: str) -> Reply | Pending: ...


@dataclass(slots=True)
class _Incoming:
    url: bytearray = field(default_factory=bytearray)
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    oversize: int | None = None
    method: str = ""
    keep_alive: bool = True


_BAD_REQUEST = Reply(400, b'{"errorMessage":"Malformed HTTP request","errorType":"BadRequest"}')
_HEAD_TOO_LARGE = Reply(
    431, b'{"errorMessage":"Request head over %d bytes","errorType":"BadRequest"}' % MAX_HEAD_BYTES
)
_INTERNAL_ERROR = Reply(500, b'{"errorMessage":"Internal error","errorType":"ServiceException"}')


def _encoded(reply: Reply, keep_alive: bool) -> bytes:
    try:
        return reply.encode(close=not keep_alive)
    except ValueError:
        log.exception("Runtime API reply could not be encoded")
        return _INTERNAL_ERROR.encode(close=not keep_alive)


class HttpConnection(asyncio.Protocol):
    """One runtime's connection."""

    def __init__(
        self, handler: Handler, max_body: int, registry: dict[str, set[asyncio.Transport]]
    ) -> None:
        self._handler = handler
        self._max_body = max_body
        self._registry = registry  # the server's open connections by peer, closed at shutdown
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._incoming = _Incoming()
        self._queue: deque[tuple[Request, bool]] = deque()  # (request, keep-alive) parsed, not answered
        self._waiting: Pending | None = None
        self._waiting_keep_alive = True
        self._out: list[bytes] = []  # encoded replies not written yet
        # Until a request line is parsed every byte counts against the head limit.
        self._in_head = True
        self._head_bytes = 0
        self._paused = False
        self._closing = False

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's are not registered as asyncio.Transport subclasses).
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else ""
        same_peer = self._registry.setdefault(self._peer, set())
        if len(same_peer) >= MAX_CONNECTIONS_PER_PEER:
            self._closing = True
            transport.close()
            return
        same_peer.add(transport)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserUpgrade, httptools.HttpParserError):
            self._fail(_BAD_REQUEST)  # malformed, or an upgrade we do not speak: 400, hang up
            return
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES:
            self._fail(_HEAD_TOO_LARGE)  # llhttp would buffer an endless header for us
            return
        self._serve()

    def connection_lost(self, exc: Exception | None) -> None:
        same_peer = self._registry.get(self._peer)
        if same_peer is not None and self._transport is not None:
            same_peer.discard(self._transport)
            if not same_peer:
                del self._registry[self._peer]
        self._closing = True
        self._queue.clear()
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.abandon()

    # -- httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._incoming = _Incoming()
        self._in_head = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._incoming.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._incoming.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._in_head = False
        incoming = self._incoming
        incoming.method = self._parser.get_method().decode("ascii", "replace")
        incoming.keep_alive = self._parser.should_keep_alive()
        declared = incoming.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            incoming.oversize = int(declared)
        if incoming.headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        incoming = self._incoming
        incoming.size += len(body)
        if incoming.oversize is not None:
            incoming.oversize = max(incoming.oversize, incoming.size)
        elif incoming.size > self._max_body:
            incoming.oversize = incoming.size
            incoming.chunks.clear()
        else:
            incoming.chunks.append(body)

    def on_message_complete(self) -> None:
        incoming = self._incoming
        chunks = incoming.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        path = bytes(incoming.url).split(b"?", 1)[0].decode("latin-1")
        request = Request(incoming.method, path, incoming.headers, body, incoming.oversize)
        self._queue.append((request, incoming.keep_alive))
        if len(self._queue) >= MAX_PIPELINED and self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    # -- answering -----------------------------------------------------------------------------
    def _serve(self) -> None:
        """Answer queued requests in order until one has to wait.

        Replies are written together when the queue is empty. When a long poll stops the queue,
        the replies before it are held and go out with its reply: a runtime that pipelined its
        `next` behind its result reads both anyway, so two packets and two wake-ups become one.
        A runtime that waits for each answer never has a `next` queued behind its result.
        """
        while self._queue and self._waiting is None and not self._closing:
            request, keep_alive = self._queue.popleft()
            try:
                outcome = self._handler(request, self._peer)
            except Exception:
                log.exception("Runtime API handler failed for %s %s", request.method, request.path)
                outcome = _INTERNAL_ERROR
            if isinstance(outcome, Pending):
                self._waiting = outcome
                self._waiting_keep_alive = keep_alive
                outcome.future.add_done_callback(self._resume)
                return
            self._out.append(_encoded(outcome, keep_alive))
            if not keep_alive:
                self._closing = True
        self._flush()
        if self._closing and self._transport is not None:
            self._transport.close()
        elif self._paused and not self._queue and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def _resume(self, _future: asyncio.Future[Any]) -> None:
        waiting, self._waiting = self._waiting, None
        keep_alive = self._waiting_keep_alive
        if waiting is None or self._closing:
            return  # the connection went away; abandon() has run
        try:
            reply = waiting.resume()
        except Exception:
            log.exception("Runtime API long poll failed")
            reply = _INTERNAL_ERROR
        self._out.append(_encoded(reply, keep_alive))
        if not keep_alive:
            self._closing = True
        self._serve()

    def _flush(self) -> None:
        out = self._out
        if out and self._transport is not None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def _fail(self, reply: Reply) -> None:
        if self._transport is not None:
            self._transport.write(reply.encode(close=True))
            self._transport.close()
        self._closing = True


class HttpServer:
    """Listens on one address; port 0 picks a free port (start() returns the one bound)."""

    def __init__(self, handler: Handler, max_body: int) -> None:
        self._handler = handler
        self._max_body = max_body
        self._server: asyncio.Server | None = None
        self._connections: dict[str, set[asyncio.Transport]] = {}

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self._connection, host, port, reuse_address=True)
        self._server = server
        return int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Long polls stay open until the runtimes go: close them rather than wait for them.
        for transports in list(self._connections.values()):
            for transport in list(transports):
                transport.close()
        await self._server.wait_closed()
        self._server = None

    def _connection(self) -> HttpConnection:
        return HttpConnection(self._handler, self._max_body, self._connections)
