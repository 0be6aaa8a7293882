"""fnctl keys: create, list and revoke API keys."""

from __future__ import annotations

import click

from . import render
from .common import client_of


@click.group()
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
    created = client_of(ctx).create_key(name, scope)
    click.echo(created["key"])
    click.echo(
        f"key {created.get('key_id')} ({scope}) created: store it now, it cannot be shown again", err=True
    )


@keys.command(name="ls")
@click.pass_context
def keys_list(ctx: click.Context) -> None:
    """List API keys (never their secrets)."""
    click.echo(render.keys_table(client_of(ctx).list_keys()))


@keys.command(name="revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke the API key KEY_ID: requests with it get 403 from now on."""
    client_of(ctx).revoke_key(key_id)
    click.echo(f"revoked {key_id}")


