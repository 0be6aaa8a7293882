"""The event invoke config of a function: retries, maximum event age and destinations.

Two ways in, one model (`EventInvokeConfig`):
- AWS's REST shape, `PUT|POST|GET|DELETE /2019-09-25/functions/{name}/event-invoke-config`
  (botocore's lambda 2015-03-31 model): `MaximumRetryAttempts` 0-2, `MaximumEventAgeInSeconds`
  60-21600, `DestinationConfig: {OnSuccess: {Destination}, OnFailure: {Destination}}`. PUT
  replaces the whole config (what it leaves out gets its default), POST (Update) changes only
  what it names. Responses carry `LastModified` as epoch seconds (AWS sends e.g.
  `1573687896.493`) and the qualified `FunctionArn` (`...:function:name:$LATEST` when the
  request named no qualifier). Unknown members are ignored, as AWS does, so newer SDKs work.
- function.yaml: `async: {retries, max_age, on_success, on_failure}`.

Destinations, named the same way in both:
- a Lambda function: its ARN `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`, or (a
  convenience AWS does not have) `NAME` / `NAME:QUALIFIER`. It is invoked asynchronously with
  the invocation record (records.py). Not the function itself: its records would loop back.
- the function's built-in dead-letter queue: `$dlq` (`$` cannot start a function name, as in
  `$LATEST`), shown in responses as `arn:aws:fnplat:REGION:ACCOUNT:dlq:NAME`, which is accepted
  back too. On-failure only. It is also where failed events go when no OnFailure is set, so an
  event that fails is never dropped.
Other AWS destination types (SQS, SNS, EventBridge, S3) are refused with a message saying so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from fnplat.errors import BadRequest, InvalidParameter, SpecError

RETRIES_MIN, RETRIES_MAX, RETRIES_DEFAULT = 0, 2, 2
MAX_AGE_MIN_S, MAX_AGE_MAX_S, MAX_AGE_DEFAULT_S = 60, 21600, 21600
DLQ_TOKEN = "$dlq"

ASYNC_KEYS: tuple[str, ...] = ("retries", "max_age", "on_success", "on_failure")

_NAME = r"[A-Za-z0-9_-]{1,64}"
_QUALIFIER = r"[A-Za-z0-9$_-]{1,128}"
_NAME_RE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<qualifier>{_QUALIFIER}))?$")
_LAMBDA_ARN_RE = re.compile(
    rf"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{{12}}):function:"
    rf"(?P<name>{_NAME})(?::(?P<qualifier>{_QUALIFIER}))?$"
)
_DLQ_ARN_RE = re.compile(
    rf"^arn:aws[a-zA-Z-]*:fnplat:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{{12}}):dlq:(?P<name>{_NAME})$"
)
_ARN_SERVICE_RE = re.compile(r"^arn:[^:]*:(?P<service>[^:]*):")


@dataclass(frozen=True, slots=True)
class FunctionDestination:
    """Another function, invoked asynchronously with the invocation record."""

    function_name: str
    qualifier: str | None = None
    # Set when the destination was given as an ARN: must name this platform (check_home).
    region: str | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterQueue:
    """The built-in dead-letter queue of the function whose event failed."""


DEAD_LETTER_QUEUE = DeadLetterQueue()
Destination = FunctionDestination | DeadLetterQueue


@dataclass(frozen=True, slots=True)
class EventInvokeConfig:
    maximum_retry_attempts: int = RETRIES_DEFAULT
    maximum_event_age_s: int = MAX_AGE_DEFAULT_S
    on_success: FunctionDestination | None = None
    on_failure: Destination | None = None

    @property
    def failure_target(self) -> Destination:
        """Where a failed event goes: OnFailure, else the dead-letter queue, never nowhere."""
        return self.on_failure or DEAD_LETTER_QUEUE


DEFAULT_CONFIG = EventInvokeConfig()


# ---- destinations ---------------------------------------------------------------------------------


def parse_destination(text: str, *, on_failure: bool, function_name: str) -> Destination:
    """A destination string (see the module docstring). Raises ValueError saying what is wrong."""
    if text == DLQ_TOKEN or _DLQ_ARN_RE.match(text):
        dlq = _DLQ_ARN_RE.match(text)
        if dlq and dlq["name"] != function_name:
            raise ValueError(f"{text!r} is the dead-letter queue of {dlq['name']}, not of {function_name}")
        if not on_failure:
            raise ValueError("the dead-letter queue takes failed events only (OnFailure / on_failure)")
        return DEAD_LETTER_QUEUE
    match = _LAMBDA_ARN_RE.match(text) or _NAME_RE.match(text)
    if not match:
        service = _ARN_SERVICE_RE.match(text)
        if service and service["service"] != "lambda":
            raise ValueError(
                f"{text!r}: {service['service']} destinations are not supported;"
                f" use a function or {DLQ_TOKEN}"
            )
        raise ValueError(
            f"{text!r} is not a function name, NAME:QUALIFIER, Lambda function ARN or {DLQ_TOKEN}"
        )
    groups = match.groupdict()
    if groups["name"] == function_name:
        raise ValueError(f"{text!r}: a function cannot be its own destination (its records would loop back)")
    return FunctionDestination(
        groups["name"], groups["qualifier"], groups.get("region"), groups.get("account")
    )


def destination_arn(destination: Destination, *, region: str, account: str, function_name: str) -> str:
    """How a destination is shown in the AWS shape (`function_name`: whose config this is)."""
    if isinstance(destination, DeadLetterQueue):
        return f"arn:aws:fnplat:{region}:{account}:dlq:{function_name}"
    arn = f"arn:aws:lambda:{region}:{account}:function:{destination.function_name}"
    return f"{arn}:{destination.qualifier}" if destination.qualifier else arn


def check_home(config: EventInvokeConfig, *, region: str, account: str) -> None:
    """Destinations given as ARNs must name this platform's region and account."""
    for field, destination in (("onSuccess", config.on_success), ("onFailure", config.on_failure)):
        if not isinstance(destination, FunctionDestination) or destination.region is None:
            continue
        if (destination.region, destination.account) != (region, account):
            raise InvalidParameter(
                f"destinationConfig.{field}.destination names region {destination.region} and account "
                f"{destination.account}; this platform is {region}, {account}"
            )


