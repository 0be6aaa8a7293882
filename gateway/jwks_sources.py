"""Where a JWT authorizer's JWKS comes from: an HTTP(S) URL or a file on the gateway's host.

Each source is an async fetcher for `fnplat.gateway.jwt_auth.JwksCache`, bounded in size and
time so a misbehaving identity provider cannot stall or flood the gateway.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from fnplat.gateway.jwt_auth import JwksFetcher

MAX_JWKS_BYTES = 256 * 1024
DEFAULT_TIMEOUT_S = 5.0


class JwksSourceError(Exception):
    """The JWKS could not be read (the cache logs it and keeps the keys it has)."""


def file_source(path: str | Path, max_bytes: int = MAX_JWKS_BYTES) -> JwksFetcher:
    """Read the JWKS from a file, re-read on every refresh (rotate keys by replacing the file)."""
    file = Path(path)

    def read() -> bytes:
        with file.open("rb") as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise JwksSourceError(f"{file} is larger than {max_bytes} bytes")
        return data

    async def fetch() -> bytes:
        try:
            return await asyncio.to_thread(read)
        except OSError as exc:
            raise JwksSourceError(f"cannot read {file}: {exc.strerror or exc}") from None

    return fetch


def url_source(
    session: aiohttp.ClientSession,
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = MAX_JWKS_BYTES,
) -> JwksFetcher:
    """GET the JWKS from `url` with the gateway's client session (redirects not followed)."""

    async def fetch() -> bytes:
        try:
            async with session.get(
                url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise JwksSourceError(f"GET {url} answered {response.status}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise JwksSourceError(f"GET {url}: the JWKS is larger than {max_bytes} bytes")
                    chunks.append(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise JwksSourceError(f"GET {url} failed: {type(exc).__name__}") from None
        return b"".join(chunks)

    return fetch
