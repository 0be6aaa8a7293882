"""AWS Signature Version 4 verification against botocore's own signer (sigv4)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from multidict import CIMultiDict

from fnplat.errors import (
    FnplatError,
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)
from fnplat.gateway.responses import aws_error
from fnplat.gateway.sigv4 import (
    SignedRequest,
    SigV4Verifier,
    canonical_query,
    canonical_uri,
    credential_kind,
    parse_authorization,
)

KEY_ID = "0123456789ab"
SECRET = "S3cretS3cretS3cretS3cretS3cretS3cretS3cret1"  # 43 base62 characters, like an fnplat key
SIGNED_AT = dt.datetime(2024, 5, 15, 12, 0, 0, tzinfo=dt.UTC)
NOW = SIGNED_AT.timestamp()
HOST = "127.0.0.1:8080"


@pytest.fixture(autouse=True)
def frozen_signer_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """botocore signs with the time of the call; pin it so signatures are reproducible."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: SIGNED_AT.replace(tzinfo=None))
    yield


def secrets(key_id: str) -> bytes | None:
    return SECRET.encode() if key_id == KEY_ID else None


def verifier(now: float = NOW) -> SigV4Verifier:
    return SigV4Verifier(secrets, clock=lambda: now)


def signed(
    method: str,
    path_and_query: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    region: str = "us-east-1",
    service: str = "lambda",
    key_id: str = KEY_ID,
    secret: str = SECRET,
    host: str = HOST,
) -> SignedRequest:
    """Sign with botocore's SigV4Auth, then return the request as a server receives it."""
    request = AWSRequest(
        method=method, url=f"http://{host}{path_and_query}", data=body, headers=headers or {}
    )
    botocore.auth.SigV4Auth(Credentials(key_id, secret), service, region).add_auth(request)
    parts = urlsplit(request.url)
    received = [
        ("Host", host),
        *((k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()),
    ]
    return SignedRequest(method, parts.path, parts.query, received, body)


def with_header(request: SignedRequest, name: str, value: str | None) -> SignedRequest:
    """The request with header `name` replaced (None: removed), or added when absent."""
    headers = [(k, v) for k, v in request.headers if k.lower() != name.lower()]
    if value is not None:
        headers.append((name, value))
    return SignedRequest(request.method, request.raw_path, request.raw_query, headers, request.body)


def header_of(request: SignedRequest, name: str) -> str:
    return next(v for k, v in request.headers if k.lower() == name.lower())


# --- accepted -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path_and_query", "body", "headers", "region"),
    [
        ("POST", "/2015-03-31/functions/hello/invocations", b'{"a": 1}', {}, "us-east-1"),
        ("POST", "/2015-03-31/functions/hello%3Aprod/invocations", b"{}", {}, "eu-west-3"),
        (
            "POST",
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahello%3A%24LATEST/invocations",
            b"{}",
            {"X-Amz-Invocation-Type": "RequestResponse", "X-Amz-Log-Type": "Tail"},
            "us-east-1",
        ),
        ("GET", "/2015-03-31/functions?MaxItems=5&Marker=a%20b%2Fc%3Ad", b"", {}, "local"),
        ("GET", "/2015-03-31/functions?b=2&a=2&a=1&empty=&flag", b"", {}, "ap-south-1"),
        ("GET", "/2015-03-31/functions?q=caf%C3%A9%2B%26%3D", b"", {}, "us-east-1"),
        ("GET", "/2015-03-31/functions/hello/versions", b"", {}, "us-east-1"),
        ("DELETE", "/2015-03-31/functions/hello", b"", {}, "us-east-1"),
        (
            "PUT",
            "/2015-03-31/functions/hello/configuration",
            b'{"Timeout": 5}',
            {"X-Custom": "a   b  "},
            "us-east-1",
        ),
        ("POST", "/2015-03-31/functions/hello/invocations", bytes(range(256)), {}, "us-east-1"),
        ("GET", "/", b"", {}, "us-east-1"),
    ],
)
def test_requests_signed_by_botocore_verify(
    method: str, path_and_query: str, body: bytes, headers: dict[str, str], region: str
) -> None:
    identity = verifier().verify(signed(method, path_and_query, body, headers, region=region))
    assert (identity.access_key_id, identity.region, identity.signed_at) == (KEY_ID, region, int(NOW))


def test_unsigned_headers_added_after_signing_do_not_matter() -> None:
    request = signed("POST", "/2015-03-31/functions/hello/invocations", b"{}")
    request = with_header(request, "User-Agent", "Boto3/1.44.8")
    request = with_header(request, "X-Amzn-Trace-Id", "Root=1-abc")
    request = with_header(request, "amz-sdk-invocation-id", "e2a8e5d0")
    assert verifier().verify(request).access_key_id == KEY_ID


