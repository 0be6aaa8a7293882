"""HTTPS on the gateway's listener, and fnctl's client verifying it (no Docker)."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from tls_certs import SelfSigned, self_signed_for_loopback

from fnplat.client import Client, EndpointUnreachable
from fnplat.config import GatewaySettings, Settings
from fnplat.errors import InvalidParameter
from fnplat.gateway.listener import Listener, start_listener
from fnplat.metrics import Metrics


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return self_signed_for_loopback(tmp_path_factory.mktemp("tls"))


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


@pytest.fixture
async def https_listener(certificate: SelfSigned) -> AsyncIterator[Listener]:
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    settings = GatewaySettings(tls_cert=certificate.cert, tls_key=certificate.key)
    listener = await start_listener(app, "127.0.0.1", 0, settings, Metrics())
    yield listener
    await listener.close()


async def test_the_gateway_serves_https_with_the_configured_certificate(
    https_listener: Listener, certificate: SelfSigned
) -> None:
    context = ssl.create_default_context(cafile=str(certificate.cert))
    reader, writer = await asyncio.open_connection("127.0.0.1", https_listener.port, ssl=context)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()

    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.endswith(b'{"status": "ok"}')
    assert https_listener.site.name.startswith("https://")


async def test_tls_older_than_1_2_is_refused(https_listener: Listener, certificate: SelfSigned) -> None:
    context = ssl.create_default_context(cafile=str(certificate.cert))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")  # let OpenSSL offer TLS 1.1 at all
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await asyncio.open_connection("127.0.0.1", https_listener.port, ssl=context)


async def test_plain_http_to_the_https_port_gets_no_answer(https_listener: Listener) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", https_listener.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        answer = b""
    writer.close()
    assert b"200 OK" not in answer


async def test_fnctl_verifies_with_FNCTL_CA_BUNDLE_and_names_it_when_verification_fails(
    https_listener: Listener, certificate: SelfSigned, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"https://127.0.0.1:{https_listener.port}"
    monkeypatch.delenv("FNCTL_CA_BUNDLE", raising=False)
    # The system's trust store does not know a self-signed certificate.
    untrusting = Client(endpoint, api_key=None)
    with pytest.raises(EndpointUnreachable, match="FNCTL_CA_BUNDLE") as refused:
        await asyncio.to_thread(untrusting.health)
    assert "self-signed certificate" in refused.value.message

    monkeypatch.setenv("FNCTL_CA_BUNDLE", str(certificate.cert))
    trusting = Client(endpoint, api_key=None)
    assert await asyncio.to_thread(trusting.health) == {"status": "ok"}


def test_fnctl_uses_the_system_trust_store_not_the_bundled_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FNCTL_CA_BUNDLE", raising=False)
    paths = ssl.get_default_verify_paths()
    assert Client("https://127.0.0.1:1", None).verify == (paths.cafile or paths.capath or True)


def test_a_missing_FNCTL_CA_BUNDLE_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FNCTL_CA_BUNDLE", str(tmp_path / "nope.pem"))
    with pytest.raises(InvalidParameter, match=r"FNCTL_CA_BUNDLE=.*nope\.pem: no such file"):
        Client("https://127.0.0.1:1", None)


async def test_half_a_tls_configuration_or_an_unreadable_key_refuses_to_start(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    app = web.Application()
    with pytest.raises(InvalidParameter, match="must be set together"):
        await start_listener(app, "127.0.0.1", 0, GatewaySettings(tls_cert=certificate.cert), Metrics())
    with pytest.raises(InvalidParameter, match="cannot load the certificate and key"):
        settings = GatewaySettings(tls_cert=certificate.cert, tls_key=tmp_path / "missing.key")
        await start_listener(app, "127.0.0.1", 0, settings, Metrics())


def test_tls_settings_come_from_the_environment_and_make_urls_https(tmp_path: Path) -> None:
    from fnplat.gateway.deps import GatewayDeps

    env = {"FNPLAT_TLS_CERT": "/etc/fnplat/tls.crt", "FNPLAT_TLS_KEY": "/etc/fnplat/tls.key"}
    settings = Settings.from_env(data_dir=tmp_path, env=env)
    assert settings.gateway.tls_cert == Path("/etc/fnplat/tls.crt")
    assert settings.gateway.tls_key == Path("/etc/fnplat/tls.key")
    deps = GatewayDeps(settings, None, None, None, None, None, None, list)  # type: ignore[arg-type]
    assert deps.base_url == "https://127.0.0.1:8080"
    plain = Settings.from_env(data_dir=tmp_path, env={})
    assert GatewayDeps(plain, None, None, None, None, None, None, list).base_url == "http://127.0.0.1:8080"  # type: ignore[arg-type]
