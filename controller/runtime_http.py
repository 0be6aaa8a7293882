"""The HTTP/1.1 server under the Lambda Runtime API: an asyncio protocol on httptools (llhttp).

Every invocation crosses it twice (the runtime posts its result, then asks for the next event),
so it does no more than the contract needs: requests are parsed by llhttp, handled in order per
connection (keep-alive and pipelining), and answered with one write. A handler returns a `Reply`
at once, or a `Pending` for the long-poll `next`: the connection then waits, without a task,
until the pending future resolves, and the remaining pipelined requests wait behind it.

Bodies are buffered up to `max_body` bytes; past that the rest is read and dropped and the
request reaches the handler with `oversize` set, so it can refuse it with its own error.

Its clients run untrusted function code, so what one of them can make the controller hold is
bounded (defaults for the Runtime API's 6 MB `max_body`):
- request heads: MAX_HEAD_BYTES, else 431 and hang up;
- connections per source address (a task): MAX_CONNECTIONS_PER_PEER, more are closed at once;
- unanswered requests on a connection: MAX_PIPELINED, and `connection_buffer` bytes of bodies
  (1 MiB) besides the one being received. All connections of one address (a task) together hold
  `peer_buffer` bytes of bodies (1 MiB, the ones being received included), plus one request of
  up to `max_body` that one of them, the finisher, may complete past that limit: a runtime's
  large result always gets through, and connections that each hold part of a body cannot stall
  one another. Past a limit a connection stops reading until its requests are answered (or the
  finisher's are), so a task that queues posts behind a pending `next` holds at most that much.
  Each limit can be overshot by what one read brings (256 KB): limits are checked between pieces
  of input, and the part of a read not parsed yet is kept as it is;
- replies: a peer that does not read them makes the transport pause our writing (past
  WRITE_HIGH_WATER): the connection then stops answering and reading until it drains, so
  unsent replies stay under the high-water mark plus one batch (one event, or up to
  MAX_PIPELINED + a piece's worth of small replies).
So one task can make the server hold at most peer_buffer + max_body + MAX_CONNECTIONS_PER_PEER x
(one read + WRITE_HIGH_WATER + a batch of replies): about 10 MiB with the Runtime API's 6 MB
max_body (it was 8 x 16 x 6 MB, and unsent replies without limit, before these bounds).
`HttpServer.buffered_bytes()` and its counters are what the Prometheus metrics show.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import httptools

log = logging.getLogger(__name__)

MAX_PIPELINED = 16  # requests queued on one connection before we stop reading from it
MAX_HEAD_BYTES = 64 * 1024  # request line and headers of one request
MAX_CONNECTIONS_PER_PEER = 8  # a runtime needs one (two while it reconnects)
CONNECTION_BUFFER = 1024 * 1024  # bodies of complete, unanswered requests on one connection
PEER_BUFFER = 1024 * 1024  # bodies held by all connections of one address, beyond the finisher's
# Input is parsed this much at a time (more when the rest is known to be one body): llhttp
# cannot stop inside one feed, so this bounds the requests one feed can queue past a limit.
PARSE_PIECE = 4 * 1024
WRITE_HIGH_WATER = 64 * 1024  # unsent reply bytes past which the transport pauses our writing
WRITE_LOW_WATER = 16 * 1024
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


@dataclass(frozen=True, slots=True)
class BufferLimits:
    max_body: int  # one request's body; past it the request arrives `oversize`
    connection: int  # bodies of complete, unanswered requests on one connection
    peer: int  # bodies held by all connections of one source address, beyond the finisher's request


@dataclass(slots=True)
class HttpStats:
    """Counters of the server's refusals and pauses (read by the metrics at scrape time)."""

    refused: dict[str, int] = field(
        default_factory=lambda: {"too_many_connections": 0, "malformed": 0, "head_too_large": 0}
    )
    read_pauses: dict[str, int] = field(
        default_factory=lambda: {
            "pipelined": 0,
            "connection_buffer": 0,
            "peer_buffer": 0,
            "unread_replies": 0,
        }
    )