def test_a_signed_content_sha256_header_is_accepted_when_it_matches() -> None:
    body = b'{"x": 1}'
    request = signed(
        "POST",
        "/2015-03-31/functions/hello/invocations",
        body,
        {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()},
    )
    assert verifier().verify(request).access_key_id == KEY_ID


@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_clock_skew_within_five_minutes_is_accepted(offset: int) -> None:
    request = signed("GET", "/2015-03-31/functions")
    assert verifier(NOW + offset).verify(request).access_key_id == KEY_ID


# --- refused ------------------------------------------------------------------------------------


def refusal(request: SignedRequest, now: float = NOW) -> FnplatError:
    with pytest.raises(FnplatError) as caught:
        verifier(now).verify(request)
    return caught.value


MISMATCH = "The request signature we calculated does not match the signature you provided."


def test_tampering_is_refused() -> None:
    base = signed("POST", "/2015-03-31/functions/hello/invocations?Qualifier=1", b'{"amount": 10}')
    date = header_of(base, "X-Amz-Date")
    cases: list[tuple[SignedRequest, type[FnplatError], str]] = [
        (
            SignedRequest(base.method, base.raw_path, base.raw_query, base.headers, b'{"amount": 99}'),
            InvalidSignature,
            MISMATCH,
        ),
        (
            SignedRequest(base.method, base.raw_path, base.raw_query, base.headers, b""),
            InvalidSignature,
            MISMATCH,
        ),
        (
            SignedRequest("PUT", base.raw_path, base.raw_query, base.headers, base.body),
            InvalidSignature,
            MISMATCH,
        ),
        (
            SignedRequest(
                base.method,
                "/2015-03-31/functions/other/invocations",
                base.raw_query,
                base.headers,
                base.body,
            ),
            InvalidSignature,
            MISMATCH,
        ),
        (
            SignedRequest(base.method, base.raw_path, "Qualifier=2", base.headers, base.body),
            InvalidSignature,
            MISMATCH,
        ),
        (SignedRequest(base.method, base.raw_path, "", base.headers, base.body), InvalidSignature, MISMATCH),
        (with_header(base, "Host", "evil.example.com"), InvalidSignature, MISMATCH),
        (with_header(base, "X-Amz-Date", date[:-3] + "05Z"), InvalidSignature, MISMATCH),  # 5 s later
        (
            with_header(base, "X-Amz-Date", "20240516T120000Z"),
            InvalidSignature,
            "Date in Credential scope does not match",
        ),
        (with_header(base, "Host", None), InvalidSignature, MISMATCH),  # a signed header that is gone
    ]
    for request, error, message in cases:
        caught = refusal(request)
        assert isinstance(caught, error) and message in caught.message, (request, caught)


def test_wrong_secret_and_unknown_key() -> None:
    assert MISMATCH in refusal(signed("GET", "/2015-03-31/functions", secret="x" * 43)).message
    unknown = refusal(signed("GET", "/2015-03-31/functions", key_id="ffffffffffff"))
    assert isinstance(unknown, UnrecognizedClient)
    assert unknown.message == "The security token included in the request is invalid."


def test_signatures_outside_the_window_are_refused_with_aws_messages() -> None:
    request = signed("GET", "/2015-03-31/functions")
    late = refusal(request, NOW + 301)
    assert isinstance(late, InvalidSignature)
    assert late.message == (
        "Signature expired: 20240515T120000Z is now earlier than 20240515T120001Z (20240515T120501Z - 5 min.)"
    )
    early = refusal(request, NOW - 301)
    assert early.message == (
        "Signature not yet current: 20240515T120000Z is still later than 20240515T115959Z "
        "(20240515T115459Z + 5 min.)"
    )


@pytest.mark.parametrize(
    ("service", "region", "message"),
    [
        ("s3", "us-east-1", "Credential should be scoped to correct service: 'lambda'."),
        ("execute-api", "us-east-1", "scoped to correct service"),
    ],
)
def test_other_services_are_refused(service: str, region: str, message: str) -> None:
    error = refusal(signed("GET", "/2015-03-31/functions", service=service, region=region))
    assert isinstance(error, InvalidSignature) and message in error.message


def authorization_variant(old: str, new: str) -> SignedRequest:
    base = signed("GET", "/2015-03-31/functions")
    return with_header(base, "Authorization", header_of(base, "Authorization").replace(old, new))


