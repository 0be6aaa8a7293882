"""`fnctl server gateway|controller|migrate`: the cluster roles, one command each.

Every setting is a flag here as well as an `FNPLAT_*` environment variable: the flag is the
variable's name without the prefix, in lower case with dashes (FNPLAT_NODE_PORT → --node-port).
A flag wins over the environment. The README's configuration table lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from fnplat.config import SettingDoc, Settings, settings_table

ROLES = ("gateway", "controller", "migrate")


def flag_name(env: str) -> str:
    return "--" + env.removeprefix("FNPLAT_").lower().replace("_", "-")


def _option(row: SettingDoc) -> Callable[[Any], Any]:
    kind = {"int": int, "float": float}.get(row.type_name, str)
    default = f" (default {row.default})" if row.default else ""
    return click.option(
        flag_name(row.env),
        row.env,
        type=kind,
        default=None,
        show_default=False,
        help=f"{row.help}{default}. ${row.env}",
    )


def _with_setting_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    for row in reversed(settings_table()):
        command = _option(row)(command)
    return command


def settings_from(flags: dict[str, Any]) -> Settings:
    """Settings from the environment, with every flag given overriding its variable."""
    env = dict(os.environ)
    for name, value in flags.items():
        if value is not None:
            env[name] = str(value)
    return Settings.from_env(env=env)


def _role_command(role: str, summary: str) -> click.Command:
    @click.command(name=role, help=summary, context_settings={"max_content_width": 110})
    @_with_setting_flags
    def command(**flags: Any) -> None:
        from fnplat.server import serve_role  # lazy: the server pulls in aiohttp, SQLAlchemy and docker

        serve_role(role, settings_from(flags))

    return command


@click.group()
def server() -> None:
    """Run one role of a cluster: gateways and controllers sharing one Postgres.

    \b
    fnctl server migrate      upgrade the metadata store to head (idempotent), then exit
    fnctl server controller   one per Docker host: tasks, Runtime API, image builds, code cache
    fnctl server gateway      the HTTP front door; run as many as you like

    Every role needs FNPLAT_DATABASE_URL (Postgres) and FNPLAT_SECRET_KEY; gateways and
    controllers also FNPLAT_CLUSTER_SECRET. `fnctl up` runs both in one process instead.
    """


server.add_command(
    _role_command(
        "gateway",
        "The stateless HTTP front door of a cluster: routes, keys, the invoke and management APIs. "
        "Sends each invocation to its home controller (spilling over to the next ones). Runs until "
        "SIGTERM, then drains.",
    )
)
server.add_command(
    _role_command(
        "controller",
        "The controller of this Docker host (node): registers in the store, heartbeats, runs the "
        "tasks gateways send it, serves the Runtime API to them. Runs until SIGTERM, then drains.",
    )
)
server.add_command(
    _role_command(
        "migrate",
        "Upgrade the shared metadata store to this version's schema (idempotent; safe to run "
        "concurrently), encrypt what needs it, and exit (a Helm hook Job runs it).",
    )
)
