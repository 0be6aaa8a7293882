"""Destination invocation records and Scheduled Events, byte for byte."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fnplat.events.records import (
    AttemptResponse,
    invocation_record,
    schedule_arn,
    scheduled_event,
    scheduled_event_id,
)
from fnplat.events.retry_policy import Condition

ARN = "arn:aws:lambda:us-east-1:000000000000:function:orders:$LATEST"
WHEN = datetime(2019, 11, 14, 18, 16, 5, 568901, tzinfo=UTC)
REQUEST_ID = "e4b46cbf-b738-4880-a18c-df61200e0001"


def record(**overrides: object) -> bytes:
    kwargs: dict[str, object] = {
        "request_id": REQUEST_ID,
        "function_arn": ARN,
        "condition": Condition.RETRIES_EXHAUSTED,
        "approximate_invoke_count": 3,
        "request_payload": b'{"ORDER_IDS":["9e07af03"]}',
        "response": AttemptResponse("$LATEST", b'{"errorMessage":"boom","errorType":"Error"}', "Unhandled"),
        "timestamp": WHEN,
    }
    kwargs.update(overrides)
    result: bytes = invocation_record(**kwargs)  # type: ignore[arg-type]
    return result


def test_failure_record_is_byte_exact() -> None:
    assert record() == (
        b'{"version":"1.0","timestamp":"2019-11-14T18:16:05.568Z",'
        b'"requestContext":{"requestId":"e4b46cbf-b738-4880-a18c-df61200e0001",'
        b'"functionArn":"arn:aws:lambda:us-east-1:000000000000:function:orders:$LATEST",'
        b'"condition":"RetriesExhausted","approximateInvokeCount":3},'
        b'"requestPayload":{"ORDER_IDS":["9e07af03"]},'
        b'"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},'
        b'"responsePayload":{"errorMessage":"boom","errorType":"Error"}}'
    )


def test_success_record_has_no_function_error() -> None:
    body = record(
        condition=Condition.SUCCESS,
        approximate_invoke_count=1,
        response=AttemptResponse("3", b'"ok"'),
    )
    assert body.endswith(
        b'"responseContext":{"statusCode":200,"executedVersion":"3"},"responsePayload":"ok"}'
    )
    assert json.loads(body)["requestContext"]["condition"] == "Success"


def test_aged_out_without_a_response_leaves_the_response_out() -> None:
    body = record(condition=Condition.EVENT_AGE_EXCEEDED, response=None)
    assert body.endswith(b'"requestPayload":{"ORDER_IDS":["9e07af03"]}}')
    assert list(json.loads(body)) == ["version", "timestamp", "requestContext", "requestPayload"]


@pytest.mark.parametrize(
    ("payload", "embedded"),
    [
        (b'{"n":123456789012345678901234567890}', b'{"n":123456789012345678901234567890}'),  # kept exact
        (b'  {"b":1,"a":2}\n', b'{"b":1,"a":2}'),  # key order kept, surrounding space dropped
        (b"", b"{}"),  # an empty async body is the event {}
        (b"[1,2]", b"[1,2]"),
        (b'"text"', b'"text"'),
    ],
)
def test_request_payload_is_embedded_as_sent(payload: bytes, embedded: bytes) -> None:
    body = record(request_payload=payload)
    assert b'"requestPayload":' + embedded + b',"responseContext"' in body
    json.loads(body)


@pytest.mark.parametrize(
    ("payload", "embedded"),
    [
        (b'{"x":1}', b'{"x":1}'),
        (b"plain text", b'"plain text"'),  # not JSON: carried as a JSON string
        (b"\xff\xfe", '"\ufffd\ufffd"'.encode()),  # not UTF-8 either
        (b"", b"null"),
        (b"  ", b"null"),
        (b"NaN", b"NaN"),  # Python's json accepts it, so json_codec does: passed through as is
    ],
)
def test_response_payload(payload: bytes, embedded: bytes) -> None:
    body = record(response=AttemptResponse("$LATEST", payload))
    assert body.endswith(b'"responsePayload":' + embedded + b"}")


def test_timestamps_are_utc_with_milliseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    body = record(timestamp=datetime(2026, 7, 1, 2, 0, 0, 5000, tzinfo=plus_two))
    assert b'"timestamp":"2026-07-01T00:00:00.005Z"' in body
    with pytest.raises(ValueError, match="timezone-aware"):
        record(timestamp=datetime(2026, 1, 1))


def test_strings_are_escaped() -> None:
    body = record(request_id='a"b\\c', function_arn="arn:é")
    parsed = json.loads(body)
    assert parsed["requestContext"]["requestId"] == 'a"b\\c'
    assert parsed["requestContext"]["functionArn"] == "arn:é"


TICK = datetime(2015, 10, 8, 16, 53, 6, tzinfo=UTC)
SCHEDULE = schedule_arn(
    region="us-east-1", account="123456789012", function_name="report", schedule_name="daily"
)


def test_schedule_arn() -> None:
    assert SCHEDULE == "arn:aws:scheduler:us-east-1:123456789012:schedule/report/daily"


def test_scheduled_event_is_byte_exact() -> None:
    event_id = scheduled_event_id(SCHEDULE, TICK)
    assert scheduled_event(account="123456789012", region="us-east-1", tick=TICK, resource_arn=SCHEDULE) == (
        b'{"version":"0","id":"' + event_id.encode() + b'","detail-type":"Scheduled Event",'
        b'"source":"aws.events","account":"123456789012","time":"2015-10-08T16:53:06Z",'
        b'"region":"us-east-1","resources":["arn:aws:scheduler:us-east-1:123456789012:schedule/report/daily"],'
        b'"detail":{}}'
    )


def test_scheduled_event_id_is_the_same_for_the_same_tick_in_any_process() -> None:
    first = scheduled_event_id(SCHEDULE, TICK)
    assert uuid.UUID(first).version == 5
    assert scheduled_event_id(SCHEDULE, TICK.astimezone(timezone(timedelta(hours=-5)))) == first
    assert scheduled_event_id(SCHEDULE, TICK + timedelta(minutes=1)) != first
    assert scheduled_event_id(SCHEDULE.replace("daily", "hourly"), TICK) != first
    # Pinned: a change of namespace or format would make in-flight ticks fire twice after an upgrade.
    assert first == str(
        uuid.uuid5(uuid.UUID("6f1b3c2e-5d0a-4c8e-9a57-2f0c1e7d4b93"), f"{SCHEDULE}@2015-10-08T16:53:06Z")
    )
