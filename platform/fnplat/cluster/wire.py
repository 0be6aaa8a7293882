"""The invocation as it travels from a gateway to a controller's node API, and its result back.

The payload is the HTTP body as it is (no re-encoding of up to 6 MB); everything else travels in
`fnplat-*` headers. Pure: no I/O, so both ends and the tests share one definition.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from fnplat.errors import BadRequest
from fnplat.invocation import InvocationRequest, InvocationResult

INVOKE_PATH = "/internal/v1/invoke"
TASKS_PATH = "/internal/v1/tasks"

H_FUNCTION = "fnplat-function"
H_VERSION = "fnplat-version"
H_REQUEST_ID = "fnplat-request-id"
H_INVOKED_ARN = "fnplat-invoked-arn"
H_EXECUTED_VERSION = "fnplat-executed-version"
H_TRACE_ID = "fnplat-trace-id"
H_CLIENT_CONTEXT = "fnplat-client-context"  # base64 of the compact JSON (it may hold non-ASCII)
H_FUNCTION_ERROR = "fnplat-function-error"
H_ERROR_TYPE = "fnplat-error-type"
H_DURATION_MS = "fnplat-duration-ms"
H_INIT_DURATION_MS = "fnplat-init-duration-ms"
H_THROTTLE = "fnplat-throttle"  # on 429: "node" (this node is full: try another) | "function"
H_ERROR_KIND = "fnplat-error"  # on other refusals: the fnplat error class name


def request_headers(request: InvocationRequest) -> dict[str, str]:
    version = request.function
    headers = {
        H_FUNCTION: version.function_name,
        H_VERSION: str(version.version),
        H_REQUEST_ID: request.request_id,
        H_INVOKED_ARN: request.invoked_function_arn,
        H_EXECUTED_VERSION: request.executed_version,
    }
    if request.trace_id:
        headers[H_TRACE_ID] = request.trace_id
    if request.client_context:
        headers[H_CLIENT_CONTEXT] = base64.b64encode(request.client_context.encode()).decode()
    return headers


def parse_request_headers(headers: Mapping[str, str]) -> tuple[str, int, dict[str, str | None]]:
    """(function name, version number, the rest of the request's fields) from the headers."""
    try:
        name = headers[H_FUNCTION]
        number = int(headers[H_VERSION])
        request_id = headers[H_REQUEST_ID]
        arn = headers[H_INVOKED_ARN]
    except (KeyError, ValueError) as exc:
        raise BadRequest(f"malformed node API invocation: {exc}") from None
    context = headers.get(H_CLIENT_CONTEXT)
    return (
        name,
        number,
        {
            "request_id": request_id,
            "invoked_function_arn": arn,
            "executed_version": headers.get(H_EXECUTED_VERSION, "$LATEST"),
            "trace_id": headers.get(H_TRACE_ID),
            "client_context": base64.b64decode(context).decode() if context else None,
        },
    )


def result_headers(result: InvocationResult) -> dict[str, str]:
    headers = {
        "Content-Type": result.content_type,
        H_EXECUTED_VERSION: result.executed_version,
        H_DURATION_MS: repr(result.duration_ms),
    }
    if result.function_error:
        headers[H_FUNCTION_ERROR] = result.function_error
    if result.error_type:
        headers[H_ERROR_TYPE] = result.error_type
    if result.init_duration_ms is not None:
        headers[H_INIT_DURATION_MS] = repr(result.init_duration_ms)
    return headers


def parse_result(headers: Mapping[str, str], body: bytes) -> InvocationResult:
    init = headers.get(H_INIT_DURATION_MS)
    return InvocationResult(
        payload=body,
        function_error=headers.get(H_FUNCTION_ERROR),
        error_type=headers.get(H_ERROR_TYPE),
        content_type=headers.get("Content-Type", "application/json"),
        executed_version=headers.get(H_EXECUTED_VERSION, "$LATEST"),
        duration_ms=float(headers.get(H_DURATION_MS, "0")),
        init_duration_ms=float(init) if init is not None else None,
    )
