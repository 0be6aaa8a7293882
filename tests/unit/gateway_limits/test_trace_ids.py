"""Which client trace headers reach a task (`fnplat.ids.forwarded_trace_id`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnplat import ids

ROOT = "Root=1-5759e988-bd862e3fe1be46a994272793"


@pytest.mark.parametrize(
    "header",
    [
        ROOT,
        f"{ROOT};Parent=53995c3f42cd8ad8;Sampled=1",
        f"Self=1-67891234-12456789abcdef012345678;{ROOT};Sampled=0",  # as an ALB adds it
        f"{ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5",
    ],
)
def test_a_well_formed_xray_header_is_forwarded_as_it_is(header: str) -> None:
    assert ids.forwarded_trace_id(header) == header


def test_no_header_stays_none_so_the_runtime_api_makes_one_when_it_delivers() -> None:
    assert ids.forwarded_trace_id(None) is None


@pytest.mark.parametrize(
    "header",
    [
        f"{ROOT};Parent=\x0153995c3f42cd8ad8",  # a control character
        f"{ROOT}\t;Sampled=1",  # a tab is legal in HTTP, not in a trace id
        f"{ROOT};Parent=caf\u00e9",  # not ASCII
        f"{ROOT};Parent=ab\udcff",  # a byte that was not UTF-8 (aiohttp's surrogateescape)
        f"{ROOT};Note={'x' * ids.TRACE_ID_MAX_LENGTH}",  # over the length bound
        "Root=1-xyz;Parent=1",  # not an X-Ray root
        "Parent=53995c3f42cd8ad8;Sampled=1",  # no root at all
        f"{ROOT}; Sampled=1",  # a space
        f"{ROOT};;Sampled=1",  # an empty field
        "",
        "hello",
    ],
)
def test_a_malformed_header_is_replaced_by_a_fresh_trace_id(header: str) -> None:
    replaced = ids.forwarded_trace_id(header)
    assert replaced is not None and replaced != header
    assert ids.forwarded_trace_id(replaced) == replaced  # the fresh one is well formed itself


@given(st.text(max_size=600))
def test_whatever_a_client_sends_what_is_forwarded_is_a_short_printable_ascii_header(header: str) -> None:
    forwarded = ids.forwarded_trace_id(header)
    assert forwarded is not None
    assert len(forwarded) <= ids.TRACE_ID_MAX_LENGTH
    assert forwarded.isascii() and forwarded.isprintable() and " " not in forwarded
    assert forwarded.encode("latin-1")  # encodable as a header value
