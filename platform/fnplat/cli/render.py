"""Plain-text output of fnctl: aligned tables and summaries, pure and pipe-friendly."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned like `docker ps`; None shows as '-'."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], len(value))
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def functions_table(functions: Sequence[Mapping[str, Any]]) -> str:
    if not functions:
        return "no functions deployed (fnctl deploy DIR)"
    rows = [
        (
            f.get("name"),
            f.get("latest_version"),
            f.get("runtime"),
            f.get("memory"),
            f.get("timeout"),
            f.get("updated_at"),
        )
        for f in functions
    ]
    return table(("NAME", "VERSION", "RUNTIME", "MEMORY", "TIMEOUT", "UPDATED"), rows)


def routes_table(routes: Sequence[Mapping[str, Any]]) -> str:
    if not routes:
        return "no routes"
    rows = [
        (r.get("route_key"), r.get("function"), r.get("qualifier"), r.get("auth"), r.get("url"))
        for r in routes
    ]
    return table(("ROUTE", "FUNCTION", "QUALIFIER", "AUTH", "URL"), rows)


def keys_table(keys: Sequence[Mapping[str, Any]]) -> str:
    if not keys:
        return "no API keys"
    rows = [
        (k.get("key_id"), k.get("name"), k.get("scope"), k.get("created_at"), k.get("revoked")) for k in keys
    ]
    return table(("KEY ID", "NAME", "SCOPE", "CREATED", "REVOKED"), rows)


def tasks_table(tasks: Sequence[Mapping[str, Any]]) -> str:
    if not tasks:
        return "no tasks running"
    rows = [
        (
            t.get("node") or "-",
            t.get("task_id"),
            t.get("function"),
            t.get("version"),
            t.get("state"),
            _short_id(t.get("container_id")),
            t.get("ip"),
            t.get("started_at"),
            t.get("invocations"),
        )
        for t in tasks
    ]
    return table(
        ("NODE", "TASK", "FUNCTION", "VERSION", "STATE", "CONTAINER", "IP", "STARTED", "INVOCATIONS"), rows
    )


def nodes_table(nodes: Sequence[Mapping[str, Any]]) -> str:
    if not nodes:
        return "no controller nodes registered (fnctl up runs its controller in its one process)"
    rows = [
        (
            n.get("node_id"),
            n.get("state"),
            n.get("address"),
            n.get("capacity_mb"),
            n.get("tasks", "-"),
            n.get("version"),
            n.get("heartbeat_at"),
        )
        for n in nodes
    ]
    return table(("NODE", "STATE", "ADDRESS", "CAPACITY_MB", "TASKS", "VERSION", "LAST HEARTBEAT"), rows)


def _short_id(container_id: object) -> object:
    return container_id[:12] if isinstance(container_id, str) else container_id


def describe(function: Mapping[str, Any]) -> str:
    lines = [
        f"name:        {function.get('name')}",
        f"version:     {function.get('version')}",
        f"runtime:     {function.get('runtime')}",
        f"handler:     {function.get('handler') or '-'}",
        f"memory:      {function.get('memory')} MB",
        f"timeout:     {function.get('timeout')} s",
        f"code sha256: {function.get('code_sha256')}",
        f"updated:     {function.get('updated_at')}",
    ]
    environment = function.get("environment") or {}
    lines.append("environment:" + ("" if environment else " -"))
    lines.extend(f"  {key}={value}" for key, value in sorted(environment.items()))
    routes = function.get("routes") or []
    lines.append("routes:" + ("" if routes else " -"))
    lines.extend(f"  {r.get('route_key')}  {r.get('url') or ''}".rstrip() for r in routes)
    return "\n".join(lines)


def deploy_summary(result: Mapping[str, Any]) -> str:
    name = result.get("name")
    lines = [
        f"deployed {name} version {result.get('version')} (code sha256 {str(result.get('code_sha256'))[:12]})"
    ]
    routes = result.get("routes") or []
    if routes:
        lines.append("routes:")
        lines.extend(f"  {r.get('route_key')}  {r.get('url')}" for r in routes)
    lines.append("invoke:")
    lines.append(f"  fnctl invoke {name} --payload '{{}}'")
    if result.get("invoke_url"):
        lines.append(f"  curl -X POST -H \"x-api-key: $FNCTL_API_KEY\" -d '{{}}' {result['invoke_url']}")
    return "\n".join(lines)


def log_line(event: Mapping[str, Any]) -> str:
    message = str(event.get("message", "")).rstrip("\n")
    return f"{event.get('timestamp')}  {message}"


def json_text(payload: bytes) -> str:
    """A function's result as text: pretty JSON when it is JSON, else as sent."""
    text = payload.decode("utf-8", "replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