@pytest.mark.parametrize(
    ("request_factory", "error", "message"),
    [
        (
            lambda: with_header(signed("GET", "/x"), "Authorization", None),
            MissingAuthenticationToken,
            "Missing Authentication Token",
        ),
        (
            lambda: with_header(signed("GET", "/x"), "Authorization", "  "),
            MissingAuthenticationToken,
            "Missing",
        ),
        (
            lambda: authorization_variant("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
            IncompleteSignature,
            "Unsupported authorization type",
        ),
        (
            lambda: with_header(signed("GET", "/x"), "Authorization", "AWS4-HMAC-SHA256 Credential=a/b"),
            IncompleteSignature,
            "requires 'SignedHeaders' parameter. Authorization header requires 'Signature'",
        ),
        (
            lambda: authorization_variant(f"Credential={KEY_ID}/", "Credential="),
            IncompleteSignature,
            "Credential must have the form",
        ),
        (
            lambda: authorization_variant("SignedHeaders=host;x-amz-date", "SignedHeaders=Host;X-Amz-Date"),
            IncompleteSignature,
            "SignedHeaders must be lower-case",
        ),
        (
            lambda: authorization_variant("Signature=", "Signature=00"),
            IncompleteSignature,
            "Signature must be 64",
        ),
        (
            lambda: authorization_variant("/aws4_request", "/aws5_request"),
            InvalidSignature,
            "valid terminator: 'aws4_request', not 'aws5_request'",
        ),
        (
            lambda: authorization_variant("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date"),
            InvalidSignature,
            "'Host' must be a 'SignedHeader'",
        ),
        (
            lambda: authorization_variant("SignedHeaders=host;x-amz-date", "SignedHeaders=host"),
            InvalidSignature,
            "'X-Amz-Date' must be a 'SignedHeader'",
        ),
        (
            lambda: with_header(signed("GET", "/x"), "X-Amz-Date", None),
            IncompleteSignature,
            "requires existence of a 'X-Amz-Date' header",
        ),
        (
            lambda: with_header(signed("GET", "/x"), "X-Amz-Date", "2024-05-15T12:00:00Z"),
            IncompleteSignature,
            "ISO-8601 'basic format'",
        ),
        (
            lambda: with_header(signed("GET", "/x"), "X-Amz-Date", "20241315T120000Z"),
            IncompleteSignature,
            "ISO-8601 'basic format'",
        ),
        (
            lambda: with_header(signed("GET", "/x"), "X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"),
            InvalidSignature,
            "the body must be signed",
        ),
        (
            lambda: with_header(
                signed("GET", "/x"), "X-Amz-Content-SHA256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
            ),
            InvalidSignature,
            "the body must be signed",
        ),
        (
            lambda: with_header(signed("GET", "/x"), "X-Amz-Content-SHA256", "0" * 64),
            InvalidSignature,
            "does not match what was computed",
        ),
    ],
)
def test_malformed_or_incomplete_signatures(
    request_factory: Any, error: type[FnplatError], message: str
) -> None:
    caught = refusal(request_factory())
    assert isinstance(caught, error), caught
    assert message in caught.message


def test_signed_body_hash_header_must_match_the_body_that_arrived() -> None:
    body = b'{"x": 1}'
    request = signed("POST", "/f", body, {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    tampered = SignedRequest(
        request.method, request.raw_path, request.raw_query, request.headers, b'{"x": 2}'
    )
    assert "does not match what was computed" in refusal(tampered).message


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (IncompleteSignature("m"), 400, "IncompleteSignatureException"),
        (MissingAuthenticationToken("m"), 403, "MissingAuthenticationTokenException"),
        (UnrecognizedClient("m"), 403, "UnrecognizedClientException"),
        (InvalidSignature("m"), 403, "InvalidSignatureException"),
    ],
)
def test_errors_render_as_aws_errors(error: FnplatError, status: int, error_type: str) -> None:
    response = aws_error(error)
    assert response.status == status
    assert response.header("x-amzn-ErrorType") == error_type
    assert json.loads(response.body) == {"Type": "User", "message": "m", "errorType": error_type}


# --- parts --------------------------------------------------------------------------------------


def test_parse_authorization_tolerates_spacing() -> None:
    auth = parse_authorization(
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240515/us-east-1/lambda/aws4_request,"
        "SignedHeaders=host;x-amz-date,   Signature=" + "a" * 64
    )
    assert (auth.access_key_id, auth.date, auth.region, auth.service, auth.signed_headers) == (
        KEY_ID,
        "20240515",
        "us-east-1",
        "lambda",
        "host;x-amz-date",
    )


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/2015-03-31/functions/hello/invocations",
        "/2015-03-31/functions/hello%3Aprod/invocations",
        "/a//b/./c/../d/",
        "/a/b/../../..",
        "/%E2%9C%93/x%20y",
        "/trailing/",
    ],
)
def test_canonical_uri_matches_botocore(path: str) -> None:
    signer = botocore.auth.SigV4Auth(Credentials("a", "b"), "lambda", "us-east-1")
    assert canonical_uri(path) == signer._normalize_url_path(path or "/")


