"""Event invoke config: AWS's REST shape (botocore lambda 2015-03-31) and function.yaml's async:."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fnplat.errors import BadRequest, InvalidParameter, SpecError
from fnplat.events.invoke_config import (
    DEAD_LETTER_QUEUE,
    DEFAULT_CONFIG,
    EventInvokeConfig,
    FunctionDestination,
    check_home,
    destination_arn,
    parse_async_block,
    parse_destination,
    parse_put_request,
    parse_update_request,
    to_aws_shape,
)

FN = "orders"
REGION, ACCOUNT = "us-east-1", "000000000000"
OTHER_ARN = "arn:aws:lambda:us-east-1:000000000000:function:sink"


@pytest.mark.parametrize(
    ("text", "on_failure", "expected"),
    [
        ("sink", False, FunctionDestination("sink")),
        ("sink:live", False, FunctionDestination("sink", "live")),
        ("sink:$LATEST", True, FunctionDestination("sink", "$LATEST")),
        ("sink:7", True, FunctionDestination("sink", "7")),
        (OTHER_ARN, False, FunctionDestination("sink", None, REGION, ACCOUNT)),
        (OTHER_ARN + ":prod", True, FunctionDestination("sink", "prod", REGION, ACCOUNT)),
        (
            "arn:aws:lambda:eu-west-3:123456789012:function:x",
            True,
            FunctionDestination("x", None, "eu-west-3", "123456789012"),
        ),
        ("$dlq", True, DEAD_LETTER_QUEUE),
        ("arn:aws:fnplat:us-east-1:000000000000:dlq:orders", True, DEAD_LETTER_QUEUE),
    ],
)
def test_destinations(text: str, on_failure: bool, expected: object) -> None:
    assert parse_destination(text, on_failure=on_failure, function_name=FN) == expected


@pytest.mark.parametrize(
    ("text", "on_failure", "problem"),
    [
        ("$dlq", False, "the dead-letter queue takes failed events only"),
        (
            "arn:aws:fnplat:us-east-1:000000000000:dlq:other",
            True,
            "is the dead-letter queue of other, not of orders",
        ),
        ("orders", True, "a function cannot be its own destination"),
        ("orders:live", False, "a function cannot be its own destination"),
        ("arn:aws:lambda:us-east-1:000000000000:function:orders", True, "its own destination"),
        ("arn:aws:sqs:us-east-1:000000000000:queue", True, "sqs destinations are not supported"),
        ("arn:aws:sns:us-east-1:000000000000:topic", False, "sns destinations are not supported"),
        (
            "arn:aws:events:us-east-1:000000000000:event-bus/default",
            True,
            "events destinations are not supported",
        ),
        ("arn:aws:s3:::bucket", True, "s3 destinations are not supported"),
        ("has space", True, "is not a function name, NAME:QUALIFIER, Lambda function ARN or $dlq"),
        ("a" * 65, True, "is not a function name"),
        ("sink:", True, "is not a function name"),
        ("arn:aws:lambda:us-east-1:000:function:sink", True, "is not a function name"),
    ],
)
def test_bad_destinations(text: str, on_failure: bool, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_destination(text, on_failure=on_failure, function_name=FN)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("destination", "arn"),
    [
        (FunctionDestination("sink"), "arn:aws:lambda:us-east-1:000000000000:function:sink"),
        (FunctionDestination("sink", "live"), "arn:aws:lambda:us-east-1:000000000000:function:sink:live"),
        (DEAD_LETTER_QUEUE, "arn:aws:fnplat:us-east-1:000000000000:dlq:orders"),
    ],
)
def test_destination_arns_round_trip(destination: FunctionDestination, arn: str) -> None:
    assert destination_arn(destination, region=REGION, account=ACCOUNT, function_name=FN) == arn
    parsed = parse_destination(arn, on_failure=True, function_name=FN)
    assert destination_arn(parsed, region=REGION, account=ACCOUNT, function_name=FN) == arn


# ---- function.yaml --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, DEFAULT_CONFIG),
        ({}, DEFAULT_CONFIG),
        ({"retries": 0}, EventInvokeConfig(maximum_retry_attempts=0)),
        ({"retries": 2, "max_age": 60}, EventInvokeConfig(2, 60)),
        ({"max_age": 21600}, EventInvokeConfig(maximum_event_age_s=21600)),
        ({"on_failure": "$dlq"}, EventInvokeConfig(on_failure=DEAD_LETTER_QUEUE)),
        (
            {"on_success": "audit:live", "on_failure": "sink"},
            EventInvokeConfig(
                on_success=FunctionDestination("audit", "live"), on_failure=FunctionDestination("sink")
            ),
        ),
    ],
)
def test_async_block(raw: object, expected: EventInvokeConfig) -> None:
    assert parse_async_block(raw, FN) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("yes", "async must be a mapping of retries, max_age, on_success, on_failure"),
        ({"retry": 1}, "async: unknown key 'retry' (allowed: retries, max_age, on_success, on_failure)"),
        ({"retries": 3}, "async.retries must be an integer between 0 and 2, got 3"),
        ({"retries": -1}, "async.retries must be an integer between 0 and 2"),
        ({"retries": True}, "async.retries must be an integer between 0 and 2, got True"),
        ({"retries": "2"}, "async.retries must be an integer"),
        ({"max_age": 59}, "async.max_age must be an integer between 60 and 21600, got 59"),
        ({"max_age": 21601}, "async.max_age must be an integer between 60 and 21600"),
        ({"max_age": 3600.5}, "async.max_age must be an integer"),
        ({"on_success": "$dlq"}, "async.on_success: the dead-letter queue takes failed events only"),
        ({"on_failure": "orders"}, "async.on_failure: 'orders': a function cannot be its own destination"),
        ({"on_failure": 5}, "async.on_failure must be a function name, a Lambda ARN or $dlq, got 5"),
        ({"on_failure": ""}, "async.on_failure must be a function name"),
    ],
)
def test_async_block_errors_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_async_block(raw, FN)
    assert message in caught.value.message


# ---- AWS REST shape -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, DEFAULT_CONFIG),
        ({"MaximumRetryAttempts": 0}, EventInvokeConfig(maximum_retry_attempts=0)),
        ({"MaximumEventAgeInSeconds": 3600}, EventInvokeConfig(maximum_event_age_s=3600)),
        ({"MaximumRetryAttempts": None}, DEFAULT_CONFIG),
        (
            {
                "DestinationConfig": {
                    "OnSuccess": {"Destination": OTHER_ARN},
                    "OnFailure": {"Destination": "$dlq"},
                }
            },
            EventInvokeConfig(
                on_success=FunctionDestination("sink", None, REGION, ACCOUNT), on_failure=DEAD_LETTER_QUEUE
            ),
        ),
        ({"DestinationConfig": {"OnSuccess": {}, "OnFailure": {"Destination": ""}}}, DEFAULT_CONFIG),
        (
            {"MaximumRetryAttempts": 1, "SomeFutureMember": {"x": 1}},
            EventInvokeConfig(maximum_retry_attempts=1),
        ),
    ],
)
def test_put_request(body: dict[str, Any], expected: EventInvokeConfig) -> None:
    assert parse_put_request(body, FN) == expected


def test_put_replaces_and_update_merges() -> None:
    current = EventInvokeConfig(1, 600, FunctionDestination("audit"), FunctionDestination("sink"))
    body = {"MaximumEventAgeInSeconds": 120}
    assert parse_put_request(body, FN) == EventInvokeConfig(maximum_event_age_s=120)
    assert parse_update_request(body, FN, current) == EventInvokeConfig(
        1, 120, FunctionDestination("audit"), FunctionDestination("sink")
    )
    # Update: a destination member with an empty Destination clears it; one left out stays.
    cleared = parse_update_request({"DestinationConfig": {"OnFailure": {"Destination": ""}}}, FN, current)
    assert cleared == EventInvokeConfig(1, 600, FunctionDestination("audit"), None)


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        ([], BadRequest, "the request body must be a JSON object"),
        (
            {"MaximumRetryAttempts": 3},
            InvalidParameter,
            "1 validation error detected: Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: "
            "Member must have value less than or equal to 2",
        ),
        (
            {"MaximumRetryAttempts": -1},
            InvalidParameter,
            "Value '-1' at 'maximumRetryAttempts' failed to satisfy constraint: "
            "Member must have value greater than or equal to 0",
        ),
        (
            {"MaximumRetryAttempts": "1"},
            InvalidParameter,
            "at 'maximumRetryAttempts' failed to satisfy constraint: Member must be an integer",
        ),
        ({"MaximumRetryAttempts": True}, InvalidParameter, "Member must be an integer"),
        ({"MaximumRetryAttempts": 1.0}, InvalidParameter, "Member must be an integer"),
        ({"MaximumEventAgeInSeconds": 59}, InvalidParameter, "at 'maximumEventAgeInSeconds'"),
        ({"MaximumEventAgeInSeconds": 21601}, InvalidParameter, "less than or equal to 21600"),
        ({"DestinationConfig": "x"}, InvalidParameter, "at 'destinationConfig' failed"),
        (
            {"DestinationConfig": {"OnFailure": "x"}},
            InvalidParameter,
            "at 'destinationConfig.onFailure' failed",
        ),
        (
            {"DestinationConfig": {"OnFailure": {"Destination": 5}}},
            InvalidParameter,
            "at 'destinationConfig.onFailure.destination' failed",
        ),
        (
            {"DestinationConfig": {"OnSuccess": {"Destination": "x" * 351}}},
            InvalidParameter,
            "at most 350 characters",
        ),
        (
            {"DestinationConfig": {"OnSuccess": {"Destination": "$dlq"}}},
            InvalidParameter,
            "destinationConfig.onSuccess.destination: the dead-letter queue takes failed events only",
        ),
        (
            {"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:q"}}},
            InvalidParameter,
            "destinationConfig.onFailure.destination: 'arn:aws:sqs:us-east-1:000000000000:q': sqs",
        ),
    ],
)
def test_put_request_errors_name_the_field(body: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        parse_put_request(body, FN)
    assert message in str(caught.value)
    if isinstance(caught.value, InvalidParameter):
        assert caught.value.error_type == "InvalidParameterValueException" and caught.value.status == 400


def test_destinations_must_name_this_platform() -> None:
    ok = parse_put_request({"DestinationConfig": {"OnSuccess": {"Destination": OTHER_ARN}}}, FN)
    check_home(ok, region=REGION, account=ACCOUNT)
    check_home(EventInvokeConfig(on_failure=FunctionDestination("sink")), region=REGION, account=ACCOUNT)
    foreign = parse_put_request(
        {
            "DestinationConfig": {
                "OnFailure": {"Destination": "arn:aws:lambda:eu-west-1:123456789012:function:x"}
            }
        },
        FN,
    )
    with pytest.raises(
        InvalidParameter, match=r"destinationConfig\.onFailure\.destination names region eu-west-1"
    ):
        check_home(foreign, region=REGION, account=ACCOUNT)


def test_response_shape() -> None:
    config = EventInvokeConfig(0, 3600, FunctionDestination("sink", "live"), DEAD_LETTER_QUEUE)
    shape = to_aws_shape(
        config,
        function_name=FN,
        function_arn="arn:aws:lambda:us-east-1:000000000000:function:orders:$LATEST",
        last_modified=datetime(2019, 11, 14, 0, 31, 36, 493000, tzinfo=UTC),
        region=REGION,
        account=ACCOUNT,
    )
    assert shape == {
        "LastModified": 1573691496.493,
        "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:orders:$LATEST",
        "MaximumRetryAttempts": 0,
        "MaximumEventAgeInSeconds": 3600,
        "DestinationConfig": {
            "OnSuccess": {"Destination": "arn:aws:lambda:us-east-1:000000000000:function:sink:live"},
            "OnFailure": {"Destination": "arn:aws:fnplat:us-east-1:000000000000:dlq:orders"},
        },
    }
    empty = to_aws_shape(
        DEFAULT_CONFIG,
        function_name=FN,
        function_arn="x",
        last_modified=datetime.now(UTC),
        region=REGION,
        account=ACCOUNT,
    )
    assert empty["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    assert (empty["MaximumRetryAttempts"], empty["MaximumEventAgeInSeconds"]) == (2, 21600)


def test_a_response_put_back_is_the_same_config() -> None:
    config = EventInvokeConfig(1, 120, FunctionDestination("audit"), DEAD_LETTER_QUEUE)
    shape = to_aws_shape(
        config,
        function_name=FN,
        function_arn="x",
        last_modified=datetime.now(UTC),
        region=REGION,
        account=ACCOUNT,
    )
    again = parse_put_request(shape, FN)
    assert again == EventInvokeConfig(
        1, 120, FunctionDestination("audit", None, REGION, ACCOUNT), DEAD_LETTER_QUEUE
    )
    assert config.failure_target is DEAD_LETTER_QUEUE
    assert EventInvokeConfig(on_failure=FunctionDestination("sink")).failure_target == FunctionDestination(
        "sink"
    )
    assert DEFAULT_CONFIG.failure_target is DEAD_LETTER_QUEUE