# ---- function.yaml `async:` -----------------------------------------------------------------------


def parse_async_block(raw: object, function_name: str) -> EventInvokeConfig:
    """function.yaml's `async:` mapping. Raises SpecError naming the key (`async.retries`, ...)."""
    if raw is None:
        return DEFAULT_CONFIG
    if not isinstance(raw, Mapping):
        raise SpecError(f"async must be a mapping of {', '.join(ASYNC_KEYS)}")
    for key in raw:
        if key not in ASYNC_KEYS:
            raise SpecError(f"async: unknown key {key!r} (allowed: {', '.join(ASYNC_KEYS)})")
    retries = _yaml_int(raw, "retries", RETRIES_MIN, RETRIES_MAX, RETRIES_DEFAULT)
    max_age = _yaml_int(raw, "max_age", MAX_AGE_MIN_S, MAX_AGE_MAX_S, MAX_AGE_DEFAULT_S)
    on_success = _yaml_destination(raw, "on_success", function_name)
    assert not isinstance(on_success, DeadLetterQueue)  # parse_destination refuses it there
    on_failure = _yaml_destination(raw, "on_failure", function_name)
    return EventInvokeConfig(retries, max_age, on_success, on_failure)


def _yaml_int(raw: Mapping[Any, Any], key: str, low: int, high: int, default: int) -> int:
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"async.{key} must be an integer between {low} and {high}, got {value!r}")
    return value


def _yaml_destination(raw: Mapping[Any, Any], key: str, function_name: str) -> Destination | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise SpecError(f"async.{key} must be a function name, a Lambda ARN or {DLQ_TOKEN}, got {value!r}")
    try:
        return parse_destination(value, on_failure=key == "on_failure", function_name=function_name)
    except ValueError as exc:
        raise SpecError(f"async.{key}: {exc}") from None


