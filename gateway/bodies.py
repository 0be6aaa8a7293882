"""Reading request bodies with a size limit (413 before buffering more) and a stall limit (408).

A body that is already buffered (a small body arrives with its head) is taken without a wait
and without a timer. Only when the handler has to wait for more bytes is that wait bounded by
the body timeout (FNPLAT_HTTP_BODY_TIMEOUT): as nginx's client_body_timeout, the time between
two reads, not the whole transfer, so a large upload on a slow link is fine while a client that
stops sending is not. The connection is closed after a 408: the rest of its body never came.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from fnplat.errors import RequestTimeout, RequestTooLarge
from fnplat.gateway.connection_limits import GatedRequestHandler
from fnplat.gateway.deps import DEPS

_READ_SIZE = 1 << 20


async def read_body(request: web.Request, limit: int, what: str) -> bytes:
    if not request.body_exists:  # most routed requests (GET): nothing to read
        return b""
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLarge(f"{what} is {request.content_length} bytes; the limit is {limit} bytes")
    content = request.content
    chunks: list[bytes] = []
    size = 0
    while True:
        wanted = min(limit + 1 - size, _READ_SIZE) or 1
        chunk = content.read_nowait(wanted)
        if not chunk:
            if content.is_eof():  # nothing buffered and nothing more coming
                break
            chunk = await _read_waiting(request, wanted)
            if not chunk:
                break
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _read_waiting(request: web.Request, wanted: int) -> bytes:
    deps = request.app[DEPS]
    try:
        async with asyncio.timeout(deps.settings.gateway.body_timeout_s):
            return await request.content.read(wanted)
    except TimeoutError:
        deps.metrics.gateway_timeouts.labels("body").inc()
        # The rest of the body will not come: close the connection once the 408 is sent.
        protocol = request.protocol
        if isinstance(protocol, GatedRequestHandler):
            protocol.close_without_lingering()
        else:
            protocol.close()
        raise RequestTimeout(
            f"the request body stalled for {deps.settings.gateway.body_timeout_s:g} s"
        ) from None