@pytest.mark.parametrize(
    "query",
    [
        "",
        "a=1",
        "b=2&a=1",
        "a=2&a=1&a=10",
        "flag&empty=",
        "Marker=a%20b%2Fc%3Ad&MaxItems=5",
        "q=caf%C3%A9%2B%26%3D",
        "x=~-_.",
    ],
)
def test_canonical_query_matches_botocore_for_what_botocore_sends(query: str) -> None:
    signer = botocore.auth.SigV4Auth(Credentials("a", "b"), "lambda", "us-east-1")
    assert canonical_query(query) == signer._canonical_query_string_url(urlsplit("http://h/?" + query))


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("x=~", "x=~"),
        ("x=%7e", "x=~"),  # other encodings of the same value are normalised
        ("x=a:b", "x=a%3Ab"),
        ("x=a+b", "x=a%2Bb"),  # a literal plus is a plus in SigV4
        ("a=1&&b=2", "a=1&b=2"),
    ],
)
def test_canonical_query_normalises_encodings(query: str, canonical: str) -> None:
    assert canonical_query(query) == canonical


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"x-api-key": "fnp_x"}, "api_key"),
        ({"x-api-key": "fnp_x", "Authorization": "AWS4-HMAC-SHA256 Credential=dummy"}, "api_key"),
        ({"x-api-key": "  ", "Authorization": "AWS4-HMAC-SHA256 Credential=a"}, "sigv4"),
        ({"Authorization": "AWS4-HMAC-SHA256 Credential=a"}, "sigv4"),
        ({"Authorization": "Bearer fnp_x"}, "api_key"),
        ({"Authorization": "bearer fnp_x"}, "api_key"),
        ({"Authorization": "Basic dXNlcg=="}, None),
        ({}, None),
    ],
)
def test_credential_kind(headers: dict[str, str], kind: str | None) -> None:
    assert credential_kind(CIMultiDict(headers)) == kind


# --- unmodified boto3 against a server that verifies --------------------------------------------


@pytest.fixture
async def lambda_stub() -> AsyncIterator[tuple[TestServer, list[str]]]:
    """A loopback server verifying every request with SigV4Verifier, answering like Lambda."""
    seen: list[str] = []
    check = SigV4Verifier(secrets, clock=lambda: NOW)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        raw_path, _, raw_query = request.raw_path.partition("?")
        try:
            identity = check.verify(
                SignedRequest(request.method, raw_path, raw_query, list(request.headers.items()), body)
            )
        except FnplatError as exc:
            error = aws_error(exc)
            return web.Response(status=error.status, headers=dict(error.headers), body=error.body)
        seen.append(f"{request.method} {raw_path} {identity.region}")
        if raw_path.endswith("/invocations"):
            return web.Response(body=b'{"ok": true}', headers={"X-Amz-Executed-Version": "$LATEST"})
        return web.json_response({"Functions": [], "Configuration": {"FunctionName": "hello"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, seen
    await server.close()


def lambda_client(url: str, secret: str = SECRET) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=KEY_ID, aws_secret_access_key=secret, region_name="eu-west-3"
    )
    return session.client("lambda", endpoint_url=url, config=Config(retries={"max_attempts": 1}))


async def test_unmodified_boto3_calls_are_accepted(lambda_stub: tuple[TestServer, list[str]]) -> None:
    server, seen = lambda_stub
    client = lambda_client(str(server.make_url("")).rstrip("/"))
    arn = "arn:aws:lambda:eu-west-3:000000000000:function:hello:prod"

    def calls() -> None:
        result = client.invoke(FunctionName=arn, Payload=b'{"n": 1}')
        assert json.loads(result["Payload"].read()) == {"ok": True}
        client.invoke(FunctionName="hello:1", Payload=b"")
        client.list_functions(MaxItems=5, Marker="a b/c:d+é")
        client.get_function(FunctionName="hello", Qualifier="$LATEST")

    await asyncio.to_thread(calls)
    assert seen == [
        "POST /2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-3%3A000000000000%3Afunction%3Ahello%3Aprod"
        "/invocations eu-west-3",
        "POST /2015-03-31/functions/hello%3A1/invocations eu-west-3",
        "GET /2015-03-31/functions eu-west-3",
        "GET /2015-03-31/functions/hello eu-west-3",
    ]


async def test_boto3_with_a_wrong_secret_gets_invalid_signature(
    lambda_stub: tuple[TestServer, list[str]],
) -> None:
    server, seen = lambda_stub
    client = lambda_client(str(server.make_url("")).rstrip("/"), secret="x" * 43)

    def call() -> str:
        try:
            client.invoke(FunctionName="hello", Payload=b"{}")
        except client.exceptions.ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "accepted"

    assert await asyncio.to_thread(call) == "InvalidSignatureException"
    assert seen == []
