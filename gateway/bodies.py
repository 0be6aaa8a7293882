"""Reading request bodies with a limit, answering 413 before buffering more than the limit."""

from __future__ import annotations

from aiohttp import web

from fnplat.errors import RequestTooLarge


async def read_body(request: web.Request, limit: int, what: str) -> bytes:
    if not request.body_exists:  # most routed requests (GET): nothing to read
        return b""
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLarge(f"{what} is {request.content_length} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    # StreamReader.read(n) returns what is buffered (up to n), not n bytes: read until end of stream.
    while chunk := await request.content.read(min(limit + 1 - size, 1 << 20) or 1):
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
