from __future__ import annotations

import pytest

from fnplat.errors import InvalidParameter
from fnplat.gateway.function_names import parse_function_name


@pytest.mark.parametrize(
    ("text", "qualifier", "expected"),
    [
        ("hello", None, ("hello", "$LATEST")),
        ("hello:$LATEST", None, ("hello", "$LATEST")),
        ("hello:prod", None, ("hello", "prod")),
        ("hello", "7", ("hello", "7")),
        ("arn:aws:lambda:us-east-1:123456789012:function:hello", None, ("hello", "$LATEST")),
        ("arn:aws:lambda:us-east-1:123456789012:function:hello:3", None, ("hello", "3")),
        ("123456789012:function:hello", None, ("hello", "$LATEST")),
        ("123456789012:function:hello:live", "live", ("hello", "live")),
    ],
)
def test_function_name_forms(text: str, qualifier: str | None, expected: tuple[str, str]) -> None:
    assert parse_function_name(text, qualifier) == expected


@pytest.mark.parametrize(
    ("text", "qualifier", "message"),
    [
        ("bad name", None, "invalid function name"),
        ("x" * 65, None, "invalid function name"),
        ("hello:prod", "dev", "does not match"),
        ("arn:aws:lambda:us-east-1:123:function:", None, "invalid function ARN"),
        ("hello:bad/qualifier", None, "invalid qualifier"),
    ],
)
def test_bad_function_names_are_rejected_clearly(text: str, qualifier: str | None, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        parse_function_name(text, qualifier)
