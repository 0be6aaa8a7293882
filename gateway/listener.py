"""The gateway's listening socket: aiohttp's runner, our connection limits, TLS when configured.

`start_listener` is the only place that binds the gateway; `fnplat.server` calls it last at start
and closes it first at shutdown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from fnplat.config import GatewaySettings
from fnplat.errors import InvalidParameter
from fnplat.gateway.connection_limits import ConnectionGate, ConnectionLimits, GatedSite, handler_factory
from fnplat.gateway.open_files import connection_cap, open_files_limit
from fnplat.gateway.tls import server_context
from fnplat.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Listener:
    runner: web.AppRunner
    site: GatedSite
    gate: ConnectionGate

    @property
    def port(self) -> int:
        return self.site.port

    async def close(self) -> None:
        """Stop accepting, close idle connections, let requests in flight finish (aiohttp's
        shutdown), then run the app's cleanup."""
        await self.runner.cleanup()


def check_gateway_settings(settings: GatewaySettings) -> None:
    """Refuse settings that cannot work, naming the variable (a start-up error for the operator)."""
    if settings.max_connections < 1:
        raise InvalidParameter(f"FNPLAT_MAX_CONNECTIONS must be at least 1, got {settings.max_connections}")
    for env, value in (
        ("FNPLAT_HTTP_KEEPALIVE_TIMEOUT", settings.keepalive_timeout_s),
        ("FNPLAT_HTTP_HEADER_TIMEOUT", settings.header_timeout_s),
        ("FNPLAT_HTTP_BODY_TIMEOUT", settings.body_timeout_s),
    ):
        if not value > 0:
            raise InvalidParameter(f"{env} must be a positive number of seconds, got {value}")
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise InvalidParameter("FNPLAT_TLS_CERT and FNPLAT_TLS_KEY must be set together")


async def start_listener(
    app: web.Application,
    host: str,
    port: int,
    settings: GatewaySettings,
    metrics: Metrics,
    *,
    shutdown_timeout_s: float = 60.0,
) -> Listener:
    """Bind the gateway; on cleanup, requests in flight get up to `shutdown_timeout_s` to finish."""
    check_gateway_settings(settings)
    ssl_context = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        ssl_context = server_context(settings.tls_cert, settings.tls_key)
    open_files = open_files_limit()
    cap = connection_cap(settings.max_connections, open_files)
    if cap < settings.max_connections:
        log.warning(
            "gateway: at most %d client connections (FNPLAT_MAX_CONNECTIONS=%d does not fit under"
            " the open-files limit of %d)",
            cap,
            settings.max_connections,
            open_files,
        )
    limits = ConnectionLimits(cap, settings.keepalive_timeout_s, settings.header_timeout_s)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=settings.keepalive_timeout_s,
        shutdown_timeout=shutdown_timeout_s,
    )
    await runner.setup()
    try:
        assert runner.server is not None  # set by setup()
        gate = ConnectionGate(cap, settings.header_timeout_s, metrics)
        site = GatedSite(
            runner,
            host,
            port,
            handler_factory(runner.server, gate, limits),
            ssl_context=ssl_context,
            ssl_handshake_timeout_s=settings.header_timeout_s,
        )
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return Listener(runner, site, gate)
