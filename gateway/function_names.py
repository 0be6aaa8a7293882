"""Parsing the FunctionName forms of the Lambda Invoke API (pure)."""

from __future__ import annotations

import re

from fnplat.domain import FUNCTION_NAME_RE, LATEST
from fnplat.errors import InvalidParameter

_QUALIFIER_RE = re.compile(r"^(\$LATEST|[A-Za-z0-9_-]{1,128})$")
_ARN_RE = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*):lambda:[a-z0-9-]+:)?(?:\d{12}:)?function:([A-Za-z0-9_-]+)(?::([^:]+))?$"
)


def parse_function_name(text: str, qualifier: str | None = None) -> tuple[str, str]:
    """Return (name, qualifier) for `name`, `name:qualifier`, a full ARN or a partial ARN.

    A qualifier given both in the name and as `?Qualifier=` must agree, as in Lambda.
    """
    name, embedded = _split(text)
    if embedded and qualifier and embedded != qualifier:
        raise InvalidParameter(
            "The derived qualifier from the function name does not match the specified qualifier: "
            f"{embedded} != {qualifier}"
        )
    chosen = embedded or qualifier or LATEST
    if not _QUALIFIER_RE.match(chosen):
        raise InvalidParameter(f"invalid qualifier {chosen!r}")
    return name, chosen


def _split(text: str) -> tuple[str, str | None]:
    if "function:" in text:
        match = _ARN_RE.match(text)
        if not match:
            raise InvalidParameter(f"invalid function ARN {text!r}")
        return match.group(1), match.group(2)
    name, _, qualifier = text.partition(":")
    if not FUNCTION_NAME_RE.match(name):
        raise InvalidParameter(
            f"invalid function name {name!r}: use 1-64 letters, digits, hyphens or underscores"
        )
    return name, qualifier or None
