"""Pure pieces of the Python bootstrap, loaded as a module (its file has no .py suffix)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import time
import types
from decimal import Decimal
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[3] / "runtimes" / "python3.11" / "bootstrap"


@pytest.fixture(scope="module")
def boot() -> types.ModuleType:
    loader = importlib.machinery.SourceFileLoader("fnplat_python_bootstrap", str(BOOTSTRAP))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def response(raw: bytes, boot: types.ModuleType) -> tuple[object, bool]:
    result: tuple[object, bool] = boot.read_http_response(io.BufferedReader(io.BytesIO(raw)))
    return result


@pytest.mark.parametrize(
    ("handler", "expected"),
    [("app.handler", ("app", "handler")), ("pkg/mod.fn", ("pkg/mod", "fn")), ("a.b.c", ("a.b", "c"))],
)
def test_split_handler_splits_on_last_dot(
    boot: types.ModuleType, handler: str, expected: tuple[str, str]
) -> None:
    assert boot.split_handler(handler) == expected


def test_split_handler_without_dot_is_malformed(boot: types.ModuleType) -> None:
    with pytest.raises(boot.FaultError) as caught:
        boot.split_handler("nodot")

    assert caught.value.error_type == "Runtime.MalformedHandlerName"
    assert caught.value.message.startswith("Bad handler 'nodot': ")


def test_read_response_with_content_length_keeps_alive(boot: types.ModuleType) -> None:
    raw = b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: 5\r\n\r\nhelloEXTRA"

    parsed, keep_alive = response(raw, boot)

    assert keep_alive is True
    assert parsed.status == 200  # type: ignore[attr-defined]
    assert parsed.body == b"hello"  # type: ignore[attr-defined]
    assert parsed.headers["lambda-runtime-aws-request-id"] == "r1"  # type: ignore[attr-defined]


def test_read_chunked_response(boot: types.ModuleType) -> None:
    raw = b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"

    parsed, keep_alive = response(raw, boot)

    assert parsed.body == b"abcde" and keep_alive  # type: ignore[attr-defined]


def test_connection_close_and_unframed_bodies_end_keep_alive(boot: types.ModuleType) -> None:
    closing, keep_closing = response(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", boot
    )
    unframed, keep_unframed = response(b"HTTP/1.1 200 OK\r\n\r\nto the end", boot)

    assert keep_closing is False and closing.body == b""  # type: ignore[attr-defined]
    assert keep_unframed is False and unframed.body == b"to the end"  # type: ignore[attr-defined]


def test_peer_closing_before_a_status_line_is_a_connection_error(boot: types.ModuleType) -> None:
    with pytest.raises(ConnectionError):
        response(b"", boot)


def test_truncated_body_is_a_connection_error(boot: types.ModuleType) -> None:
    with pytest.raises(ConnectionError):
        response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", boot)


def test_garbage_status_line_is_fatal(boot: types.ModuleType) -> None:
    with pytest.raises(boot.RuntimeApiError):
        response(b"SSH-2.0-OpenSSH\r\n\r\n", boot)


@pytest.mark.parametrize("address", ["no-port", "host:", ":9001", "host:abc"])
def test_runtime_api_address_must_be_host_port(boot: types.ModuleType, address: str) -> None:
    with pytest.raises(boot.RuntimeApiError):
        boot.RuntimeApiClient(address)


def test_marshal_response(boot: types.ModuleType) -> None:
    assert boot.marshal_response(None) == (b"null", "application/json")
    assert boot.marshal_response(b"\x00raw") == (b"\x00raw", "application/unknown")
    assert boot.marshal_response({"é": float("nan")}) == (b'{"\\u00e9": NaN}', "application/json")
    assert boot.marshal_response([Decimal("2"), Decimal("0.25")]) == (b"[2, 0.25]", "application/json")


def test_marshal_failure_is_a_marshal_error(boot: types.ModuleType) -> None:
    with pytest.raises(boot.FaultError) as caught:
        boot.marshal_response({1, 2})

    assert caught.value.error_type == "Runtime.MarshalError"
    assert caught.value.message == "Unable to marshal response: Object of type set is not JSON serializable"


def test_unmarshal_event(boot: types.ModuleType) -> None:
    assert boot.unmarshal_event(b'{"a": 1}', "application/json") == {"a": 1}
    assert boot.unmarshal_event(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}
    assert boot.unmarshal_event(b"\x01bin", "application/octet-stream") == b"\x01bin"
    with pytest.raises(boot.FaultError) as caught:
        boot.unmarshal_event(b"{", "application/json")
    assert caught.value.error_type == "Runtime.UnmarshalError"


def test_error_body_key_order_and_defaults(boot: types.ModuleType) -> None:
    body = boot.make_error("", "", None)

    assert json.dumps(body) == '{"errorMessage": "", "errorType": "", "requestId": "", "stackTrace": []}'


def test_error_log_is_one_record_with_nbsp_indentation(boot: types.ModuleType) -> None:
    error = boot.make_error("bad", "ValueError", ['  File "/var/task/app.py", line 2, in h\n    raise X\n'])

    line = boot.format_error_log(error)

    assert line == (
        "[ERROR] ValueError: bad\rTraceback (most recent call last):\r"
        '\u00a0\u00a0File "/var/task/app.py", line 2, in h\r\u00a0\u00a0\u00a0\u00a0raise X\n'
    )


def test_context_remaining_time_never_negative(boot: types.ModuleType) -> None:
    now_ms = int(time.time() * 1000)
    future = boot.LambdaContext("r", now_ms + 2000, None, None, None, None)
    past = boot.LambdaContext("r", now_ms - 2000, None, None, None, None)

    assert 1000 < future.get_remaining_time_in_millis() <= 2000
    assert past.get_remaining_time_in_millis() == 0
    assert past.identity.cognito_identity_id is None and past.client_context is None


def test_client_context_without_client(boot: types.ModuleType) -> None:
    context = boot.LambdaContext("r", 0, None, {"custom": {"k": "v"}}, None, None)

    assert context.client_context.custom == {"k": "v"}
    assert context.client_context.env is None and context.client_context.client is None
