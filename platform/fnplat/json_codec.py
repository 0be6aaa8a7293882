"""JSON on the invocation path: orjson where it is faithful, the stdlib where it is not.

Every routed request serialises its 2.0 event, and every invoke API request parses its payload
(up to 6 MB) only to check that it is JSON; orjson does both several times faster. Its parser is
not used for values: it turns integers over 64 bits into floats. And it refuses some documents
Python's json accepts (NaN, lone surrogates): `check` asks the stdlib before refusing, so what is
accepted does not change.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (no spaces, non-ASCII characters as they are)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # e.g. an integer over 64 bits, which orjson refuses to write
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # Lone surrogates: bytes that were not UTF-8 (say in a request header) decoded with
        # surrogateescape. Escaped as \udcxx, as the stdlib writes them by default.
        return json.dumps(value, separators=(",", ":")).encode()


def check(data: bytes) -> None:
    """Raise ValueError (as json.loads does) unless `data` is a JSON document."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        json.loads(data)
