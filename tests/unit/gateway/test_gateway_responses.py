"""Error bodies: REST-JSON errors for the Lambda/management APIs, gateway messages for routes."""

from __future__ import annotations

import json

import pytest

from fnplat import errors
from fnplat.gateway import responses
from fnplat.gateway.responses import HttpResponse, aws_error, gateway_message


def body_of(response: HttpResponse) -> object:
    return json.loads(response.body)


@pytest.mark.parametrize(
    ("exc", "status", "kind", "error_type"),
    [
        (errors.NotFound("Function not found: f"), 404, "User", "ResourceNotFoundException"),
        (errors.BadRequest("bad json"), 400, "User", "InvalidRequestContentException"),
        (
            errors.SpecError("function.yaml: unknown key 'memroy'"),
            400,
            "User",
            "InvalidParameterValueException",
        ),
        (errors.RequestTooLarge("too big"), 413, "User", "RequestTooLargeException"),
        (errors.Conflict("route taken"), 409, "User", "ResourceConflictException"),
        (errors.ServiceError("oops"), 500, "Service", "ServiceException"),
        (errors.EngineError("docker down"), 502, "Service", "ResourceNotReadyException"),
    ],
)
def test_aws_error_shape(exc: errors.FnplatError, status: int, kind: str, error_type: str) -> None:
    response = aws_error(exc)
    assert response.status == status
    assert response.header("x-amzn-ErrorType") == error_type
    assert response.header("content-type") == "application/json"
    assert body_of(response) == {"Type": kind, "message": exc.message, "errorType": error_type}


def test_too_many_requests_carries_its_reason() -> None:
    response = aws_error(errors.TooManyRequests("Rate Exceeded.", reason="ConcurrentInvocationLimitExceeded"))
    assert response.status == 429
    assert body_of(response) == {
        "Type": "User",
        "message": "Rate Exceeded.",
        "errorType": "TooManyRequestsException",
        "Reason": "ConcurrentInvocationLimitExceeded",
    }


def test_messages_are_json_escaped() -> None:
    message = 'quote " newline \n unicode é'
    assert body_of(aws_error(errors.BadRequest(message)))["message"] == message  # type: ignore[index]
    assert body_of(gateway_message(400, message)) == {"message": message}


@pytest.mark.parametrize(
    ("response", "status", "message"),
    [
        (responses.not_found(), 404, "Not Found"),
        (responses.unauthorized(), 401, "Unauthorized"),
        (responses.forbidden(), 403, "Forbidden"),
        (responses.too_many_requests(), 429, "Too Many Requests"),
        (responses.limit_exceeded(), 429, "Limit Exceeded"),
        (responses.request_too_large(), 413, "Request Entity Too Large"),
        (responses.internal_server_error(), 502, "Internal Server Error"),
        (responses.service_unavailable(), 503, "Service Unavailable"),
    ],
)
def test_gateway_responses(response: HttpResponse, status: int, message: str) -> None:
    assert response.status == status
    assert response.header("Content-Type") == "application/json"
    assert body_of(response) == {"message": message}


def test_shared_responses_cannot_be_mutated() -> None:
    field = "status"  # via setattr: mypy would (rightly) reject the assignment written out
    with pytest.raises(AttributeError):
        setattr(responses.NOT_FOUND, field, 200)
    assert isinstance(responses.NOT_FOUND.headers, tuple)
