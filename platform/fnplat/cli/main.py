"""`fnctl`: the command line of fnplat.

Commands are thin: they parse options, call a testable function (packaging, client, scaffold,
render, ...) and print. Every `FnplatError` reaches the user as one line `error: <message>` on
stderr with exit code 1; click's usage errors exit with 2.

Each area's commands live in a module of their own (`*_cmds.py`) and are registered here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from fnplat.errors import FnplatError

from . import functions_cmds, keys_cmds, platform_cmds, server_cmds
from .common import FnctlError


class FnctlGroup(click.Group):
    """Turns every FnplatError raised by a command into one clean line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FnplatError as exc:
            raise FnctlError(exc.message) from exc


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


for _command in (
    functions_cmds.init,
    functions_cmds.deploy,
    functions_cmds.invoke,
    functions_cmds.logs,
    functions_cmds.list_functions,
    functions_cmds.describe,
    functions_cmds.remove,
    functions_cmds.routes,
    functions_cmds.tasks,
    keys_cmds.keys,
    platform_cmds.up,
    platform_cmds.down,
    platform_cmds.nodes,
    server_cmds.server,
):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    run: Callable[..., Any] = cli.main
    run(args=argv, prog_name="fnctl")
    sys.exit(0)  # cli.main exits itself in standalone mode; this satisfies NoReturn
