"""`fnctl`: the command line of fnplat.

Commands are thin: they parse options, call a testable function (packaging, client, scaffold,
render, ...) and print. Every `FnplatError` reaches the user as one line `error: <message>` on
stderr with exit code 1; click's usage errors exit with 2.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from fnplat.client import Client
from fnplat.config import Settings, default_data_dir
from fnplat.domain import RUNTIMES
from fnplat.errors import FnplatError

from . import render
from .daemon import stop_server
from .logs import follow
from .payload import read_payload
from .scaffold import scaffold


class FnctlError(click.ClickException):
    """A domain error shown as `error: <message>` (click would print `Error: ...`)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class FnctlGroup(click.Group):
    """Turns every FnplatError raised by a command into one clean line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FnplatError as exc:
            raise FnctlError(exc.message) from exc


def _stderr() -> Console:
    return Console(stderr=True)


def _data_dir(ctx: click.Context) -> Path:
    value = ctx.obj.get("data_dir") if ctx.obj else None
    return Path(value) if value else default_data_dir()


def _client(ctx: click.Context) -> Client:
    return Client.from_env(_data_dir(ctx))


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="fnplat data directory (default: $FNPLAT_DATA_DIR or ~/.fnplat).",
)


@click.group(cls=FnctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where fnctl finds the endpoint and admin key written by `fnctl up` "
    "(default: $FNPLAT_DATA_DIR or ~/.fnplat). $FNCTL_ENDPOINT and $FNCTL_API_KEY override them.",
)
@click.version_option(package_name="fnplat", prog_name="fnctl")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None) -> None:
    """fnctl: deploy and run Lambda-compatible functions on fnplat."""
    ctx.ensure_object(dict)
    ctx.obj["data_dir"] = data_dir


# ------------------------------------------------------------------------------ functions


@cli.command()
@click.argument("name")
@click.option("--runtime", "-r", type=click.Choice(RUNTIMES), required=True, help="Runtime of the function.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to create (default: ./NAME).",
)
def init(name: str, runtime: str, directory: Path | None) -> None:
    """Create a new function from a template.

    The template has a function.yaml (route GET /NAME/{name}) and a handler for the runtime:
    app.py (python3.11), index.js (nodejs18.x), a bash+curl bootstrap (provided), or a
    Dockerfile FROM fnplat/runtime-python3.11 with app.py (image).
    """
    target = directory or Path(name)
    written = scaffold(name, runtime, target)
    for path in written:
        click.echo(f"created {path}")
    click.echo(f"next: fnctl deploy {target}")


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_context
def deploy(ctx: click.Context, directory: Path) -> None:
    """Package a function directory and deploy it as a new version.

    DIRECTORY holds function.yaml and the code. Dependencies from requirements.txt (python3.11)
    or package.json (nodejs18.x) are vendored into the zip. Each deploy creates a new version
    and moves $LATEST to it.
    """
    from fnplat.packaging import package_function  # lazy: pulls in subprocess machinery

    console = _stderr()
    with console.status("packaging...") as status:
        packaged = package_function(directory, progress=lambda message: status.update(message))
    console.print(
        f"packaged {packaged.spec.name}: {len(packaged.zip_bytes)} bytes, sha256 {packaged.sha256[:12]}"
    )
    client = _client(ctx)
    with Progress(
        "uploading", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=True
    ) as progress:
        bar = progress.add_task("upload", total=len(packaged.zip_bytes))
        result = client.deploy(
            packaged.zip_bytes, progress=lambda sent, _total: progress.update(bar, completed=sent)
        )
    click.echo(render.deploy_summary(result))


@cli.command()
@click.argument("name")
@click.option("--payload", "-p", default=None, help="Event JSON, or '-' to read it from stdin.")
@click.option("--payload-file", "-f", default=None, help="File holding the event JSON ('-' = stdin).")
@click.option("--qualifier", "-q", default=None, help="Version or alias to invoke (default $LATEST).")
@click.pass_context
def invoke(
    ctx: click.Context, name: str, payload: str | None, payload_file: str | None, qualifier: str | None
) -> None:
    """Invoke a function synchronously and print its result.

    Without a payload the event is {}. On a function error the error JSON is printed and the
    exit code is 1.
    """
    event = read_payload(payload, payload_file, sys.stdin.buffer)
    result = _client(ctx).invoke(name, event, qualifier)
    click.echo(render.json_text(result.payload))
    if result.function_error:
        click.echo(f"error: function {name} failed ({result.function_error})", err=True)
        ctx.exit(1)


@cli.command()
@click.argument("name")
@click.option(
    "--limit", "-n", type=click.IntRange(1, 10000), default=100, show_default=True, help="Lines to show."
)
@click.option("--request-id", default=None, help="Only the lines of one invocation.")
@click.option("--follow", "-F", "follow_", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.pass_context
def logs(ctx: click.Context, name: str, limit: int, request_id: str | None, follow_: bool) -> None:
    """Print a function's log lines, oldest first.

    Lines come from the platform (START, END, REPORT per invocation) and from the function's own
    output. --follow polls for new lines until Ctrl-C.
    """
    client = _client(ctx)

    def fetch() -> list[dict[str, Any]]:
        return client.logs(name, limit=limit, request_id=request_id)

    def emit(event: Any) -> None:
        click.echo(render.log_line(event))

    if not follow_:
        for event in fetch():
            emit(event)
        return
    stop = threading.Event()
    try:
        follow(fetch, emit, stop)
    except KeyboardInterrupt:
        stop.set()


@cli.command(name="ls")
@click.pass_context
def list_functions(ctx: click.Context) -> None:
    """List deployed functions."""
    click.echo(render.functions_table(_client(ctx).list_functions()))


@cli.command()
@click.argument("name")
@click.pass_context
def describe(ctx: click.Context, name: str) -> None:
    """Show the configuration and routes of a function.

    Shows $LATEST of function NAME: runtime, handler, memory, timeout, environment, code sha256
    and its routes with their URLs.
    """
    click.echo(render.describe(_client(ctx).get_function(name)))


@cli.command(name="rm")
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Delete function NAME with all its versions and routes."""
    _client(ctx).delete_function(name)
    click.echo(f"removed {name}")