class _Peer:
    """The connections of one source address and the body bytes they hold together."""

    __slots__ = ("connections", "finisher", "held", "stalled")

    def __init__(self) -> None:
        self.connections: set[HttpConnection] = set()
        self.held = 0
        self.stalled: set[HttpConnection] = set()  # stopped reading because `held` is over the limit
        # While `held` is over the limit, the one connection that may still finish receiving the
        # request it is in; it keeps the right until it holds nothing (its requests are answered).
        self.finisher: HttpConnection | None = None


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
        self, handler: Handler, limits: BufferLimits, peers: dict[str, _Peer], stats: HttpStats
    ) -> None:
        self._handler = handler
        self._limits = limits
        self._max_body = limits.max_body
        self._peers = peers  # the server's open connections by source address
        self._stats = stats
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._address = ""
        self._peer = _Peer()  # replaced by the address's shared one once accepted
        self._incoming = _Incoming()
        self._queue: deque[tuple[Request, bool]] = deque()  # (request, keep-alive) parsed, not answered
        self._waiting: Pending | None = None
        self._waiting_keep_alive = True
        self._out: list[bytes] = []  # encoded replies not written yet
        # Until a request line is parsed every byte counts against the head limit.
        self._in_head = True
        self._head_bytes = 0
        self._held = 0  # body bytes of queued requests and of the one being received
        self._receiving = 0  # of those, the body being received
        self._body_left = 0  # bytes of the current Content-Length body still to come
        self._backlog: tuple[bytes, int] | None = None  # a read and the offset not parsed yet
        self._read_paused = False
        self._write_paused = False
        self._closing = False

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's are not registered as asyncio.Transport subclasses).
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peername = transport.get_extra_info("peername")
        self._address = str(peername[0]) if peername else ""
        peer = self._peers.get(self._address)
        if peer is None:
            peer = self._peers[self._address] = _Peer()
        if len(peer.connections) >= MAX_CONNECTIONS_PER_PEER:
            self._stats.refused["too_many_connections"] += 1
            self._closing = True
            transport.close()
            return
        self._peer = peer
        peer.connections.add(self)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)

    def data_received(self, data: bytes) -> None:
        if not self._closing:
            self._consume(data, 0)

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self._peer
        self._closing = True
        self._release()
        if self in peer.connections:
            peer.connections.discard(self)
            peer.stalled.discard(self)
            if peer.finisher is self:
                peer.finisher = None
            if not peer.connections and self._peers.get(self._address) is peer:
                del self._peers[self._address]
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.abandon()

    def pause_writing(self) -> None:
        # Called from inside transport.write() when the peer does not read what we send: stop
        # answering and reading until the transport has sent enough (resume_writing).
        self._write_paused = True
        if not self._read_paused and not self._closing and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()
            self._stats.read_pauses["unread_replies"] += 1

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    # -- input ---------------------------------------------------------------------------------
    def _consume(self, data: bytes, start: int) -> None:
        """Parse and answer data[start:]; stop at a limit and keep the rest, unparsed, for later.

        Input is fed to llhttp a piece at a time, and the limits are checked between pieces: one
        feed cannot be stopped, and 256 KB of tiny pipelined requests would otherwise become
        thousands of queued objects. A read that is small, or the rest of a body of known length,
        is one piece; a piece that starts a request ends with its head, so its body is fed whole
        (in one chunk, without a join).
        """
        end = len(data)
        while start < end:
            if (self._held or self._queue or self._write_paused or self._closing) and self._holding():
                self._serve()  # what can be answered now may free the limit
                if self._holding():
                    self._backlog = (data, start)
                    break
            size = self._body_left + PARSE_PIECE
            if end - start <= size:
                piece: bytes | memoryview = data if not start else memoryview(data)[start:]
                start = end
            else:
                if not self._body_left:
                    head_end = data.find(b"\r\n\r\n", start, start + size)
                    if head_end >= 0:
                        size = head_end + 4 - start
                piece = memoryview(data)[start : start + size]
                start += size
            if self._in_head:
                self._head_bytes += len(piece)
            try:
                self._parser.feed_data(piece)
            except (httptools.HttpParserUpgrade, httptools.HttpParserError):
                self._fail(_BAD_REQUEST, "malformed")  # or an upgrade we do not speak: 400, hang up
                return
            if self._in_head and self._head_bytes > MAX_HEAD_BYTES:
                self._fail(_HEAD_TOO_LARGE, "head_too_large")  # llhttp would buffer it all for us
                return
        self._serve()
        if self._read_paused or self._held or self._queue or self._backlog is not None:
            self._update_reading()

    def _holding(self) -> bool:
        """Whether to take in no more input for now."""
        if self._closing or self._write_paused:
            return True
        queued = len(self._queue)
        if not self._held and queued < MAX_PIPELINED:
            return False
        limits = self._limits
        if queued >= MAX_PIPELINED or self._held - self._receiving > limits.connection:
            return True
        peer = self._peer
        if peer.held <= limits.peer:
            return False
        if peer.finisher is None and self._receiving:
            peer.finisher = self
        return not (peer.finisher is self and self._receiving)

    def _update_reading(self) -> None:
        """Pause reading while holding back (input kept unparsed, or a limit reached), else read."""
        transport = self._transport
        if self._closing or transport is None:
            return
        hold = self._backlog is not None or self._holding()
        limits, peer = self._limits, self._peer
        if hold and peer.held > limits.peer and peer.finisher is not self:
            peer.stalled.add(self)  # woken when the address is under its limit or the finisher done
        if hold == self._read_paused:
            return
        self._read_paused = hold
        if not hold:
            transport.resume_reading()
            return
        transport.pause_reading()
        if len(self._queue) >= MAX_PIPELINED:
            reason = "pipelined"
        elif self._held - self._receiving > limits.connection:
            reason = "connection_buffer"
        else:
            reason = "peer_buffer"
        self._stats.read_pauses[reason] += 1

    def _wake(self) -> None:
        """A wait ended (a long poll answered, writes drained, a sibling freed bytes): go on."""
        if self._closing:
            return
        self._serve()
        backlog, self._backlog = self._backlog, None
        if backlog is not None and not self._closing:
            self._consume(*backlog)
        else:
            self._update_reading()

    def _drop_held(self, size: int) -> None:
        self._held -= size
        peer = self._peer
        peer.held -= size
        if peer.finisher is not None or peer.stalled:
            self._released(peer)

    def _released(self, peer: _Peer) -> None:
        """Bytes were freed while the address was at its limit: wake whom it held back."""
        finished = peer.finisher is self and not self._held
        if finished:
            peer.finisher = None
        if peer.stalled and (finished or peer.held <= self._limits.peer):
            stalled = list(peer.stalled)
            peer.stalled.clear()
            loop = asyncio.get_running_loop()
            for connection in stalled:  # not now: we may be inside one of their callbacks
                loop.call_soon(connection._wake)

    def _release(self) -> None:
        """Drop everything held for requests that will not be answered."""
        self._queue.clear()
        self._backlog = None
        self._receiving = 0
        if self._held:
            self._drop_held(self._held)

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
        if declared is not None and declared.isdigit():
            length = int(declared)
            if length > self._max_body:
                incoming.oversize = length
            if "transfer-encoding" not in incoming.headers:
                self._body_left = length
        if incoming.headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        incoming = self._incoming
        size = len(body)
        incoming.size += size
        if self._body_left:
            self._body_left -= size  # llhttp delivers exactly Content-Length bytes
        if incoming.oversize is not None:
            incoming.oversize = max(incoming.oversize, incoming.size)
        elif incoming.size > self._max_body:
            incoming.oversize = incoming.size
            incoming.chunks.clear()
            received, self._receiving = self._receiving, 0
            self._drop_held(received)
        else:
            incoming.chunks.append(body)
            self._receiving += size
            self._held += size
            self._peer.held += size

    def on_message_complete(self) -> None:
        incoming = self._incoming
        chunks = incoming.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        path = bytes(incoming.url).split(b"?", 1)[0].decode("latin-1")
        request = Request(incoming.method, path, incoming.headers, body, incoming.oversize)
        self._queue.append((request, incoming.keep_alive))
        self._receiving = 0
        self._body_left = 0

    # -- answering -----------------------------------------------------------------------------
    def _serve(self) -> None:
        """Answer queued requests in order until one has to wait (or the peer stops reading).

        Replies are written together when the queue is empty. When a long poll stops the queue,
        the replies before it are held and go out with its reply: a runtime that pipelined its
        `next` behind its result reads both anyway, so two packets and two wake-ups become one.
        A runtime that waits for each answer never has a `next` queued behind its result.
        """
        queue = self._queue
        while queue and self._waiting is None and not self._closing and not self._write_paused:
            request, keep_alive = queue.popleft()
            size = len(request.body)
            if size:  # _drop_held, inlined: once per request
                self._held -= size
                peer = self._peer
                peer.held -= size
                if peer.finisher is not None or peer.stalled:
                    self._released(peer)
            try:
                outcome = self._handler(request, self._address)
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
            self._release()
            self._transport.close()

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
        # Written even while the peer reads slowly: the one reply a long poll owes is bounded.
        self._out.append(_encoded(reply, keep_alive))
        if not keep_alive:
            self._closing = True
            self._serve()
            return
        self._wake()

    def _flush(self) -> None:
        out = self._out
        if out and self._transport is not None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def _fail(self, reply: Reply, reason: str) -> None:
        self._stats.refused[reason] += 1
        self._closing = True
        self._release()
        if self._transport is not None:
            self._transport.write(reply.encode(close=True))
            self._transport.close()

    def buffered(self) -> tuple[int, int, int]:
        """(body bytes held, input bytes not parsed yet, reply bytes not sent yet)."""
        unsent = self._transport.get_write_buffer_size() if self._transport is not None else 0
        unparsed = len(self._backlog[0]) - self._backlog[1] if self._backlog is not None else 0
        return self._held, unparsed, unsent


