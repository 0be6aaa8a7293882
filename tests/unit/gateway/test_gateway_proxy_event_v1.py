"""Payload format 1.0: the event we build and the response mapping (proxy_event_v1), per lambda-compat §3."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnplat.gateway.proxy_event_v1 import (
    MalformedProxyResponse,
    build_payload_v1_event,
    map_payload_v1_response,
    resource_of,
)

NOW_MS = 1583349317135  # 04/Mar/2020:19:15:17 +0000

IDENTITY_NULLS = {
    "accessKey": None,
    "accountId": None,
    "caller": None,
    "cognitoAmr": None,
    "cognitoAuthenticationProvider": None,
    "cognitoAuthenticationType": None,
    "cognitoIdentityId": None,
    "cognitoIdentityPoolId": None,
    "principalOrgId": None,
    "user": None,
    "userArn": None,
}


def event(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "method": "POST",
        "raw_path": "/my/path",
        "raw_query_string": "",
        "headers": [("Host", "api.example.com"), ("User-Agent", "agent/1.0")],
        "body": b"",
        "route_key": "POST /my/{thing}",
        "path_parameters": {"thing": "path"},
        "source_ip": "192.0.2.1",
        "request_id": "req-1",
        "now_ms": NOW_MS,
        "domain_name": "api.example.com",
        "api_id": "abc123",
        "account_id": "123456789012",
    }
    args.update(overrides)
    built: dict[str, Any] = build_payload_v1_event(**args)
    return built


def test_event_has_the_documented_shape() -> None:
    ev = event(
        raw_query_string="parameter1=value1&parameter1=value2&parameter2=value",
        headers=[
            ("Host", "api.example.com"),
            ("header2", "value1"),
            ("header2", "value2"),
            ("Content-Type", "application/json"),
        ],
        body=b'{"x":1}',
    )
    assert ev == {
        "version": "1.0",
        "resource": "/my/{thing}",
        "path": "/my/path",
        "httpMethod": "POST",
        "headers": {"Host": "api.example.com", "header2": "value2", "Content-Type": "application/json"},
        "multiValueHeaders": {
            "Host": ["api.example.com"],
            "header2": ["value1", "value2"],
            "Content-Type": ["application/json"],
        },
        "queryStringParameters": {"parameter1": "value2", "parameter2": "value"},
        "multiValueQueryStringParameters": {"parameter1": ["value1", "value2"], "parameter2": ["value"]},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "extendedRequestId": "req-1",
            "httpMethod": "POST",
            "identity": {**IDENTITY_NULLS, "sourceIp": "192.0.2.1", "userAgent": None},
            "path": "/my/path",
            "protocol": "HTTP/1.1",
            "requestId": "req-1",
            "requestTime": "04/Mar/2020:19:15:17 +0000",
            "requestTimeEpoch": NOW_MS,
            "resourceId": "POST /my/{thing}",
            "resourcePath": "/my/{thing}",
            "stage": "$default",
        },
        "pathParameters": {"thing": "path"},
        "stageVariables": None,
        "body": '{"x":1}',
        "isBase64Encoded": False,
    }
    json.dumps(ev)  # serialisable as is


def test_absent_maps_are_null_not_omitted() -> None:
    ev = event(headers=[], path_parameters={})
    for key in (
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "body",
    ):
        assert key in ev and ev[key] is None, key
    assert ev["isBase64Encoded"] is False
    assert "authorizer" not in ev["requestContext"]
    assert ev["requestContext"]["identity"]["userAgent"] is None


def test_default_route_is_default_everywhere() -> None:
    ev = event(route_key="$default", raw_path="/question", path_parameters={})
    assert ev["resource"] == "$default"
    assert ev["requestContext"]["resourcePath"] == "$default"
    assert ev["requestContext"]["resourceId"] == "$default"
    assert ev["path"] == "/question"


def test_greedy_route_and_its_parameter() -> None:
    ev = event(route_key="ANY /handler/{proxy+}", raw_path="/handler/a/b", path_parameters={"proxy": "a/b"})
    assert ev["resource"] == "/handler/{proxy+}"
    assert ev["requestContext"]["resourceId"] == "ANY /handler/{proxy+}"
    assert ev["pathParameters"] == {"proxy": "a/b"}


@pytest.mark.parametrize(
    ("route_key", "resource"),
    [("GET /a/{b}", "/a/{b}"), ("$default", "$default"), ("ANY /{proxy+}", "/{proxy+}"), ("GET /", "/")],
)
def test_resource_of(route_key: str, resource: str) -> None:
    assert resource_of(route_key) == resource


def test_header_names_keep_their_first_spelling_and_last_value() -> None:
    ev = event(headers=[("X-Multi", "a"), ("x-multi", "b"), ("X-MULTI", "c"), ("User-Agent", "curl/8")])
    assert ev["headers"] == {"X-Multi": "c", "User-Agent": "curl/8"}
    assert ev["multiValueHeaders"] == {"X-Multi": ["a", "b", "c"], "User-Agent": ["curl/8"]}
    assert ev["requestContext"]["identity"]["userAgent"] == "curl/8"


def test_cookies_stay_in_the_cookie_header() -> None:
    ev = event(headers=[("Cookie", "a=1; b=2"), ("Cookie", "c=3")])
    assert "cookies" not in ev
    assert ev["headers"] == {"Cookie": "c=3"}
    assert ev["multiValueHeaders"] == {"Cookie": ["a=1; b=2", "c=3"]}


def test_query_values_are_decoded_and_duplicates_kept() -> None:
    ev = event(raw_query_string="a=1&a=2&name=caf%C3%A9&sp=a+b&empty=&flag&enc=%26%3D")
    assert ev["queryStringParameters"] == {
        "a": "2",
        "name": "café",
        "sp": "a b",
        "empty": "",
        "flag": "",
        "enc": "&=",
    }
    assert ev["multiValueQueryStringParameters"] == {
        "a": ["1", "2"],
        "name": ["café"],
        "sp": ["a b"],
        "empty": [""],
        "flag": [""],
        "enc": ["&="],
    }


def test_path_stays_encoded_as_requested() -> None:
    ev = event(
        raw_path="/files/my%20file.txt",
        route_key="GET /files/{name}",
        path_parameters={"name": "my file.txt"},
    )
    assert ev["path"] == "/files/my%20file.txt"
    assert ev["requestContext"]["path"] == "/files/my%20file.txt"
    assert ev["pathParameters"] == {"name": "my file.txt"}


@pytest.mark.parametrize(
    ("body", "content_type", "text", "is_base64"),
    [
        ("héllo".encode(), "text/plain; charset=utf-8", "héllo", False),
        (b"plain", None, "plain", False),
        (b"\xff\xfe\x00", None, base64.b64encode(b"\xff\xfe\x00").decode(), True),
        (b"abc", "application/octet-stream", base64.b64encode(b"abc").decode(), True),
        (b"\xc3\x28", "application/json", base64.b64encode(b"\xc3\x28").decode(), True),
    ],
)
def test_body_encoding_follows_the_2_0_rule(
    body: bytes, content_type: str | None, text: str, is_base64: bool
) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    ev = event(body=body, headers=headers)
    assert (ev["body"], ev["isBase64Encoded"]) == (text, is_base64)


def test_stage_variables_and_authorizer_when_given() -> None:
    authorizer = {"claims": {"sub": "u"}, "scopes": ["read"]}
    ev = event(stage="dev", stage_variables={"v": "1"}, authorizer=authorizer, raw_path="/dev/my/path")
    assert ev["stageVariables"] == {"v": "1"}
    assert ev["requestContext"]["stage"] == "dev"
    assert ev["requestContext"]["authorizer"] == authorizer
    assert ev["requestContext"]["path"] == "/dev/my/path"


@given(st.binary(max_size=256))
def test_any_body_round_trips(body: bytes) -> None:
    ev = event(body=body, headers=[("Content-Type", "application/json")])
    if not body:
        assert ev["body"] is None
        return
    decoded = base64.b64decode(ev["body"]) if ev["isBase64Encoded"] else ev["body"].encode()
    assert decoded == body


# --- response mapping -------------------------------------------------------------------------


def mapped(value: Any) -> Any:
    return map_payload_v1_response(json.dumps(value).encode())


def test_structured_response() -> None:
    response = mapped(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-Count": 3, "X-Flag": True, "X-Ratio": 0.5},
            "body": "created",
            "isBase64Encoded": False,
        }
    )
    assert response.status == 201
    assert response.body == b"created"
    assert response.header("content-type") == "text/plain"
    assert response.header("X-Count") == "3"
    assert response.header("X-Flag") == "true"
    assert response.header("X-Ratio") == "0.5"


def test_minimal_response_defaults_to_json_and_empty_body() -> None:
    response = mapped({"statusCode": 204})
    assert (response.status, response.body, response.header("content-type")) == (204, b"", "application/json")
    assert mapped({"statusCode": 200, "body": None, "isBase64Encoded": None}).body == b""


def test_multi_value_headers_are_merged_with_headers() -> None:
    response = mapped(
        {
            "statusCode": 200,
            "headers": {"X-A": "single", "X-B": "kept", "x-c": "same"},
            "multiValueHeaders": {
                "x-a": ["one", "two"],
                "Set-Cookie": ["s=1", "t=2"],
                "X-C": ["same", "other"],
            },
        }
    )
    assert response.header_values("x-a") == ["one", "two", "single"]  # merged: both maps' values
    assert response.header_values("x-c") == ["same", "other"]  # the same pair is sent once
    assert response.header("x-b") == "kept"
    assert response.header_values("set-cookie") == ["s=1", "t=2"]


def test_cookies_key_is_not_part_of_1_0_and_is_ignored() -> None:
    response = mapped({"statusCode": 200, "cookies": ["a=1"], "extra": {"ignored": True}})
    assert response.header_values("set-cookie") == []


def test_base64_body_is_decoded() -> None:
    raw = bytes(range(256))
    response = mapped({"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(raw).decode()})
    assert response.body == raw


def test_unicode_body_is_utf8_encoded() -> None:
    assert mapped({"statusCode": 200, "body": "héllo ✓"}).body == "héllo ✓".encode()


def test_framing_headers_from_the_function_are_dropped() -> None:
    response = mapped(
        {
            "statusCode": 200,
            "headers": {"Content-Length": "999"},
            "multiValueHeaders": {"Transfer-Encoding": ["chunked"]},
            "body": "x",
        }
    )
    assert response.header("content-length") is None
    assert response.header("transfer-encoding") is None


def test_null_header_values_are_skipped() -> None:
    response = mapped({"statusCode": 200, "headers": {"X-None": None}, "multiValueHeaders": {"X-Also": None}})
    assert response.header("x-none") is None and response.header("x-also") is None


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'"hello"', "must be a JSON object"),
        (b"[1]", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b'{"body": "no status"}', "no statusCode"),
        (b'{"statusCode": "200"}', "statusCode"),
        (b'{"statusCode": 200.0}', "statusCode"),
        (b'{"statusCode": true}', "statusCode"),
        (b'{"statusCode": null}', "statusCode"),
        (b'{"statusCode": 99}', "statusCode"),
        (b'{"statusCode": 600}', "statusCode"),
        (b'{"statusCode": 200, "body": {"a": 1}}', "body must be a string"),
        (b'{"statusCode": 200, "body": 5}', "body must be a string"),
        (b'{"statusCode": 200, "headers": []}', "headers must be an object"),
        (b'{"statusCode": 200, "headers": {"X": [1]}}', "string, number or boolean"),
        (b'{"statusCode": 200, "headers": {"Bad Name": "v"}}', "invalid header name"),
        (b'{"statusCode": 200, "headers": {"X": "a\\r\\nSet-Cookie: evil=1"}}', "control character"),
        (b'{"statusCode": 200, "multiValueHeaders": []}', "multiValueHeaders must be an object"),
        (b'{"statusCode": 200, "multiValueHeaders": {"X": "a"}}', "must be a list"),
        (b'{"statusCode": 200, "multiValueHeaders": {"X": [{"a": 1}]}}', "string, number or boolean"),
        (b'{"statusCode": 200, "multiValueHeaders": {"X": ["a\\nb"]}}', "control character"),
        (b'{"statusCode": 200, "isBase64Encoded": "true", "body": ""}', "isBase64Encoded must be a boolean"),
        (b'{"statusCode": 200, "isBase64Encoded": true, "body": "***"}', "not valid base64"),
    ],
)
def test_malformed_responses_are_rejected(payload: bytes, problem: str) -> None:
    with pytest.raises(MalformedProxyResponse, match=problem):
        map_payload_v1_response(payload)


def test_deeply_nested_result_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedProxyResponse):
        map_payload_v1_response(b"[" * 100_000 + b"]" * 100_000)
