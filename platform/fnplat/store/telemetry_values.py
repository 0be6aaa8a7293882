"""Text values of records and log lines made storable at the store's boundary (pure).

What the store would refuse is cleaned where it can be, so a row is kept rather than rejected:
- NUL (U+0000), which Postgres text refuses, becomes U+FFFD (the replacement character);
- lone surrogates (text decoded with `surrogateescape`, or split UTF-16), which no driver can
  encode as UTF-8, become U+FFFD too; a well-formed pair written as two code points is joined;
- text over its column's limit is cut, and the cut is marked: the kept text ends with
  TRUNCATION_MARKER, so the result is exactly the limit long.
Identity columns (request id, function name) are never rewritten: a row with a bad one is
isolated and rejected by the recorder instead (fnplat/bad_rows.py).
"""

from __future__ import annotations

# The output framing cuts lines first (FNPLAT_LOG_MAX_LINE_BYTES, Lambda's 256 KB by default) and
# marks the cut; this is only a backstop for text that reaches the store another way, set well above
# the framing's cut so the framing's marker is what a reader sees.
MESSAGE_MAX_CHARS = 1024 * 1024
ERROR_TYPE_MAX_CHARS = 256  # the column is String(256)
TRUNCATION_MARKER = "…[truncated]"
REPLACEMENT = "\ufffd"


def clean_text(value: str, limit: int) -> str:
    """`value` without NUL bytes or lone surrogates, at most `limit` characters long."""
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # UTF-16 with surrogatepass turns lone surrogates into bytes the decoder replaces.
            value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if len(value) > limit:
        value = value[: max(0, limit - len(TRUNCATION_MARKER))] + TRUNCATION_MARKER[:limit]
    return value


def clean_message(message: str) -> str:
    return clean_text(message, MESSAGE_MAX_CHARS)


def clean_error_type(error_type: str | None) -> str | None:
    return None if error_type is None else clean_text(error_type, ERROR_TYPE_MAX_CHARS)