class HttpServer:
    """Listens on one address; port 0 picks a free port (start() returns the one bound)."""

    def __init__(
        self,
        handler: Handler,
        max_body: int,
        *,
        connection_buffer: int = CONNECTION_BUFFER,
        peer_buffer: int = PEER_BUFFER,
    ) -> None:
        self._handler = handler
        self.limits = BufferLimits(max_body=max_body, connection=connection_buffer, peer=peer_buffer)
        self.stats = HttpStats()
        self._server: asyncio.Server | None = None
        self._peers: dict[str, _Peer] = {}

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self._connection, host, port, reuse_address=True)
        self._server = server
        return int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Long polls stay open until the runtimes go, and a closed transport waits for a peer
        # that does not read to take its unsent replies: abort them rather than wait.
        for peer in list(self._peers.values()):
            for connection in list(peer.connections):
                if connection._transport is not None:
                    connection._transport.abort()
        await self._server.wait_closed()
        self._server = None

    def buffered_bytes(self) -> Mapping[str, int]:
        """What all connections hold now: request bodies, unparsed input, unsent replies."""
        bodies = unparsed = unsent = 0
        for peer in self._peers.values():
            bodies += peer.held
            for connection in peer.connections:
                _, input_bytes, output_bytes = connection.buffered()
                unparsed += input_bytes
                unsent += output_bytes
        return {"request_bodies": bodies, "unparsed_input": unparsed, "unsent_replies": unsent}

    def peer_buffered(self, address: str) -> int:
        """Everything the connections of one source address hold now (see buffered_bytes)."""
        peer = self._peers.get(address)
        if peer is None:
            return 0
        return sum(sum(connection.buffered()) for connection in peer.connections)

    def connections_refused(self) -> Mapping[str, int]:
        return dict(self.stats.refused)

    def read_pauses(self) -> Mapping[str, int]:
        return dict(self.stats.read_pauses)

    def _connection(self) -> HttpConnection:
        return HttpConnection(self._handler, self.limits, self._peers, self.stats)
