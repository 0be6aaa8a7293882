"""Small functions the fault tests deploy, packaged in memory and uploaded to a platform."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import requests
from e2e_platform import Platform

# Echoes its event, names itself, sleeps (`{"sleep": seconds}`) and prints (`{"print": text}`)
# when asked to.
APP = """\
import os
import time


def handler(event, context):
    if isinstance(event, dict) and event.get("sleep"):
        time.sleep(float(event["sleep"]))
    if isinstance(event, dict) and event.get("print"):
        print(event["print"], flush=True)
    return {"function": context.function_name, "event": event}
"""


def package(name: str, routes: Sequence[str] = (), timeout: int = 60) -> bytes:
    """The zip `fnctl deploy` would upload for a Python function running APP."""
    spec = [f"name: {name}", "runtime: python3.11", "handler: app.handler", f"timeout: {timeout}"]
    if routes:
        spec.append("routes:")
        spec.extend(f"  - {route}" for route in routes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("function.yaml", "\n".join(spec) + "\n")
        archive.writestr("app.py", APP)
    return buffer.getvalue()


def deploy(platform: Platform, data: bytes, timeout: float = 120) -> requests.Response:
    return requests.post(
        f"{platform.url}/v1/functions",
        data=data,
        headers={**platform.headers(), "Content-Type": "application/zip"},
        timeout=timeout,
    )


def deployed(platform: Platform, name: str, routes: Sequence[str] = (), timeout: int = 60) -> None:
    response = deploy(platform, package(name, routes, timeout))
    assert response.status_code == 201, response.text
