"""What a caller may read in an error: no host paths, no Docker text, no traceback; the request
id in the answer and in the platform's log (no Docker: the engine's failures are scripted)."""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from pathlib import Path

import pytest
from gateway_harness import GatewayFactory

from fnplat.errors import EngineError, ImageBuildError, NotFound, ServiceError
from fnplat.gateway.public_errors import REDACTED, PublicErrors

# What Docker 20.10 says when a container cannot be created; the platform wraps it in EngineError.
DOCKER_TEXT = (
    "Docker engine failed to start container fnplat-hello-1-abc (HTTP 500): "
    "OCI runtime create failed: container_linux.go:380: mounting "
    '"/var/lib/docker/overlay2/4f1e/merged/var/task" to rootfs: permission denied: unknown'
)
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"

SPEC = "name: hello\nruntime: python3.11\nhandler: app.handler\nroutes: ['GET /hello']\n"
IMAGE_SPEC = "name: boxed\nruntime: image\nroutes: ['GET /boxed']\n"


def make_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def assert_nothing_leaks(body: str, data_dir: Path) -> None:
    assert str(data_dir) not in body
    assert "/var/lib/docker" not in body
    assert "OCI runtime" not in body and "container_linux.go" not in body
    assert "Traceback" not in body and 'File "' not in body


async def deploy(gateway: object, files: dict[str, str]) -> None:
    client = gateway.client  # type: ignore[attr-defined]
    response = await client.post(
        "/v1/functions",
        data=make_zip(files),
        headers={**gateway.admin, "Content-Type": "application/zip"},  # type: ignore[attr-defined]
    )
    assert response.status == 201, await response.text()


# ---- the invoke API -----------------------------------------------------------------------------


