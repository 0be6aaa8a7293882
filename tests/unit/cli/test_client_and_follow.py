"""The HTTP client's configuration, error mapping and streamed upload; `logs --follow` logic."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fake_fnplat import FakeFnplat, json_reply

from fnplat import errors
from fnplat.cli.logs import LogCursor, follow, fresh_events
from fnplat.client import DEFAULT_ENDPOINT, Client, error_from_response

# ------------------------------------------------------------------------ from_env


def test_from_env_prefers_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "endpoint").write_text("http://127.0.0.1:9000\n")
    (tmp_path / "admin-key").write_text("fnp_file_key\n")
    monkeypatch.setenv("FNCTL_ENDPOINT", "http://127.0.0.1:7000/")
    monkeypatch.setenv("FNCTL_API_KEY", "fnp_env_key")
    client = Client.from_env(tmp_path)
    assert (client.endpoint, client.api_key) == ("http://127.0.0.1:7000", "fnp_env_key")


def test_from_env_reads_the_data_dir_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FNCTL_ENDPOINT", raising=False)
    monkeypatch.delenv("FNCTL_API_KEY", raising=False)
    (tmp_path / "endpoint").write_text("http://127.0.0.1:9000\n")
    (tmp_path / "admin-key").write_text("fnp_file_key\n")
    client = Client.from_env(tmp_path)
    assert (client.endpoint, client.api_key) == ("http://127.0.0.1:9000", "fnp_file_key")


def test_from_env_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FNCTL_ENDPOINT", raising=False)
    monkeypatch.delenv("FNCTL_API_KEY", raising=False)
    monkeypatch.setenv("FNPLAT_DATA_DIR", str(tmp_path / "empty"))
    client = Client.from_env()
    assert (client.endpoint, client.api_key) == (DEFAULT_ENDPOINT, None)


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, b'{"message": "m", "errorType": "InvalidParameterValueException"}', errors.InvalidParameter),
        (400, b'{"message": "m", "errorType": "InvalidRequestContentException"}', errors.BadRequest),
        (400, b'{"message": "m", "errorType": "ImageBuildException"}', errors.ImageBuildError),
        (400, b'{"message": "m"}', errors.BadRequest),
        (401, b'{"message": "m"}', errors.Unauthorized),
        (403, b'{"message": "m"}', errors.Forbidden),
        (404, b'{"message": "m"}', errors.NotFound),
        (409, b'{"message": "m"}', errors.Conflict),
        (413, b"m", errors.RequestTooLarge),
        (415, b'{"message": "m"}', errors.UnsupportedMediaType),
        (429, b'{"message": "m", "Reason": "CallerRateLimitExceeded"}', errors.TooManyRequests),
        (500, b'{"message": "m", "errorType": "ServiceException"}', errors.ServiceError),
        (502, b'{"message": "m"}', errors.EngineError),
        (503, b"m", errors.ServiceError),
    ],
)
def test_error_mapping(status: int, body: bytes, expected: type[errors.FnplatError]) -> None:
    error = error_from_response(status, {}, body)
    assert type(error) is expected and error.message == "m"


def test_error_type_header_is_used_without_a_body_type() -> None:
    error = error_from_response(
        400, {"x-amzn-ErrorType": "ResourceConflictException:http://x"}, b'{"message": "m"}'
    )
    assert isinstance(error, errors.Conflict)


def test_throttle_keeps_its_reason() -> None:
    error = error_from_response(
        429, {}, b'{"message": "Rate Exceeded.", "Reason": "CallerRateLimitExceeded"}'
    )
    assert isinstance(error, errors.TooManyRequests) and error.reason == "CallerRateLimitExceeded"


def test_empty_error_body_names_the_status() -> None:
    assert error_from_response(500, {}, b"").message == "HTTP 500"


# ------------------------------------------------------------------------ upload


def test_deploy_streams_with_progress(fake: FakeFnplat) -> None:
    fake.on("POST", "/v1/functions", json_reply(201, {"name": "x", "version": 1}))
    data = bytes(range(256)) * 1024  # 256 KB: several chunks
    seen: list[tuple[int, int]] = []
    result = Client(fake.url, "fnp_k").deploy(data, progress=lambda sent, total: seen.append((sent, total)))
    assert result == {"name": "x", "version": 1}
    assert fake.only("POST", "/v1/functions").body == data
    assert len(seen) > 1 and seen[-1] == (len(data), len(data))
    assert [sent for sent, _ in seen] == sorted(sent for sent, _ in seen)


def test_no_key_sends_no_auth_header(fake: FakeFnplat) -> None:
    fake.on("GET", "/healthz", json_reply(200, {"status": "ok"}))
    assert Client(fake.url, None).health() == {"status": "ok"}
    assert "x-api-key" not in fake.only("GET", "/healthz").headers


def test_non_json_success_is_a_service_error(fake: FakeFnplat) -> None:
    from fake_fnplat import Reply

    fake.on("GET", "/v1/functions", Reply(200, b"<html>"))
    with pytest.raises(errors.ServiceError, match="non-JSON"):
        Client(fake.url, "k").list_functions()


def test_names_are_url_encoded(fake: FakeFnplat) -> None:
    fake.on("GET", "/v1/functions/a b", json_reply(200, {"name": "a b"}))
    assert Client(fake.url, "k").get_function("a b") == {"name": "a b"}


# ------------------------------------------------------------------------ logs --follow


def ev(ts: str, message: str, request_id: str | None = "r") -> dict[str, Any]:
    return {"timestamp": ts, "request_id": request_id, "message": message}


def test_fresh_events_prints_each_event_once() -> None:
    cursor = LogCursor()
    first = [ev("2025-01-01T00:00:01Z", "a"), ev("2025-01-01T00:00:02Z", "b")]
    assert fresh_events(first, cursor) == first
    assert fresh_events(first, cursor) == []
    # Same timestamp as the newest seen, but a different line: still new.
    later = [*first, ev("2025-01-01T00:00:02Z", "c"), ev("2025-01-01T00:00:03Z", "d")]
    assert [e["message"] for e in fresh_events(later, cursor)] == ["c", "d"]
    # The window slid (limit): older lines reappearing are not printed again.
    assert fresh_events([ev("2025-01-01T00:00:02Z", "b"), ev("2025-01-01T00:00:03Z", "d")], cursor) == []


def test_follow_polls_until_stopped() -> None:
    batches: list[Sequence[dict[str, Any]]] = [
        [ev("2025-01-01T00:00:01Z", "a")],
        [ev("2025-01-01T00:00:01Z", "a"), ev("2025-01-01T00:00:02Z", "b")],
        [ev("2025-01-01T00:00:02Z", "b")],
    ]
    stop = threading.Event()
    printed: list[str] = []

    def fetch() -> Sequence[dict[str, Any]]:
        batch = batches.pop(0)
        if not batches:
            stop.set()  # the third poll is the last
        return batch

    follow(fetch, lambda event: printed.append(event["message"]), stop, interval_s=0.0)
    assert printed == ["a", "b"]
    assert batches == []
