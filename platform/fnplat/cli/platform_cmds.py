"""fnctl up and down: the one-host platform."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from fnplat.config import Settings

from . import render
from .common import client_of, data_dir_of, data_dir_option
from .daemon import stop_server


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port to listen on (default 8080).")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1; $FNPLAT_HOST).")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate chain: serve HTTPS ($FNPLAT_TLS_CERT; needs --tls-key).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of the certificate ($FNPLAT_TLS_KEY).",
)
@data_dir_option
@click.pass_context
def up(
    ctx: click.Context,
    port: int | None,
    host: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    data_dir: Path | None,
) -> None:
    """Run the one-host platform in the foreground until Ctrl-C.

    One process with SQLite and the local Docker engine. Writes the endpoint and an admin key
    into the data directory for fnctl.
    """
    from fnplat.server import serve  # lazy: the server pulls in aiohttp, SQLAlchemy and docker

    settings = Settings.from_env(data_dir=data_dir or data_dir_of(ctx), port=port, host=host)
    if tls_cert is not None or tls_key is not None:
        gateway = dataclasses.replace(
            settings.gateway,
            tls_cert=tls_cert or settings.gateway.tls_cert,
            tls_key=tls_key or settings.gateway.tls_key,
        )
        settings = dataclasses.replace(settings, gateway=gateway)
    serve(settings)


@click.command()
@click.option(
    "--wait",
    type=click.FloatRange(0),
    default=None,
    help="Seconds to wait for the server to exit (default: FNPLAT_SHUTDOWN_TIMEOUT + 5).",
)
@data_dir_option
@click.pass_context
def down(ctx: click.Context, wait: float | None, data_dir: Path | None) -> None:
    """Stop the platform started by `fnctl up`.

    Sends SIGTERM to the server holding <data dir>/fnplat.pid and waits for it to exit: it drains
    invocations in flight and stops its tasks within FNPLAT_SHUTDOWN_TIMEOUT.
    """
    from fnplat.shutdown import down_wait_s

    if wait is None:
        wait = down_wait_s(Settings.from_env().shutdown.timeout_s)
    pid = stop_server(data_dir or data_dir_of(ctx), wait)
    click.echo(f"stopped fnplat (pid {pid})")




@click.command()
@click.pass_context
def nodes(ctx: click.Context) -> None:
    """List the controllers (nodes) of the platform: state, capacity, tasks, last heartbeat.

    On one host (`fnctl up`) there are none: its controller runs inside the one process.
    """
    click.echo(render.nodes_table(client_of(ctx).nodes()))
