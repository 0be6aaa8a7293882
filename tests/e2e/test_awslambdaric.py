"""A custom image whose entrypoint is AWS's own runtime interface client (awslambdaric), built by
`fnctl deploy` and run by fnplat: AWS's client must get correct results and errors from us."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from e2e_platform import Platform

pytestmark = pytest.mark.docker

DOCKERFILE = """\
FROM fnplat/runtime-python3.11:latest
# The wheels were downloaded on the host: no index is reachable from inside a build.
COPY wheels/ /tmp/wheels/
RUN python3 -m pip install --no-index --find-links /tmp/wheels --target /opt/ric awslambdaric \\
    && rm -rf /tmp/wheels
COPY app.py /var/task/
ENV PYTHONPATH=/opt/ric
WORKDIR /var/task
ENTRYPOINT ["python3", "-m", "awslambdaric"]
CMD ["app.handler"]
"""

APP = """\
def handler(event, context):
    if event.get("fail"):
        raise KeyError("no such thing")
    return {
        "echo": event,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 3000,
        "request_id": context.aws_request_id,
    }
"""

SPEC = """\
name: ric
runtime: image
memory: 256
timeout: 3
"""


@pytest.fixture(scope="module")
def ric_function(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ric")
    (directory / "Dockerfile").write_text(DOCKERFILE)
    (directory / "app.py").write_text(APP)
    (directory / "function.yaml").write_text(SPEC)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--platform",
            "manylinux2014_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--dest",
            str(directory / "wheels"),
            "awslambdaric==4.2.2",
        ],
        check=True,
    )
    return directory


def test_awslambdaric_image_gets_results_and_errors_through_fnplat(
    platform: Platform, ric_function: Path
) -> None:
    platform.fnctl("deploy", str(ric_function))

    ok = platform.invoke("ric", {"hello": "aws"})
    assert ok.status_code == 200, ok.text
    assert "X-Amz-Function-Error" not in ok.headers
    body = ok.json()
    assert body["echo"] == {"hello": "aws"}
    assert body["function_name"] == "ric"
    assert body["memory"] == "256"
    assert body["arn"].endswith(":function:ric")
    assert body["remaining_ok"] is True
    assert body["request_id"] == ok.headers["x-amzn-RequestId"]

    failed = platform.invoke("ric", {"fail": True})
    assert failed.status_code == 200
    assert failed.headers["X-Amz-Function-Error"] == "Unhandled"
    error = failed.json()
    # awslambdaric sends the type only in the body (no Lambda-Runtime-Function-Error-Type header).
    assert error["errorType"] == "KeyError"
    assert "no such thing" in error["errorMessage"]
    assert error["requestId"] == failed.headers["x-amzn-RequestId"]

    again = platform.invoke("ric", {"after": "error"})
    assert again.status_code == 200 and again.json()["echo"] == {"after": "error"}
