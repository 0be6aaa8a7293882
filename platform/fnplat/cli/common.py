"""What every fnctl command module shares: the client, the data dir, the error type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from fnplat.client import Client
from fnplat.config import default_data_dir


class FnctlError(click.ClickException):
    """A domain error shown as `error: <message>` (click would print `Error: ...`)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def stderr_console() -> Console:
    return Console(stderr=True)


def data_dir_of(ctx: click.Context) -> Path:
    root = ctx.find_root()
    value = root.obj.get("data_dir") if root.obj else None
    return Path(value) if value else default_data_dir()


def client_of(ctx: click.Context) -> Client:
    return Client.from_env(data_dir_of(ctx))


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="fnplat data directory (default: $FNPLAT_DATA_DIR or ~/.fnplat).",
)
