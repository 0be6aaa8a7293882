"""Every error body the gateway sends, built in one place (like SAM CLI's service_error_responses).

Two families, as AWS has them:
- the Lambda/management APIs answer REST-JSON errors: `{"Type", "message", "errorType"}` plus the
  `x-amzn-ErrorType` header that AWS SDKs read the error code from (`aws_error`);
- function routes answer API Gateway gateway responses: `{"message": "..."}` (`gateway_message`
  and the named responses below, whose texts are those HTTP APIs send).

`HttpResponse` is framework-free; the aiohttp handlers turn it into a `web.Response`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fnplat.errors import FnplatError, ServiceUnavailable, TooManyRequests

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...]  # in order; a name may repeat (one `set-cookie` per cookie)
    body: bytes

    def header(self, name: str) -> str | None:
        """First value of a header, case-insensitively (for callers and tests, not the hot path)."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


def _json_body(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def aws_error(
    exc: FnplatError, *, message: str | None = None, request_id: str | None = None
) -> HttpResponse:
    """A REST-JSON error as Lambda's API sends it; TooManyRequests also carries its `Reason`,
    ServiceUnavailable a `Retry-After`.

    `message` replaces the exception's own (public_errors.py decides what a caller may read);
    `request_id` is sent as `x-amzn-RequestId`, as Lambda does.
    """
    body: dict[str, str] = {
        "Type": exc.kind,
        "message": exc.message if message is None else message,
        "errorType": exc.error_type,
    }
    if isinstance(exc, TooManyRequests):
        body["Reason"] = exc.reason
    headers: tuple[tuple[str, str], ...] = (
        ("Content-Type", JSON_CONTENT_TYPE),
        ("x-amzn-ErrorType", exc.error_type),
    )
    if isinstance(exc, ServiceUnavailable):
        headers += (("Retry-After", str(exc.retry_after_s)),)
    if request_id is not None:
        headers += (("x-amzn-RequestId", request_id),)
    return HttpResponse(status=exc.status, headers=headers, body=_json_body(body))


def gateway_message(status: int, message: str) -> HttpResponse:
    """An API Gateway style response: `{"message": ...}`."""
    return HttpResponse(
        status=status,
        headers=(("Content-Type", JSON_CONTENT_TYPE),),
        body=_json_body({"message": message}),
    )


# The gateway responses of HTTP APIs we use. Built once: HttpResponse is immutable, so sharing is safe
# and the hot path does not serialise JSON for them.
NOT_FOUND = gateway_message(404, "Not Found")
UNAUTHORIZED = gateway_message(401, "Unauthorized")
FORBIDDEN = gateway_message(403, "Forbidden")
TOO_MANY_REQUESTS = gateway_message(429, "Too Many Requests")  # throttled
LIMIT_EXCEEDED = gateway_message(429, "Limit Exceeded")  # a usage plan quota is used up
REQUEST_TOO_LARGE = gateway_message(413, "Request Entity Too Large")
# A function error or a malformed proxy response: API Gateway answers 502 for both.
INTERNAL_SERVER_ERROR = gateway_message(502, "Internal Server Error")
SERVICE_UNAVAILABLE = gateway_message(503, "Service Unavailable")  # integration timed out
REQUEST_TIMEOUT = gateway_message(408, "Request Timeout")  # the client's body stalled


def not_found() -> HttpResponse:
    return NOT_FOUND


def unauthorized() -> HttpResponse:
    return UNAUTHORIZED


def forbidden() -> HttpResponse:
    return FORBIDDEN


def too_many_requests() -> HttpResponse:
    return TOO_MANY_REQUESTS


def limit_exceeded() -> HttpResponse:
    return LIMIT_EXCEEDED


def request_too_large() -> HttpResponse:
    return REQUEST_TOO_LARGE


def internal_server_error() -> HttpResponse:
    return INTERNAL_SERVER_ERROR


def service_unavailable(retry_after_s: int | None = None) -> HttpResponse:
    if retry_after_s is None:
        return SERVICE_UNAVAILABLE
    base = SERVICE_UNAVAILABLE
    return HttpResponse(base.status, (*base.headers, ("Retry-After", str(retry_after_s))), base.body)


def request_timeout() -> HttpResponse:
    return REQUEST_TIMEOUT
