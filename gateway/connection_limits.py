"""What one client connection may hold of the gateway, where aiohttp does not bound it already.

aiohttp (3.14) bounds a request head's size (`max_line_size`/`max_field_size`, 8190 bytes each;
`max_headers`, 128), the pipelined requests it queues per connection, and an idle keep-alive
connection (`keepalive_timeout`: closed when no request arrives in time; that timer also runs
from the moment a connection is accepted). It does not bound:

- how many connections are open: each holds a file descriptor, and a process out of
  descriptors can no longer open its database, its Docker socket or a deploy's files. Past
  `max_connections` a new connection is closed as soon as it is accepted, and counted;
- how long a request head may take: a client that trickles a head (slowloris) keeps its
  connection until the keep-alive timeout, which must be long for load balancers. A head must be
  complete `header_timeout_s` after the connection opens, or after its first byte on a
  keep-alive connection; else 408 and close.

(Request bodies are bounded per read in bodies.py, where the handler reads them.)

All of it is per connection, never per request: one timer when a connection opens, cancelled by
its first head; on a keep-alive connection a timer only when a head arrives in pieces. The warm
path (a whole head in one read) adds a few attribute reads to each `data_received`
(`python -m bench.gateway_reads` measures it).

It subclasses aiohttp's `RequestHandler` and uses four of its private attributes
(`_request_count`, `_waiter`, `_force_close`, `_lingering_time`), so it is tied to the pinned
aiohttp version; tests/unit/gateway_limits exercises each of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from fnplat.metrics import Metrics

# What a client gets when its head took too long (the connection is closed after it).
REQUEST_TIMEOUT_REPLY = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 29\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b'{"message":"Request Timeout"}'
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    keepalive_timeout_s: float
    header_timeout_s: float


class ConnectionGate:
    """The state the connections of one listener share: how many are open, and the counters."""

    __slots__ = ("_head_timeouts", "_refused", "header_timeout_s", "limit", "open")

    def __init__(self, limit: int, header_timeout_s: float, metrics: Metrics) -> None:
        self.limit = limit
        self.header_timeout_s = header_timeout_s
        self.open = 0
        self._refused = metrics.gateway_refused_connections
        self._head_timeouts = metrics.gateway_timeouts.labels("head")
        metrics.gateway_open_connections.set_function(lambda: self.open)

    def refused(self) -> None:
        self._refused.inc()

    def head_timed_out(self) -> None:
        self._head_timeouts.inc()


class GatedRequestHandler(RequestHandler):
    """aiohttp's protocol for one client connection, with the connection cap and head deadline."""

    __slots__ = ("_counted", "_gate", "_head_timer", "_heads_before")

    def __init__(self, manager: web.Server, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._counted = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._heads_before = 0  # requests parsed on this connection when the head timer was armed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        gate = self._gate
        if gate.open >= gate.limit:
            # Refused before aiohttp sees it: no task, no timers, nothing registered.
            gate.refused()
            transport.close()
            return
        gate.open += 1
        self._counted = True
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None:
            super().data_received(data)
            if self._request_count != self._heads_before:  # the head is complete
                self._head_timer.cancel()
                self._head_timer = None
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            # A request is being handled: these are its body's bytes (bodies.py bounds those)
            # or pipelined heads, which wait behind it under aiohttp's keep-alive timer.
            super().data_received(data)
            return
        # Idle keep-alive connection: these bytes begin a new head.
        heads = self._request_count
        super().data_received(data)
        if self._request_count == heads and not self._force_close:  # it arrived in pieces
            self._arm_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._counted:
            return  # refused in connection_made: aiohttp never started on it
        self._counted = False
        self._gate.open -= 1
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def close_without_lingering(self) -> None:
        """Close once the current response is sent, skipping aiohttp's lingering read of the
        rest of the request body (up to 10 s): for a body that stalled, it would only wait."""
        self._lingering_time = 0.0
        self.close()

    def _arm_head_timer(self) -> None:
        self._heads_before = self._request_count
        loop = self._loop
        self._head_timer = loop.call_at(loop.time() + self._gate.header_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or self._force_close or self._request_count != self._heads_before:
            return
        self._gate.head_timed_out()
        transport.write(REQUEST_TIMEOUT_REPLY)
        self.force_close()  # close() after the write: the 408 is flushed first


def handler_factory(
    server: web.Server, gate: ConnectionGate, limits: ConnectionLimits
) -> Callable[[], GatedRequestHandler]:
    """The protocol factory for `loop.create_server`, in place of aiohttp's `Server` itself."""
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {
        "loop": loop,
        "access_log": None,
        "keepalive_timeout": limits.keepalive_timeout_s,
    }

    def factory() -> GatedRequestHandler:
        return GatedRequestHandler(server, gate, **kwargs)

    return factory


class GatedSite(web.BaseSite):
    """A TCP listener (optionally TLS) whose connections are `GatedRequestHandler`s."""

    __slots__ = ("_factory", "_host", "_port", "_ssl_handshake_timeout_s")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        factory: Callable[[], GatedRequestHandler],
        *,
        ssl_context: Any = None,
        ssl_handshake_timeout_s: float = 60.0,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._factory = factory
        self._ssl_handshake_timeout_s = ssl_handshake_timeout_s

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (the requested one until started; port 0 picks a free one)."""
        server = cast(asyncio.Server | None, self._server)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory,
            self._host,
            self._port,
            ssl=self._ssl_context,
            # A TLS handshake happens before the protocol sees the connection: it gets the
            # head's deadline of its own.
            ssl_handshake_timeout=self._ssl_handshake_timeout_s if self._ssl_context else None,
            backlog=self._backlog,
            reuse_address=True,
        )
