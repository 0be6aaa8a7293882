"""Where a JWKS is read from: a file, or a URL (a server on loopback here), with size and status bounds."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fnplat.gateway.jwks_sources import JwksSourceError, file_source, url_source

DOCUMENT = b'{"keys": []}'


async def test_file_source_reads_the_file_each_time(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(DOCUMENT)
    fetch = file_source(path)
    assert await fetch() == DOCUMENT
    path.write_bytes(b'{"keys": [1]}')  # rotation: replace the file
    assert await fetch() == b'{"keys": [1]}'


async def test_file_source_errors(tmp_path: Path) -> None:
    with pytest.raises(JwksSourceError, match="cannot read"):
        await file_source(tmp_path / "missing.json")()
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 101)
    with pytest.raises(JwksSourceError, match="larger than 100 bytes"):
        await file_source(big, max_bytes=100)()
    exact = tmp_path / "exact.json"
    exact.write_bytes(b" " * 100)
    assert len(await file_source(exact, max_bytes=100)()) == 100


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async def jwks(_: web.Request) -> web.Response:
        return web.Response(body=DOCUMENT, content_type="application/json")

    async def big(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 300_000)

    async def missing(_: web.Request) -> web.Response:
        return web.Response(status=404)

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/jwks")

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/big", big)
    app.router.add_get("/missing", missing)
    app.router.add_get("/moved", moved)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield test_server
    await test_server.close()


async def test_url_source(server: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        assert await url_source(session, str(server.make_url("/jwks")))() == DOCUMENT
        with pytest.raises(JwksSourceError, match="larger than"):
            await url_source(session, str(server.make_url("/big")), max_bytes=256 * 1024)()
        with pytest.raises(JwksSourceError, match="answered 404"):
            await url_source(session, str(server.make_url("/missing")))()
        with pytest.raises(JwksSourceError, match="answered 302"):  # redirects are not followed
            await url_source(session, str(server.make_url("/moved")))()


async def test_url_source_unreachable() -> None:
    with socket.socket() as probe:  # a loopback port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(JwksSourceError, match="failed: ClientConnectorError"):
            await url_source(session, f"http://127.0.0.1:{port}/jwks", timeout=2)()
