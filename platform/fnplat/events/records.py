"""The JSON documents the event machinery sends to functions, byte for byte.

- Lambda's destination invocation record (what an OnSuccess / OnFailure function receives):
  `{"version":"1.0","timestamp":...,"requestContext":{"requestId","functionArn","condition",
  "approximateInvokeCount"},"requestPayload":...,"responseContext":{"statusCode",
  "executedVersion","functionError"},"responsePayload":...}`, keys in AWS's order. The request
  payload is embedded as the caller sent it (no re-encoding, so large integers and key order
  survive). `functionError` appears only after a function error, as in AWS's examples. When no
  attempt produced a response (the event aged out while throttled) `responseContext` and
  `responsePayload` are left out: we do not invent a status code.
- EventBridge's Scheduled Event (what a schedule delivers when it has no input of its own):
  `{"version":"0","id","detail-type":"Scheduled Event","source":"aws.events","account","time",
  "region","resources":[...],"detail":{}}`. Its `id` is derived from the schedule and the tick,
  so every process that fires the same tick makes the same event (and may use it as the
  request id, which makes a second enqueue of that tick a duplicate key, not a second event).

Compact JSON (no spaces), UTF-8, as orjson writes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from fnplat import json_codec
from fnplat.events.retry_policy import Condition

RECORD_VERSION = "1.0"
SCHEDULED_EVENT_VERSION = "0"
# Namespace of the scheduled events' ids (uuid5 of the schedule ARN and the tick): a fixed UUID.
SCHEDULED_EVENT_NAMESPACE = uuid.UUID("6f1b3c2e-5d0a-4c8e-9a57-2f0c1e7d4b93")


@dataclass(frozen=True, slots=True)
class AttemptResponse:
    """What the last attempt that reached the function returned."""

    executed_version: str  # "$LATEST" or the version number
    payload: bytes  # the function's result, or its error document
    function_error: str | None = None  # "Unhandled" after a function error, else None
    status_code: int = 200  # Lambda answers 200 to an invocation whose function failed, too


def invocation_record(
    *,
    request_id: str,
    function_arn: str,
    condition: Condition,
    approximate_invoke_count: int,
    request_payload: bytes,
    response: AttemptResponse | None,
    timestamp: datetime,
) -> bytes:
    """The record sent to a destination. `function_arn` is the qualified ARN that was invoked;
    `request_payload` is the event as accepted (valid JSON; empty means `{}`, as an empty async
    body is delivered to the function)."""
    parts = [
        b'{"version":',
        _dumps(RECORD_VERSION),
        b',"timestamp":',
        _dumps(_iso_millis(timestamp)),
        b',"requestContext":{"requestId":',
        _dumps(request_id),
        b',"functionArn":',
        _dumps(function_arn),
        b',"condition":',
        _dumps(condition.value),
        b',"approximateInvokeCount":',
        _dumps(approximate_invoke_count),
        b'},"requestPayload":',
        request_payload.strip() or b"{}",
    ]
    if response is not None:
        parts += [
            b',"responseContext":{"statusCode":',
            _dumps(response.status_code),
            b',"executedVersion":',
            _dumps(response.executed_version),
        ]
        if response.function_error is not None:
            parts += [b',"functionError":', _dumps(response.function_error)]
        parts += [b'},"responsePayload":', _response_payload(response.payload)]
    parts.append(b"}")
    return b"".join(parts)


def _response_payload(payload: bytes) -> bytes:
    """A JSON result as it is; anything else (a function may return any bytes) as a JSON string;
    nothing as null."""
    stripped = payload.strip()
    if not stripped:
        return b"null"
    try:
        json_codec.check(stripped)
    except ValueError:
        return _dumps(payload.decode("utf-8", errors="replace"))
    return stripped


def schedule_arn(*, region: str, account: str, function_name: str, schedule_name: str) -> str:
    """The `resources` entry of a schedule's events: an EventBridge Scheduler schedule ARN whose
    schedule group is the function (`arn:aws:scheduler:REGION:ACCOUNT:schedule/GROUP/NAME`)."""
    return f"arn:aws:scheduler:{region}:{account}:schedule/{function_name}/{schedule_name}"


def scheduled_event_id(resource_arn: str, tick: datetime) -> str:
    """The same UUID for the same schedule and tick, in any process."""
    return str(uuid.uuid5(SCHEDULED_EVENT_NAMESPACE, f"{resource_arn}@{_iso_seconds(tick)}"))


def scheduled_event(*, account: str, region: str, tick: datetime, resource_arn: str) -> bytes:
    """EventBridge's Scheduled Event for the tick `tick` (the scheduled time, not the send time)
    of the schedule `resource_arn` (see schedule_arn)."""
    return b"".join(
        [
            b'{"version":',
            _dumps(SCHEDULED_EVENT_VERSION),
            b',"id":',
            _dumps(scheduled_event_id(resource_arn, tick)),
            b',"detail-type":"Scheduled Event","source":"aws.events","account":',
            _dumps(account),
            b',"time":',
            _dumps(_iso_seconds(tick)),
            b',"region":',
            _dumps(region),
            b',"resources":[',
            _dumps(resource_arn),
            b'],"detail":{}}',
        ]
    )


def _dumps(value: object) -> bytes:
    return json_codec.dumps(value)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def _iso_millis(value: datetime) -> str:
    """`2019-11-14T18:16:05.568Z`, as the records in AWS's documentation."""
    value = _utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _iso_seconds(value: datetime) -> str:
    """`2015-10-08T16:53:06Z`, as EventBridge's `time`."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
