"""The hot path's JSON: orjson's speed, the stdlib's acceptance."""

from __future__ import annotations

import json

import pytest

from fnplat import json_codec


def test_dumps_is_compact_utf8() -> None:
    assert json_codec.dumps({"a": [1, "é", None], "b": True}) == '{"a":[1,"é",null],"b":true}'.encode()


def test_dumps_handles_what_orjson_refuses() -> None:
    big = {"n": 2**70}
    assert json.loads(json_codec.dumps(big)) == big


@pytest.mark.parametrize(
    "document", [b'{"n": 1180591620717411303424}', b"[NaN, Infinity]", b'"\\ud800"', b'  {"a": 1}  ']
)
def test_check_accepts_what_the_stdlib_accepts(document: bytes) -> None:
    json.loads(document)
    json_codec.check(document)


@pytest.mark.parametrize("document", [b"{oops", b"", b"\xff\xfe", b"[1,]"])
def test_check_refuses_what_is_not_json_with_a_value_error(document: bytes) -> None:
    with pytest.raises(ValueError):
        json_codec.check(document)
