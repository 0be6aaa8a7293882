"""What the store would refuse, cleaned at its boundary."""

from __future__ import annotations

from fnplat.store.telemetry_values import (
    ERROR_TYPE_MAX_CHARS,
    MESSAGE_MAX_CHARS,
    REPLACEMENT,
    TRUNCATION_MARKER,
    clean_error_type,
    clean_message,
    clean_text,
)


def test_clean_text_is_returned_as_it_is() -> None:
    for text in ("", "plain", "héllo wörld ✓ 😀", "tab\tand\nnewline"):
        assert clean_message(text) is text


def test_nul_bytes_become_the_replacement_character() -> None:
    assert clean_message("a\x00b\x00") == f"a{REPLACEMENT}b{REPLACEMENT}"


def test_lone_surrogates_become_the_replacement_character_and_pairs_are_joined() -> None:
    assert clean_message("x\ud800y") == f"x{REPLACEMENT}y"
    assert clean_message("\udcff") == REPLACEMENT  # surrogateescape of byte 0xff
    assert clean_message("\ud83d\ude00") == "😀"
    clean_message("ok \ud800").encode("utf-8")  # encodable now


def test_long_values_are_cut_to_the_limit_with_a_marker() -> None:
    error_type = clean_error_type("E" * 300)
    assert error_type is not None and len(error_type) == ERROR_TYPE_MAX_CHARS
    assert error_type.endswith(TRUNCATION_MARKER)
    message = clean_message("m" * (MESSAGE_MAX_CHARS + 1))
    assert len(message) == MESSAGE_MAX_CHARS and message.endswith(TRUNCATION_MARKER)
    assert clean_message("m" * MESSAGE_MAX_CHARS) == "m" * MESSAGE_MAX_CHARS
    assert clean_text("abcdef", 3) == TRUNCATION_MARKER[:3]
    assert clean_error_type(None) is None


def test_a_line_cut_by_the_output_framing_keeps_its_marker_in_the_store() -> None:
    from fnplat.config import OutputSettings
    from fnplat.controller.docker_log_lines import TRUNCATED

    longest = OutputSettings().max_line_bytes
    marker = (TRUNCATED % longest).decode()
    line = "x" * longest + marker
    assert clean_message(line) == line