# ---- the AWS REST shape ---------------------------------------------------------------------------


def parse_put_request(body: object, function_name: str) -> EventInvokeConfig:
    """PutFunctionEventInvokeConfig's body: a whole config, defaults for what it leaves out."""
    return _apply_request(DEFAULT_CONFIG, body, function_name)


def parse_update_request(body: object, function_name: str, current: EventInvokeConfig) -> EventInvokeConfig:
    """UpdateFunctionEventInvokeConfig's body: `current` with the members it names changed."""
    return _apply_request(current, body, function_name)


def _apply_request(base: EventInvokeConfig, body: object, function_name: str) -> EventInvokeConfig:
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object")
    config = base
    if body.get("MaximumRetryAttempts") is not None:
        retries = _aws_int(body, "MaximumRetryAttempts", RETRIES_MIN, RETRIES_MAX)
        config = replace(config, maximum_retry_attempts=retries)
    if body.get("MaximumEventAgeInSeconds") is not None:
        max_age = _aws_int(body, "MaximumEventAgeInSeconds", MAX_AGE_MIN_S, MAX_AGE_MAX_S)
        config = replace(config, maximum_event_age_s=max_age)
    destinations = body.get("DestinationConfig")
    if destinations is not None:
        if not isinstance(destinations, Mapping):
            raise _invalid("destinationConfig", destinations, "Member must be an object")
        if "OnSuccess" in destinations:
            on_success = _aws_destination(destinations, "OnSuccess", function_name)
            assert not isinstance(on_success, DeadLetterQueue)  # parse_destination refuses it there
            config = replace(config, on_success=on_success)
        if "OnFailure" in destinations:
            config = replace(config, on_failure=_aws_destination(destinations, "OnFailure", function_name))
    return config


def _aws_int(body: Mapping[str, Any], member: str, low: int, high: int) -> int:
    value = body[member]
    field = _camel(member)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, value, "Member must be an integer")
    if value < low:
        raise _invalid(field, value, f"Member must have value greater than or equal to {low}")
    if value > high:
        raise _invalid(field, value, f"Member must have value less than or equal to {high}")
    return value


def _aws_destination(destinations: Mapping[str, Any], member: str, function_name: str) -> Destination | None:
    field = f"destinationConfig.{_camel(member)}.destination"
    entry = destinations[member]
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise _invalid(f"destinationConfig.{_camel(member)}", entry, "Member must be an object")
    value = entry.get("Destination")
    if value is None or value == "":  # AWS: an empty destination clears it
        return None
    if not isinstance(value, str) or len(value) > 350:
        raise _invalid(field, value, "Member must be a string of at most 350 characters")
    try:
        return parse_destination(value, on_failure=member == "OnFailure", function_name=function_name)
    except ValueError as exc:
        raise InvalidParameter(f"{field}: {exc}") from None


def _camel(member: str) -> str:
    return member[0].lower() + member[1:]


def _invalid(field: str, value: object, constraint: str) -> InvalidParameter:
    # AWS's wording, which names the field: tools and people grep for it.
    return InvalidParameter(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint:"
        f" {constraint}"
    )


def to_aws_shape(
    config: EventInvokeConfig,
    *,
    function_name: str,
    function_arn: str,
    last_modified: datetime,
    region: str,
    account: str,
) -> dict[str, Any]:
    """The `FunctionEventInvokeConfig` response body. `function_arn` is qualified (`:$LATEST`
    when the request named no qualifier); `last_modified` is timezone-aware."""

    def destination(target: Destination | None) -> dict[str, str]:
        if target is None:
            return {}
        return {
            "Destination": destination_arn(
                target, region=region, account=account, function_name=function_name
            )
        }

    return {
        "LastModified": round(last_modified.timestamp(), 3),
        "FunctionArn": function_arn,
        "MaximumRetryAttempts": config.maximum_retry_attempts,
        "MaximumEventAgeInSeconds": config.maximum_event_age_s,
        "DestinationConfig": {
            "OnSuccess": destination(config.on_success),
            "OnFailure": destination(config.on_failure),
        },
    }
