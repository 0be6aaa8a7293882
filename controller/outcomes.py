"""The invocation results for every way an invocation can end, in Lambda's shapes.

Pure constructors: the Runtime API and the service decide *when*, this module decides *what*.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from fnplat.controller.task import Invocation
from fnplat.domain import RESPONSE_PAYLOAD_LIMIT
from fnplat.invocation import InvocationResult

UNHANDLED = "Unhandled"
TIMEOUT_TYPE = "Sandbox.Timedout"
OOM_TYPE = "Runtime.OutOfMemory"
EXIT_TYPE = "Runtime.ExitError"
INIT_TIMEOUT_TYPE = "Sandbox.Timedout"
RESPONSE_TOO_LARGE_TYPE = "Function.ResponseSizeTooLarge"
UNKNOWN_ERROR_TYPE = "Runtime.Unknown"


def _duration_ms(invocation: Invocation) -> float:
    return (time.perf_counter() - invocation.started) * 1000.0


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def success(invocation: Invocation, payload: bytes) -> InvocationResult:
    return InvocationResult(
        payload=payload,
        executed_version=invocation.request.executed_version,
        duration_ms=_duration_ms(invocation),
        init_duration_ms=invocation.init_duration_ms,
    )


def parse_error(body: bytes, header_type: str | None) -> tuple[bytes, str]:
    """The error payload to pass on and its type: from the JSON body (awslambdaric sends no
    header on invocation errors), else the Lambda-Runtime-Function-Error-Type header."""
    error_type: str | None = None
    document: object = None
    if body:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
    if isinstance(document, dict):
        candidate = document.get("errorType")
        if isinstance(candidate, str) and candidate:
            error_type = candidate
    error_type = error_type or header_type or UNKNOWN_ERROR_TYPE
    if isinstance(document, dict):
        return body, error_type
    # Not a JSON object: wrap what the runtime said so callers always get Lambda's error shape.
    return _error_body(error_type, body.decode("utf-8", "replace")), error_type


def function_error(invocation: Invocation, body: bytes, header_type: str | None) -> InvocationResult:
    payload, error_type = parse_error(body, header_type)
    return InvocationResult(
        payload=payload,
        function_error=UNHANDLED,
        error_type=error_type,
        executed_version=invocation.request.executed_version,
        duration_ms=_duration_ms(invocation),
        init_duration_ms=invocation.init_duration_ms,
    )


def _failure(invocation: Invocation, error_type: str, message: str) -> InvocationResult:
    return InvocationResult(
        payload=_error_body(error_type, message),
        function_error=UNHANDLED,
        error_type=error_type,
        executed_version=invocation.request.executed_version,
        duration_ms=_duration_ms(invocation),
        init_duration_ms=invocation.init_duration_ms,
    )


def lambda_timestamp(unix: float) -> str:
    """`2024-05-01T12:00:00.123Z`, as Lambda prints it in timeout messages."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def timed_out(invocation: Invocation) -> InvocationResult:
    request = invocation.request
    message = (
        f"{lambda_timestamp(time.time())} {request.request_id} "
        f"Task timed out after {request.function.timeout:.2f} seconds"
    )
    return _failure(invocation, TIMEOUT_TYPE, message)


def out_of_memory(invocation: Invocation) -> InvocationResult:
    request = invocation.request
    message = (
        f"RequestId: {request.request_id} Error: Runtime exited with error: signal: killed "
        f"(out of memory: the function's memory limit is {request.function.memory} MB)"
    )
    return _failure(invocation, OOM_TYPE, message)


def exited(invocation: Invocation, exit_code: int) -> InvocationResult:
    request_id = invocation.request.request_id
    message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {exit_code}"
    return _failure(invocation, EXIT_TYPE, message)


def response_too_large(invocation: Invocation, size: int) -> InvocationResult:
    message = (
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({RESPONSE_PAYLOAD_LIMIT} bytes)."
    )
    return _failure(invocation, RESPONSE_TOO_LARGE_TYPE, message)


def init_failed(body: bytes, header_type: str | None, init_duration_ms: float | None) -> InvocationResult:
    """The runtime posted /init/error: that error is the result of the invocation waiting for it."""
    payload, error_type = parse_error(body, header_type)
    return InvocationResult(
        payload=payload, function_error=UNHANDLED, error_type=error_type, init_duration_ms=init_duration_ms
    )


def init_timed_out(init_timeout_s: float, init_duration_ms: float) -> InvocationResult:
    message = f"Init phase timed out after {init_timeout_s:.2f} seconds"
    return InvocationResult(
        payload=_error_body(INIT_TIMEOUT_TYPE, message),
        function_error=UNHANDLED,
        error_type=INIT_TIMEOUT_TYPE,
        init_duration_ms=init_duration_ms,
    )


def exited_during_init(
    exit_code: int, oom_killed: bool, memory_mb: int, init_duration_ms: float
) -> InvocationResult:
    if oom_killed:
        error_type = OOM_TYPE
        message = (
            f"Error: Runtime exited during init: signal: killed "
            f"(out of memory: the function's memory limit is {memory_mb} MB)"
        )
    else:
        error_type = EXIT_TYPE
        message = f"Error: Runtime exited during init: exit status {exit_code}"
    return InvocationResult(
        payload=_error_body(error_type, message),
        function_error=UNHANDLED,
        error_type=error_type,
        init_duration_ms=init_duration_ms,
    )
