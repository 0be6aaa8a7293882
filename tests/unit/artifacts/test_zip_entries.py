"""Entry checks of uploaded zips: the entry count read from the raw central directory, names
that cannot coexist in one tree, and the bound applied before zipfile builds its entry list."""

from __future__ import annotations

import io
import re
import warnings
import zipfile

import pytest

from fnplat.artifacts import inspect_zip
from fnplat.domain import ARTIFACT_MAX_ENTRIES
from fnplat.errors import ArtifactError
from fnplat.zip_entries import check_names_coexist, count_entries


def zip_of(names: list[str], comment: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names, on purpose
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in names:
                archive.writestr(name, b"" if name.endswith("/") else name.encode())
            archive.comment = comment
    return buffer.getvalue()


@pytest.mark.parametrize("count", [0, 1, 7, 300])
def test_count_matches_zipfile(count: int) -> None:
    data = zip_of([f"d{i % 3}/f{i}.txt" for i in range(count)])
    assert count_entries(data, 10_000) == count == len(zipfile.ZipFile(io.BytesIO(data)).infolist())


def test_count_with_a_comment_and_prepended_bytes() -> None:
    data = b"#!/bin/sh\nexec something\n" + zip_of(["a", "b/", "b/c"], comment=b"built by hand")
    assert len(zipfile.ZipFile(io.BytesIO(data)).infolist()) == 3
    assert count_entries(data, 100) == 3


def test_count_reads_zip64_end_records(monkeypatch: pytest.MonkeyPatch) -> None:
    # zipfile writes the zip64 end records past ZIP_FILECOUNT_LIMIT entries: lower it to get them.
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    data = zip_of([f"f{i}" for i in range(5)])
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    assert count_entries(data, 100) == 5


def test_count_stops_just_past_the_bound() -> None:
    assert count_entries(zip_of([f"f{i}" for i in range(50)]), 10) == 11


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x05\x06"])
def test_count_of_a_non_zip_is_zero(data: bytes) -> None:
    assert count_entries(data, 10) == 0


@pytest.mark.parametrize(
    "names",
    [
        ["a", "b", "c/d", "c/e/f"],
        ["c/", "c/d", "c/e/", "c/e/f"],  # explicit directory entries, before or without files
        ["c/d", "c/"],  # a directory entry after a file inside it
        ["pkg/__init__.py", "pkg.py"],  # similar names are different names
    ],
)
def test_names_that_coexist(names: list[str]) -> None:
    check_names_coexist(names)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["a", "a/b"], "a: is a file in the zip and also the directory of other entries"),
        (["a/b/c", "a/b"], "a/b: is a file in the zip and also the directory"),
        (["a/", "a"], "a: duplicate entry in the zip ('a/' is already in it"),
        (["a", "a/"], "a/: duplicate entry in the zip ('a' is already in it"),
        (["x/a.py", "x/a.py"], "x/a.py: duplicate entry"),
        (["x/", "x/"], "x/: duplicate entry"),
    ],
)
def test_names_that_cannot_coexist(names: list[str], message: str) -> None:
    with pytest.raises(ArtifactError, match=re.escape(message)):
        check_names_coexist(names)


def test_inspect_refuses_a_file_where_a_directory_must_be() -> None:
    with pytest.raises(ArtifactError, match=re.escape("lib: is a file in the zip")):
        inspect_zip(zip_of(["function.yaml", "lib", "lib/mod.py"]))


def test_inspect_refuses_a_file_and_a_directory_of_one_name() -> None:
    with pytest.raises(ArtifactError, match="duplicate entry"):
        inspect_zip(zip_of(["function.yaml", "lib/", "lib"]))


def test_entry_limit_counts_directories() -> None:
    names = ["function.yaml", *(f"d{i}/" for i in range(9))]
    inspect_zip(zip_of(names), entries_limit=10)
    with pytest.raises(ArtifactError, match="more than 9 entries"):
        inspect_zip(zip_of(names), entries_limit=9)


def test_too_many_entries_are_refused_before_zipfile_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    data = zip_of([f"f{i}" for i in range(ARTIFACT_MAX_ENTRIES + 1)])

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile parsed the central directory of an oversized zip")

    monkeypatch.setattr(zipfile, "ZipFile", never)
    with pytest.raises(ArtifactError, match=f"more than {ARTIFACT_MAX_ENTRIES} entries"):
        inspect_zip(data)


def test_the_limit_itself_is_allowed() -> None:
    assert len(inspect_zip(zip_of([f"f{i}" for i in range(ARTIFACT_MAX_ENTRIES)])).names) == (
        ARTIFACT_MAX_ENTRIES
    )
