"""fnctl commands for functions: init, deploy, invoke, logs, ls, describe, rm, routes, tasks."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from fnplat.domain import RUNTIMES

from . import render
from .common import client_of, stderr_console
from .logs import follow
from .payload import read_payload
from .scaffold import scaffold


@click.command()
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


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_context
def deploy(ctx: click.Context, directory: Path) -> None:
    """Package a function directory and deploy it as a new version.

    DIRECTORY holds function.yaml and the code. Dependencies from requirements.txt (python3.11)
    or package.json (nodejs18.x) are vendored into the zip. Each deploy creates a new version
    and moves $LATEST to it.
    """
    from fnplat.packaging import package_function  # lazy: pulls in subprocess machinery

    console = stderr_console()
    with console.status("packaging...") as status:
        packaged = package_function(directory, progress=lambda message: status.update(message))
    console.print(
        f"packaged {packaged.spec.name}: {len(packaged.zip_bytes)} bytes, sha256 {packaged.sha256[:12]}"
    )
    client = client_of(ctx)
    with Progress(
        "uploading", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=True
    ) as progress:
        bar = progress.add_task("upload", total=len(packaged.zip_bytes))
        result = client.deploy(
            packaged.zip_bytes, progress=lambda sent, _total: progress.update(bar, completed=sent)
        )
    click.echo(render.deploy_summary(result))


@click.command()
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
    result = client_of(ctx).invoke(name, event, qualifier)
    click.echo(render.json_text(result.payload))
    if result.function_error:
        click.echo(f"error: function {name} failed ({result.function_error})", err=True)
        ctx.exit(1)


@click.command()
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
    client = client_of(ctx)

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


@click.command(name="ls")
@click.pass_context
def list_functions(ctx: click.Context) -> None:
    """List deployed functions."""
    click.echo(render.functions_table(client_of(ctx).list_functions()))


@click.command()
@click.argument("name")
@click.option(
    "--show-environment", is_flag=True, help="Show environment values (masked as **** by default)."
)
@click.pass_context
def describe(ctx: click.Context, name: str, show_environment: bool) -> None:
    """Show the configuration and routes of a function.

    Shows $LATEST of function NAME: runtime, handler, memory, timeout, environment (values
    masked unless --show-environment), code sha256 and its routes with their URLs.
    """
    click.echo(render.describe(client_of(ctx).get_function(name, reveal_environment=show_environment)))


@click.command(name="rm")
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Delete function NAME with all its versions and routes."""
    client_of(ctx).delete_function(name)
    click.echo(f"removed {name}")


@click.command()
@click.pass_context
def routes(ctx: click.Context) -> None:
    """List the HTTP routes of all functions."""
    click.echo(render.routes_table(client_of(ctx).routes()))


@click.command()
@click.pass_context
def tasks(ctx: click.Context) -> None:
    """List running tasks (containers) and what they serve.

    One line per task: function, version, state, container, address and invocations served.
    """
    click.echo(render.tasks_table(client_of(ctx).tasks()))


