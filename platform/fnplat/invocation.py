"""The seam between gateway and controller: one `Invoker` interface.

On one host the gateway calls the controller in-process; in a cluster (later) an HTTP client
implements the same Protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fnplat.domain import FunctionVersion


@dataclass(frozen=True, slots=True)
class InvocationRequest:
    function: FunctionVersion
    payload: bytes  # the raw event, JSON
    request_id: str
    invoked_function_arn: str
    executed_version: str = "$LATEST"  # what X-Amz-Executed-Version reports
    client_context: str | None = None  # JSON, already base64-decoded
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class InvocationResult:
    payload: bytes  # the function's result, or its error JSON when function_error is set
    function_error: str | None = None  # "Unhandled" for function, runtime, timeout and OOM errors
    error_type: str | None = None  # e.g. "ValueError", "Sandbox.Timedout", "Runtime.OutOfMemory"
    content_type: str = "application/json"
    executed_version: str = "$LATEST"
    duration_ms: float = 0.0
    init_duration_ms: float | None = None  # set when this invocation cold-started its task


class Invoker(Protocol):
    async def invoke(self, request: InvocationRequest) -> InvocationResult:
        """Run one invocation synchronously.

        Function failures (handler exception, init error, timeout, out of memory, crash) are
        results with `function_error` set. Invocation failures raise `fnplat.errors` exceptions:
        `TooManyRequests` when throttled, `EngineError`/`ServiceError` when we failed.
        """
        ...

    async def retire(self, function_name: str, keep_version: int | None = None) -> None:
        """Stop idle tasks of a function's versions other than keep_version (after a deploy or removal)."""
        ...
