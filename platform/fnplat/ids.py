"""Identifiers made on the hot path: request ids and X-Ray trace headers."""

from __future__ import annotations

import os
import re
import time

_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def request_id() -> str:
    """A random (version 4) UUID as Lambda's request ids are: the text of `uuid.uuid4()`, made
    without building a UUID object (a third of the cost, once per invocation)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def trace_id() -> str:
    """An X-Ray trace header (`Root=1-<epoch hex>-<96 bits>;Parent=<64 bits>;Sampled=0`)."""
    h = os.urandom(20).hex()
    return f"Root=1-{int(time.time()):08x}-{h[:24]};Parent={h[24:]};Sampled=0"


# A trace header we pass on to a task (as Lambda-Runtime-Trace-Id): printable ASCII
# `key=value` fields separated by `;`, one of them an X-Ray root, within a length bound. Whatever a
# client sends is otherwise its own: a header a runtime cannot hold (a control character, bytes
# that are not text, an endless value) would break the task's `next`, not the client's call.
TRACE_ID_MAX_LENGTH = 512
_TRACE_FIELDS = re.compile(r"[A-Za-z][A-Za-z0-9_-]*=[!-:<-~]+(?:;[A-Za-z][A-Za-z0-9_-]*=[!-:<-~]+)*")
_TRACE_ROOT = re.compile(r"(?:^|;)Root=1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24}(?:;|$)")


def forwarded_trace_id(header: str | None) -> str | None:
    """The client's X-Amzn-Trace-Id when it is a well-formed X-Ray header, a fresh trace id when
    it is not, None when there is none (the Runtime API makes one as it delivers the event)."""
    if header is None:
        return None
    if (
        len(header) <= TRACE_ID_MAX_LENGTH
        and _TRACE_FIELDS.fullmatch(header)
        and _TRACE_ROOT.search(header)
    ):
        return header
    return trace_id()