@cli.command()
@click.pass_context
def routes(ctx: click.Context) -> None:
    """List the HTTP routes of all functions."""
    click.echo(render.routes_table(_client(ctx).routes()))


@cli.command()
@click.pass_context
def tasks(ctx: click.Context) -> None:
    """List running tasks (containers) and what they serve.

    One line per task: function, version, state, container, address and invocations served.
    """
    click.echo(render.tasks_table(_client(ctx).tasks()))


# ------------------------------------------------------------------------------ keys


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys.

    Admin keys manage fnplat (the /v1 API); invoke keys call functions and their routes.
    """


@keys.command(name="create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["invoke", "admin"]),
    default="invoke",
    show_default=True,
    help="invoke: call functions and routes; admin: also manage fnplat.",
)
@click.pass_context
def keys_create(ctx: click.Context, name: str, scope: str) -> None:
    """Create an API key NAME and print it (it is shown this once only)."""
    created = _client(ctx).create_key(name, scope)
    click.echo(created["key"])
    click.echo(
        f"key {created.get('key_id')} ({scope}) created: store it now, it cannot be shown again", err=True
    )


@keys.command(name="ls")
@click.pass_context
def keys_list(ctx: click.Context) -> None:
    """List API keys (never their secrets)."""
    click.echo(render.keys_table(_client(ctx).list_keys()))


@keys.command(name="revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke the API key KEY_ID: requests with it get 403 from now on."""
    _client(ctx).revoke_key(key_id)
    click.echo(f"revoked {key_id}")


# ------------------------------------------------------------------------------ platform


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port to listen on (default 8080).")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1; $FNPLAT_HOST).")
@data_dir_option
@click.pass_context
def up(ctx: click.Context, port: int | None, host: str | None, data_dir: Path | None) -> None:
    """Run the one-host platform in the foreground until Ctrl-C.

    One process with SQLite and the local Docker engine. Writes the endpoint and an admin key
    into the data directory for fnctl.
    """
    from fnplat.server import serve  # lazy: the server pulls in aiohttp, SQLAlchemy and docker

    serve(Settings.from_env(data_dir=data_dir or _data_dir(ctx), port=port, host=host))


@cli.command()
@data_dir_option
@click.pass_context
def down(ctx: click.Context, data_dir: Path | None) -> None:
    """Stop the platform started by `fnctl up`.

    Sends SIGTERM to the pid in <data dir>/fnplat.pid and waits for the process to exit.
    """
    pid = stop_server(data_dir or _data_dir(ctx))
    click.echo(f"stopped fnplat (pid {pid})")


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    run: Callable[..., Any] = cli.main
    run(args=argv, prog_name="fnctl")
    sys.exit(0)  # cli.main exits itself in standalone mode; this satisfies NoReturn
