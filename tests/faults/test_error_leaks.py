"""Errors returned to callers never carry host paths, Docker's texts or stack traces: those go to
the platform's log with the request id, and the caller gets a stable message with that id.

The real case: an image function whose image was removed from Docker behind the platform's back.
"""

from __future__ import annotations

import io
import re
import subprocess
import time
import uuid
import zipfile

import pytest
import requests
from e2e_platform import Platform

pytestmark = pytest.mark.docker

DOCKERFILE = 'FROM fnplat/runtime-python3.11:latest\nCOPY app.py /var/task/\nCMD ["app.handler"]\n'


def deploy_image_function(plat: Platform, name: str) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("function.yaml", f"name: {name}\nruntime: image\n")
        archive.writestr("Dockerfile", DOCKERFILE)
        archive.writestr("app.py", "def handler(event, context):\n    return 'hi'\n")
    response = requests.post(
        f"{plat.url}/v1/functions",
        data=buffer.getvalue(),
        headers={**plat.headers(), "Content-Type": "application/zip"},
        timeout=300,
    )
    assert response.status_code == 201, response.text
    image = response.json()["image"]
    assert isinstance(image, str) and image.startswith("fnplat-fn/")
    return image


def test_an_image_function_whose_image_was_removed_fails_with_a_stable_message(platform: Platform) -> None:
    name = f"gone-{uuid.uuid4().hex[:8]}"
    image = deploy_image_function(platform, name)
    # Never invoked, so no task uses it: the image is ours (named after this test's function).
    subprocess.run(["docker", "rmi", "-f", image], check=True, capture_output=True)

    response = platform.invoke(name, {})

    assert response.status_code == 502, response.text
    request_id = response.headers["x-amzn-RequestId"]
    message = response.json()["message"]
    assert message == (
        f"The platform's container engine failed to handle the request (request id {request_id});"
        " the details are in the platform's log"
    )
    text = response.text
    assert str(platform.data_dir) not in text and "/var/lib/docker" not in text
    assert image not in text and "not found" not in text and "docker" not in text.lower()
    assert "Traceback" not in text
    # The operator finds the cause in the log by the request id (the test reads the platform's
    # output on a thread: wait for the line, with a deadline).
    deadline = time.monotonic() + 30
    while not (logged := [line for line in platform.output if request_id in line]):
        assert time.monotonic() < deadline, platform.output[-20:]
        time.sleep(0.1)
    assert re.search(rf"{re.escape(image)} not found", logged[0]), logged