async def test_an_engine_failure_reaches_the_caller_as_a_stable_message_with_the_request_id(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    gateway = await make_gateway()
    await deploy(gateway, {"function.yaml": SPEC, "app.py": "def handler(e, c): pass\n"})
    gateway.invoker.failure = EngineError(DOCKER_TEXT + f" (code in {tmp_path}/code/abc)")

    with caplog.at_level(logging.ERROR, logger="fnplat.gateway"):
        response = await gateway.client.post(
            "/2015-03-31/functions/hello/invocations", json={}, headers=gateway.admin
        )
    text = await response.text()

    assert response.status == 502
    assert response.headers["x-amzn-ErrorType"] == "ResourceNotReadyException"
    request_id = response.headers["x-amzn-RequestId"]
    assert re.fullmatch(UUID, request_id)
    body = json.loads(text)
    assert body["message"] == (
        f"The platform's container engine failed to handle the request (request id {request_id});"
        " the details are in the platform's log"
    )
    assert_nothing_leaks(text, tmp_path)
    # The detail went to the log, under the same request id.
    logged = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert logged and "OCI runtime create failed" in logged[0]


async def test_an_unexpected_exception_is_a_500_with_the_traceback_only_in_the_log(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    gateway = await make_gateway()
    await deploy(gateway, {"function.yaml": SPEC, "app.py": "def handler(e, c): pass\n"})
    gateway.invoker.failure = OSError(28, "No space left on device", str(tmp_path / "fnplat.db"))

    with caplog.at_level(logging.ERROR, logger="fnplat.gateway"):
        response = await gateway.client.post(
            "/2015-03-31/functions/hello/invocations", json={}, headers=gateway.admin
        )
    text = await response.text()

    assert response.status == 500
    assert response.headers["x-amzn-ErrorType"] == "ServiceException"
    request_id = response.headers["x-amzn-RequestId"]
    assert request_id in json.loads(text)["message"]
    assert_nothing_leaks(text, tmp_path)
    assert "No space left" not in text
    record = next(r for r in caplog.records if request_id in r.getMessage())
    assert record.exc_info is not None and record.exc_info[0] is OSError


async def test_the_callers_own_mistakes_keep_their_explanation(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    response = await gateway.client.post(
        "/2015-03-31/functions/nope/invocations", json={}, headers=gateway.admin
    )
    assert response.status == 404
    assert (await response.json())["message"] == "Function not found: nope"
    assert re.fullmatch(UUID, response.headers["x-amzn-RequestId"])


# ---- function routes ----------------------------------------------------------------------------


async def test_a_route_answers_api_gateways_502_and_logs_the_engine_failure(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    gateway = await make_gateway()
    await deploy(gateway, {"function.yaml": SPEC, "app.py": "def handler(e, c): pass\n"})
    gateway.invoker.failure = EngineError(DOCKER_TEXT)

    with caplog.at_level(logging.ERROR, logger="fnplat.gateway"):
        response = await gateway.client.get("/hello", headers=gateway.admin)
    text = await response.text()

    assert response.status == 502
    assert json.loads(text) == {"message": "Internal Server Error"}
    request_id = response.headers["apigw-requestid"]
    assert any(request_id in r.getMessage() and "OCI runtime" in r.getMessage() for r in caplog.records)
    assert_nothing_leaks(text, tmp_path)


async def test_a_route_that_fails_unexpectedly_is_a_json_500_not_aiohttps_text(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = await make_gateway()
    await deploy(gateway, {"function.yaml": SPEC, "app.py": "def handler(e, c): pass\n"})
    gateway.invoker.failure = RuntimeError(f"bug near {tmp_path}")

    response = await gateway.client.get("/hello", headers=gateway.admin)
    text = await response.text()

    assert response.status == 500
    assert json.loads(text) == {"message": "Internal Server Error"}
    assert re.fullmatch(UUID, response.headers["apigw-requestid"])
    assert_nothing_leaks(text, tmp_path)


# ---- the management API -------------------------------------------------------------------------


async def test_a_failed_image_build_keeps_the_users_output_without_host_paths(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async def failing_build(context: str, tag: str) -> str:
        raise ImageBuildError(
            f"image build of {tag} failed: The command '/bin/sh -c pip install nothing' returned a"
            f" non-zero code: 1\n--- last lines of the build log ---\nStep 2/3 : RUN pip install nothing\n"
            f"ERROR: No matching distribution found for nothing\n(context {context}, cache"
            " /var/lib/docker/tmp/docker-builder123/Dockerfile)"
        )

    gateway = await make_gateway(build_image=failing_build)
    response = await gateway.client.post(
        "/v1/functions",
        data=make_zip({"function.yaml": IMAGE_SPEC, "Dockerfile": "FROM scratch\nRUN pip install nothing\n"}),
        headers={**gateway.admin, "Content-Type": "application/zip"},
    )
    text = await response.text()

    assert response.status == 400
    assert response.headers["x-amzn-ErrorType"] == "ImageBuildException"
    message = json.loads(text)["message"]
    assert "ERROR: No matching distribution found for nothing" in message  # the user's own output
    assert f"(context {REDACTED}, cache {REDACTED})" in message
    assert_nothing_leaks(text, tmp_path)


async def test_a_management_failure_of_ours_is_stable_and_logged(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    async def engine_down(context: str, tag: str) -> str:
        raise EngineError("Docker engine not reachable at unix:///var/run/docker.sock: is dockerd running?")

    gateway = await make_gateway(build_image=engine_down)
    with caplog.at_level(logging.ERROR, logger="fnplat.gateway"):
        response = await gateway.client.post(
            "/v1/functions",
            data=make_zip({"function.yaml": IMAGE_SPEC, "Dockerfile": "FROM scratch\n"}),
            headers={**gateway.admin, "Content-Type": "application/zip"},
        )
    text = await response.text()

    assert response.status == 502
    request_id = response.headers["x-amzn-RequestId"]
    assert request_id in json.loads(text)["message"]
    assert "docker.sock" not in text and "dockerd" not in text
    assert any(request_id in r.getMessage() and "docker.sock" in r.getMessage() for r in caplog.records)


# ---- redaction ----------------------------------------------------------------------------------


def test_host_paths_are_redacted_as_whole_components(tmp_path: Path) -> None:
    errors = PublicErrors.for_data_dir(tmp_path / "data")
    data = tmp_path / "data"
    assert errors.redact(f"open {data}/code/ab12/Dockerfile: no such file") == (
        f"open {REDACTED}: no such file"
    )
    assert errors.redact(f"'{data}'") == f"'{REDACTED}'"
    assert errors.redact(f"{data}2/x") == f"{data}2/x"  # another directory that shares a prefix
    assert errors.redact("stat /var/lib/docker/overlay2/x/merged: ok") == f"stat {REDACTED}: ok"
    assert errors.redact("/var/task/app.py line 3") == "/var/task/app.py line 3"  # the task's paths stay


def test_service_errors_keep_their_status_and_type() -> None:
    errors = PublicErrors.for_data_dir(Path("/srv/fnplat"))
    response = errors.aws(ServiceError("the controller is shutting down"), "rid", "test")
    assert (response.status, response.header("x-amzn-ErrorType")) == (500, "ServiceException")
    assert response.header("x-amzn-RequestId") == "rid"
    user = errors.aws(NotFound("Function not found: x"), "rid", "test")
    assert (user.status, json.loads(user.body)["message"]) == (404, "Function not found: x")
