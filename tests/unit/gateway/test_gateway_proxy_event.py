"""Payload format 2.0: the event we build and the response mapping, per lambda-compat §3."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnplat.gateway.proxy_event import (
    MalformedProxyResponse,
    build_http_api_v2_event,
    format_request_time,
    is_text_content_type,
    map_http_api_v2_response,
)

NOW_MS = 1584039838123  # 2020-03-12T19:03:58.123Z


def event(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "method": "POST",
        "raw_path": "/my/path",
        "raw_query_string": "",
        "headers": [("Host", "api.example.com"), ("User-Agent", "agent/1.0")],
        "body": b"",
        "route_key": "POST /my/{thing}",
        "path_parameters": {"thing": "path"},
        "source_ip": "127.0.0.1",
        "request_id": "req-1",
        "now_ms": NOW_MS,
        "domain_name": "api.example.com",
        "api_id": "abc123",
        "account_id": "123456789012",
    }
    args.update(overrides)
    built: dict[str, Any] = build_http_api_v2_event(**args)
    return built


def test_event_has_the_documented_shape() -> None:
    ev = event(raw_query_string="a=1&b=2", body=b'{"x":1}', headers=[("Content-Type", "application/json")])
    assert ev["version"] == "2.0"
    assert ev["routeKey"] == "POST /my/{thing}"
    assert ev["rawPath"] == "/my/path"
    assert ev["rawQueryString"] == "a=1&b=2"
    assert ev["queryStringParameters"] == {"a": "1", "b": "2"}
    assert ev["pathParameters"] == {"thing": "path"}
    assert ev["body"] == '{"x":1}'
    assert ev["isBase64Encoded"] is False
    assert ev["requestContext"] == {
        "accountId": "123456789012",
        "apiId": "abc123",
        "domainName": "api.example.com",
        "domainPrefix": "api",
        "http": {
            "method": "POST",
            "path": "/my/path",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "",
        },
        "requestId": "req-1",
        "routeKey": "POST /my/{thing}",
        "stage": "$default",
        "time": "12/Mar/2020:19:03:58 +0000",
        "timeEpoch": NOW_MS,
    }
    json.dumps(ev)  # the event must be serialisable as is


def test_optional_keys_are_omitted_when_empty() -> None:
    ev = event(headers=[], path_parameters={})
    for key in ("cookies", "queryStringParameters", "pathParameters", "stageVariables", "body"):
        assert key not in ev
    assert ev["headers"] == {}
    assert ev["isBase64Encoded"] is False
    assert ev["rawQueryString"] == ""


def test_header_names_are_lowercased_and_duplicates_joined_with_commas() -> None:
    ev = event(headers=[("X-Multi", "a"), ("x-multi", "b"), ("X-MULTI", "c"), ("User-Agent", "curl/8")])
    assert ev["headers"] == {"x-multi": "a,b,c", "user-agent": "curl/8"}
    assert ev["requestContext"]["http"]["userAgent"] == "curl/8"


def test_cookies_are_split_out_of_every_cookie_header() -> None:
    ev = event(headers=[("Cookie", "a=1; b=2"), ("X-Other", "y"), ("cookie", "c=3;;  d=4 ")])
    assert ev["cookies"] == ["a=1", "b=2", "c=3", "d=4"]
    assert "cookie" not in ev["headers"]
    assert ev["headers"] == {"x-other": "y"}


def test_query_string_duplicates_are_joined_and_values_decoded() -> None:
    ev = event(raw_query_string="a=1&a=2&name=caf%C3%A9&sp=a+b&empty=&flag")
    assert ev["rawQueryString"] == "a=1&a=2&name=caf%C3%A9&sp=a+b&empty=&flag"
    assert ev["queryStringParameters"] == {"a": "1,2", "name": "café", "sp": "a b", "empty": "", "flag": ""}


def test_utf8_text_body_is_passed_as_text() -> None:
    ev = event(body="héllo".encode(), headers=[("Content-Type", "text/plain; charset=utf-8")])
    assert ev["body"] == "héllo"
    assert ev["isBase64Encoded"] is False


def test_body_without_content_type_is_text_when_it_is_utf8() -> None:
    assert event(body=b"plain")["body"] == "plain"
    ev = event(body=b"\xff\xfe\x00")
    assert ev["isBase64Encoded"] is True
    assert base64.b64decode(ev["body"]) == b"\xff\xfe\x00"


def test_binary_content_type_is_base64_even_when_decodable() -> None:
    ev = event(body=b"abc", headers=[("Content-Type", "application/octet-stream")])
    assert ev["isBase64Encoded"] is True
    assert ev["body"] == base64.b64encode(b"abc").decode()


def test_text_content_type_with_invalid_utf8_is_base64() -> None:
    ev = event(body=b"\xc3\x28", headers=[("Content-Type", "application/json")])
    assert ev["isBase64Encoded"] is True
    assert base64.b64decode(ev["body"]) == b"\xc3\x28"


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        (None, True),
        ("", True),
        ("text/html", True),
        ("TEXT/CSV; charset=utf-8", True),
        ("application/json", True),
        ("application/vnd.api+json", True),
        ("application/soap+xml", True),
        ("application/x-www-form-urlencoded", True),
        ("application/javascript", True),
        ("application/octet-stream", False),
        ("image/png", False),
        ("multipart/form-data; boundary=x", False),
        ("application/zip", False),
        ("application/pdf", False),
    ],
)
def test_text_content_types(content_type: str | None, text: bool) -> None:
    assert is_text_content_type(content_type) is text


def test_stage_variables_and_authorizer_when_given() -> None:
    ev = event(stage="dev", stage_variables={"v": "1"}, authorizer={"lambda": {"keyId": "k"}})
    assert ev["stageVariables"] == {"v": "1"}
    assert ev["requestContext"]["stage"] == "dev"
    assert ev["requestContext"]["authorizer"] == {"lambda": {"keyId": "k"}}


@pytest.mark.parametrize(
    ("domain", "prefix"),
    [
        ("api.example.com", "api"),
        ("localhost:8080", "localhost"),
        ("127.0.0.1:8080", "127"),
        ("[::1]:80", "[::1]"),
    ],
)
def test_domain_prefix_is_the_first_label_of_the_host(domain: str, prefix: str) -> None:
    assert event(domain_name=domain)["requestContext"]["domainPrefix"] == prefix


def test_request_time_format_is_locale_independent_and_utc() -> None:
    assert format_request_time(NOW_MS) == "12/Mar/2020:19:03:58 +0000"
    assert format_request_time(0) == "01/Jan/1970:00:00:00 +0000"
    assert format_request_time(1735689599000) == "31/Dec/2024:23:59:59 +0000"


@given(st.binary(max_size=256))
def test_any_body_round_trips(body: bytes) -> None:
    ev = event(body=body, headers=[("Content-Type", "application/json")])
    if not body:
        assert "body" not in ev
        return
    decoded = base64.b64decode(ev["body"]) if ev["isBase64Encoded"] else ev["body"].encode()
    assert decoded == body


# --- response mapping -------------------------------------------------------------------------


def mapped(value: Any) -> Any:
    return map_http_api_v2_response(json.dumps(value).encode())


def test_structured_response() -> None:
    response = mapped(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-Count": 3, "X-Flag": True, "X-Ratio": 0.5},
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "body": "created",
        }
    )
    assert response.status == 201
    assert response.body == b"created"
    assert response.header("content-type") == "text/plain"
    assert response.header("X-Count") == "3"
    assert response.header("X-Flag") == "true"
    assert response.header("X-Ratio") == "0.5"
    assert response.header_values("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_structured_response_without_content_type_defaults_to_json_and_empty_body() -> None:
    response = mapped({"statusCode": 204})
    assert response.status == 204
    assert response.body == b""
    assert response.header("content-type") == "application/json"


def test_base64_body_is_decoded() -> None:
    raw = bytes(range(256))
    response = mapped({"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(raw).decode()})
    assert response.body == raw


def test_unicode_body_is_utf8_encoded() -> None:
    assert mapped({"statusCode": 200, "body": "héllo ✓"}).body == "héllo ✓".encode()


def test_multi_value_headers_are_accepted_and_win_over_headers() -> None:
    response = mapped(
        {
            "statusCode": 200,
            "headers": {"X-A": "single", "X-B": "kept"},
            "multiValueHeaders": {"x-a": ["one", "two"], "Set-Cookie": ["s=1", "t=2"]},
        }
    )
    assert response.header_values("x-a") == ["one", "two"]
    assert response.header("x-b") == "kept"
    assert response.header_values("set-cookie") == ["s=1", "t=2"]


def test_framing_headers_from_the_function_are_dropped() -> None:
    response = mapped(
        {"statusCode": 200, "headers": {"Content-Length": "999", "Transfer-Encoding": "chunked"}, "body": "x"}
    )
    assert response.header("content-length") is None
    assert response.header("transfer-encoding") is None


def test_null_header_values_are_skipped() -> None:
    response = mapped({"statusCode": 200, "headers": {"X-None": None}, "multiValueHeaders": None})
    assert response.header("x-none") is None


@pytest.mark.parametrize(
    ("value", "body"),
    [
        ({"message": "hi"}, b'{"message": "hi"}'),
        ("Hello", b"Hello"),
        ([1, 2], b"[1, 2]"),
        (42, b"42"),
        (None, b"null"),
        (True, b"true"),
        ({"body": "not used as body", "headers": {}}, b'{"body": "not used as body", "headers": {}}'),
    ],
)
def test_inference_rule_for_json_without_status_code(value: Any, body: bytes) -> None:
    response = mapped(value)
    assert response.status == 200
    assert response.header("content-type") == "application/json"
    assert response.body == body


def test_inferred_body_keeps_the_functions_json_text() -> None:
    payload = b'{"a":1,  "b":[true]}'
    assert map_http_api_v2_response(payload).body == payload


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
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
        (b'{"statusCode": 200, "headers": {"X": {"a": 1}}}', "string, number or boolean"),
        (b'{"statusCode": 200, "headers": {"Bad Name": "v"}}', "invalid header name"),
        (b'{"statusCode": 200, "headers": {"": "v"}}', "invalid header name"),
        (b'{"statusCode": 200, "headers": {"X": "a\\r\\nSet-Cookie: evil=1"}}', "control character"),
        (b'{"statusCode": 200, "multiValueHeaders": []}', "multiValueHeaders must be an object"),
        (b'{"statusCode": 200, "multiValueHeaders": {"X": "a"}}', "must be a list"),
        (b'{"statusCode": 200, "cookies": "a=1"}', "cookies must be a list"),
        (b'{"statusCode": 200, "cookies": [1]}', "cookies must be a list"),
        (b'{"statusCode": 200, "cookies": ["a=1\\nb"]}', "control character"),
        (b'{"statusCode": 200, "isBase64Encoded": "true", "body": ""}', "isBase64Encoded must be a boolean"),
        (b'{"statusCode": 200, "isBase64Encoded": true, "body": "***"}', "not valid base64"),
    ],
)
def test_malformed_responses_are_rejected(payload: bytes, problem: str) -> None:
    with pytest.raises(MalformedProxyResponse, match=problem):
        map_http_api_v2_response(payload)


def test_deeply_nested_result_is_malformed_not_a_crash() -> None:
    payload = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(MalformedProxyResponse):
        map_http_api_v2_response(payload)
