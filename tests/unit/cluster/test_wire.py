"""The node API's wire format: what a gateway sends is what a controller reads, and back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fnplat.cluster import wire
from fnplat.domain import FunctionVersion, frozen_map
from fnplat.errors import BadRequest
from fnplat.invocation import InvocationRequest, InvocationResult

VERSION = FunctionVersion(
    "fn", 7, "python3.11", "app.handler", 128, 3, frozen_map(), "0" * 64, None, datetime.now(UTC)
)


def test_a_request_round_trips_with_non_ascii_client_context() -> None:
    request = InvocationRequest(
        function=VERSION,
        payload=b"{}",
        request_id="rid",
        invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:fn:live",
        executed_version="7",
        client_context='{"custom":{"name":"Zoë"}}',
        trace_id="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    )
    headers = wire.request_headers(request)
    assert all(value.isascii() for value in headers.values())
    name, number, fields = wire.parse_request_headers(headers)
    assert (name, number) == ("fn", 7)
    assert fields == {
        "request_id": "rid",
        "invoked_function_arn": request.invoked_function_arn,
        "executed_version": "7",
        "trace_id": request.trace_id,
        "client_context": request.client_context,
    }


def test_a_malformed_request_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        wire.parse_request_headers({wire.H_FUNCTION: "fn", wire.H_VERSION: "seven"})


@pytest.mark.parametrize(
    "result",
    [
        InvocationResult(b'{"ok":1}', executed_version="3", duration_ms=1.25),
        InvocationResult(
            b'{"errorType":"ValueError"}',
            function_error="Unhandled",
            error_type="ValueError",
            duration_ms=2.5,
            init_duration_ms=180.0,
        ),
        InvocationResult(b"raw", content_type="application/unknown"),
    ],
)
def test_a_result_round_trips(result: InvocationResult) -> None:
    assert wire.parse_result(wire.result_headers(result), result.payload) == result
