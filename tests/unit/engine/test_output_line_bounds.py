"""Output lines are cut at a documented length, the rest of an over-long line is never held,
and `\\r` does not end a line (controller/docker_log_lines.py)."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field

from fnplat.controller.docker_log_lines import MAX_LINE_BYTES, TRUNCATED, LogLines
from fnplat.controller.docker_watchers import OpenStreams, OutputFollower

PARTIAL = 16 * 1024  # Docker's partial frames: a long line arrives in pieces of this size


def frame(second: int, message: bytes, nanos: int = 0) -> bytes:
    return b"2024-05-01T10:20:%02d.%09dZ " % (second, nanos) + message


def texts(lines: list[tuple[bytes, float]]) -> list[bytes]:
    return [text for text, _ in lines]


def marker(limit: int) -> bytes:
    return TRUNCATED % limit


def test_a_line_over_the_limit_is_cut_with_a_marker_and_the_next_line_is_whole() -> None:
    lines = LogLines(max_line=10)
    out = lines.feed(frame(1, b"0123456789ABCDEF\n" + b"next\n"))
    assert texts(out) == [b"0123456789" + marker(10), b"next"]
    assert TRUNCATED % 10 == b"... [fnplat: line truncated at 10 bytes]"


def test_a_line_of_exactly_the_limit_is_kept_whole() -> None:
    lines = LogLines(max_line=10)
    assert texts(lines.feed(frame(1, b"0123456789\n"))) == [b"0123456789"]
    assert texts(lines.feed(frame(2, b"0123456789A\n"))) == [b"0123456789" + marker(10)]


def test_the_rest_of_a_long_line_is_dropped_as_it_arrives_across_partial_frames() -> None:
    lines = LogLines(max_line=40_000)
    out: list[tuple[bytes, float]] = []
    for _ in range(5):  # 80 KiB of one line, in Docker's 16 KiB partial frames (one timestamp)
        out += lines.feed(frame(1, b"x" * PARTIAL))
        assert lines._size <= 40_000  # never more than the limit is held
    assert texts(out) == [b"x" * 40_000 + marker(40_000)]  # cut as soon as it passed the limit
    out = lines.feed(frame(1, b"y" * 100 + b"\ntail\n"))
    assert texts(out) == [b"tail"]  # the end of the long line is dropped, the next one is whole
    assert lines.flush() == []


def test_a_cut_line_that_ends_without_a_newline_ends_with_the_next_timestamp() -> None:
    lines = LogLines(max_line=10)
    assert texts(lines.feed(frame(1, b"z" * 30))) == [b"z" * 10 + marker(10)]
    assert lines.feed(frame(1, b"z" * 30)) == []  # same line: dropped
    assert texts(lines.feed(frame(2, b"fresh\n"))) == [b"fresh"]  # a new timestamp, a new line
    assert texts(lines.feed(frame(3, b"zz" * 10))) == [b"z" * 10 + marker(10)]
    assert lines.flush() == []  # the cut line already went out


def test_a_200_mb_line_without_a_newline_is_held_at_the_limit_only() -> None:
    lines = LogLines()
    piece = frame(1, b"x" * PARTIAL)
    tracemalloc.start()
    try:
        out: list[tuple[bytes, float]] = []
        for _ in range(200 * 1024 * 1024 // PARTIAL):
            out += lines.feed(piece)
        out += lines.flush()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert texts(out) == [b"x" * MAX_LINE_BYTES + marker(MAX_LINE_BYTES)]
    assert peak < 3 * MAX_LINE_BYTES  # the kept part, the line built from it, one frame


def test_a_carriage_return_progress_bar_is_one_line_cut_like_any_other() -> None:
    # \r does not end a line: Lambda's Node.js runtime writes a multi-line message as one line
    # with \r for its line breaks, and \r\n endings must not make empty lines.
    lines = LogLines(max_line=1000)
    bar = b"".join(b"\rprogress %3d%%" % (i % 100) for i in range(500))
    out = lines.feed(frame(1, bar)) + lines.feed(frame(1, b"\rdone\n"))
    assert len(out) == 1
    text = out[0][0]
    assert text.startswith(b"\rprogress   0%\rprogress   1%") and text.endswith(marker(1000))
    assert texts(lines.feed(frame(2, b"windows line\r\n"))) == [b"windows line\r"]
    assert texts(lines.feed(frame(3, b"one message\rsecond line of it\n"))) == [
        b"one message\rsecond line of it"
    ]


def test_a_cut_never_splits_a_utf8_character() -> None:
    lines = LogLines(max_line=10)
    out = lines.feed(frame(1, b"abcdefghi" + "é".encode() + b"rest\n"))  # é straddles byte 10
    assert texts(out) == [b"abcdefghi" + marker(10)]
    assert out[0][0].decode("utf-8")  # decodes cleanly: no half character
    out = lines.feed(frame(2, "日本語日本語".encode() + b"\n"))  # 18 bytes of 3-byte characters
    assert out[0][0].decode("utf-8") == "日本語" + marker(10).decode()


def test_lines_keep_the_timestamp_of_the_frame_they_start_in() -> None:
    lines = LogLines()
    lines.feed(frame(1, b"partial"))
    out = lines.feed(frame(1, b" end\nsecond\nthird", nanos=0))
    assert texts(out) == [b"partial end", b"second"]
    out = lines.feed(frame(2, b"fourth\n"))
    assert texts(out) == [b"third", b"fourth"]
    assert [ts for _, ts in out] == [out[0][1], out[0][1] + 1.0]


@dataclass
class Offered:
    max_line_bytes: int
    lines: list[tuple[str, str, bytes, float]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def offer(self, function: str, container_id: str, line: bytes, timestamp: float) -> None:
        self.lines.append((function, container_id, line, timestamp))
        if line == b"last":
            self.done.set()


def test_the_follower_thread_offers_cut_lines_as_the_functions() -> None:
    long_line = [frame(1, b"x" * PARTIAL) for _ in range(64)]  # 1 MiB, no newline
    frames = [frame(0, b"first\n"), *long_line, frame(1, b"y\n"), frame(2, b"last\n")]
    opened: list[tuple[str, bool, int | None]] = []

    def open_logs(container_id: str, follow: bool, since: int | None) -> Iterator[bytes]:
        opened.append((container_id, follow, since))
        return iter(frames if follow else [])

    sink = Offered(max_line_bytes=100_000)
    follower = OutputFollower(
        open_logs=open_logs, container_gone=lambda exc: False, output=sink, streams=OpenStreams()
    )
    follower.start("c" * 64, "fn")
    assert sink.done.wait(10)
    assert [(f, c[:1], line[:12]) for f, c, line, _ in sink.lines] == [
        ("fn", "c", b"first"),
        ("fn", "c", b"x" * 12),
        ("fn", "c", b"last"),
    ]
    assert sink.lines[1][2] == b"x" * 100_000 + marker(100_000)
    assert opened[0] == ("c" * 64, True, None)
