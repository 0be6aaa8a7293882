"""Platform log lines and the results for every way an invocation ends."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime

import pytest

from fnplat import lambda_logs as logs
from fnplat.controller import outcomes
from fnplat.controller.task import Invocation
from fnplat.domain import FunctionVersion, frozen_map
from fnplat.invocation import InvocationRequest

VERSION = FunctionVersion(
    function_name="fn",
    version=1,
    runtime="python3.11",
    handler="app.handler",
    memory=512,
    timeout=3,
    environment=frozen_map(),
    code_sha256="0" * 64,
    image=None,
    created_at=datetime.now(UTC),
)


def test_log_lines_have_lambdas_exact_shape() -> None:
    assert logs.start_line("r-1", "$LATEST") == "START RequestId: r-1 Version: $LATEST"
    assert logs.end_line("r-1") == "END RequestId: r-1"
    assert (
        logs.report_line("r-1", 12.341, 128, 40, 250.5)
        == "REPORT RequestId: r-1\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB"
        "\tMax Memory Used: 40 MB\tInit Duration: 250.50 ms"
    )
    assert logs.report_line("r-1", 1.0, 128, 40) == (
        "REPORT RequestId: r-1\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB"
        "\tMax Memory Used: 40 MB"
    )
    assert "Max Memory Used" not in logs.report_line("r-1", 1.0, 128, None)


@pytest.mark.parametrize(("duration", "billed"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (99.5, 100)])
def test_billed_duration_rounds_up_to_whole_ms(duration: float, billed: int) -> None:
    assert logs.billed_duration_ms(duration) == billed


@pytest.mark.parametrize(
    ("body", "header", "expected_type", "passthrough"),
    [
        (b'{"errorMessage":"bad","errorType":"ValueError","stackTrace":[]}', None, "ValueError", True),
        # the body wins over the header (awslambdaric sends only the body)
        (b'{"errorMessage":"bad","errorType":"ValueError"}', "Runtime.Other", "ValueError", True),
        (b'{"errorMessage":"bad"}', "Function.Custom", "Function.Custom", True),
        (b'{"errorMessage":"bad"}', None, "Runtime.Unknown", True),
        (b"not json at all", "Runtime.Crash", "Runtime.Crash", False),
        (b"", None, "Runtime.Unknown", False),
        (b'["a list"]', None, "Runtime.Unknown", False),
    ],
)
def test_parse_error(body: bytes, header: str | None, expected_type: str, passthrough: bool) -> None:
    payload, error_type = outcomes.parse_error(body, header)
    assert error_type == expected_type
    if passthrough:
        assert payload == body
    else:
        document = json.loads(payload)
        assert document["errorType"] == expected_type
        assert document["errorMessage"] == body.decode()


async def test_timeout_and_crash_results() -> None:
    request = InvocationRequest(
        function=VERSION, payload=b"{}", request_id="req-9", invoked_function_arn="arn"
    )
    invocation = Invocation(
        request, asyncio.get_running_loop().create_future(), time.perf_counter(), 0.0, 0, None
    )
    timed_out = outcomes.timed_out(invocation)
    body = json.loads(timed_out.payload)
    assert (timed_out.function_error, timed_out.error_type) == ("Unhandled", "Sandbox.Timedout")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z req-9 Task timed out after 3\.00 seconds",
        body["errorMessage"],
    )
    oom = outcomes.out_of_memory(invocation)
    assert oom.error_type == "Runtime.OutOfMemory" and "512 MB" in json.loads(oom.payload)["errorMessage"]
    crash = outcomes.exited(invocation, 3)
    assert json.loads(crash.payload) == {
        "errorMessage": "RequestId: req-9 Error: Runtime exited with error: exit status 3",
        "errorType": "Runtime.ExitError",
    }
    large = outcomes.response_too_large(invocation, 7_000_000)
    assert json.loads(large.payload)["errorMessage"] == (
        "Response payload size (7000000 bytes) exceeded maximum allowed payload size (6291556 bytes)."
    )
