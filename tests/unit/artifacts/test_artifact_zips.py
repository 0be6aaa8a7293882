"""Deterministic zips and the validation every uploaded zip goes through."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from fnplat.artifacts import build_zip, inspect_zip
from fnplat.domain import ARTIFACT_UNZIPPED_LIMIT, ARTIFACT_ZIPPED_LIMIT
from fnplat.errors import ArtifactError, RequestTooLarge


def make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def zip_of(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate names we write on purpose
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def entries_of(data: bytes) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: info for info in archive.infolist()}


# ------------------------------------------------------------------------ build_zip


def test_build_zip_is_deterministic_across_mtimes_and_creation_order(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "a", {"b.py": "b", "a.py": "a", "pkg/c.txt": "c"})
    second = make_tree(tmp_path / "b", {"pkg/c.txt": "c", "a.py": "a", "b.py": "b"})
    os.utime(second / "a.py", (1_000_000, 1_000_000))
    assert build_zip(first) == build_zip(second)
    assert list(entries_of(build_zip(first))) == ["a.py", "b.py", "pkg/c.txt"]


def test_build_zip_content_change_changes_hash(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"app.py": "x = 1"})
    before = build_zip(root)
    (root / "app.py").write_text("x = 2")
    assert hashlib.sha256(before).digest() != hashlib.sha256(build_zip(root)).digest()


def test_build_zip_keeps_exec_bit_and_normalises_modes(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"bootstrap": "#!/bin/sh\n", "data.txt": "x"})
    os.chmod(root / "bootstrap", 0o700)
    os.chmod(root / "data.txt", 0o600)
    infos = entries_of(build_zip(root))
    assert infos["bootstrap"].external_attr >> 16 == stat.S_IFREG | 0o755
    assert infos["data.txt"].external_attr >> 16 == stat.S_IFREG | 0o644
    assert infos["data.txt"].date_time == (1980, 1, 1, 0, 0, 0)


def test_build_zip_default_excludes(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "app.py": "",
            ".git/HEAD": "ref",
            "__pycache__/app.cpython-311.pyc": "",
            "pkg/__pycache__/m.pyc": "",
            "stray.pyc": "",
            ".venv/bin/python": "",
            "node_modules/left-pad/index.js": "",  # kept: a node function may vendor it itself
            ".env.example": "",
        },
    )
    assert sorted(entries_of(build_zip(root))) == [".env.example", "app.py", "node_modules/left-pad/index.js"]


def test_build_zip_custom_excludes(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"index.js": "", "node_modules/x/index.js": ""})
    assert list(entries_of(build_zip(root, excludes=("node_modules",)))) == ["index.js"]


def test_build_zip_merges_vendor_dirs_whole_except_bytecode(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"index.js": ""})
    vendor = make_tree(
        tmp_path / "vendor",
        {"node_modules/x/index.js": "", "yaml/__init__.py": "", "yaml/__pycache__/a.pyc": ""},
    )
    names = list(entries_of(build_zip(source, extra_dirs=[vendor])))
    assert names == ["index.js", "node_modules/x/index.js", "yaml/__init__.py"]


def test_build_zip_refuses_a_path_in_two_trees(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"lib/util.py": "mine"})
    vendor = make_tree(tmp_path / "vendor", {"lib/util.py": "theirs"})
    with pytest.raises(ArtifactError, match=re.escape("lib/util.py: exists both in")):
        build_zip(source, extra_dirs=[vendor])


def test_build_zip_refuses_a_file_that_another_tree_needs_as_a_directory(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"app.py": "", "requests": "a module file"})
    vendor = make_tree(tmp_path / "vendor", {"requests/__init__.py": ""})
    with pytest.raises(ArtifactError, match=re.escape("requests: is a file") + ".*requests/__init__.py"):
        build_zip(source, extra_dirs=[vendor])


def test_build_zip_refuses_symlinks(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "fn", {"app.py": ""})
    (root / "secrets").symlink_to("/etc/passwd")
    with pytest.raises(ArtifactError, match="secrets: symlinks are not allowed"):
        build_zip(root)
    (root / "secrets").unlink()
    (root / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ArtifactError, match="linked-dir: symlinks are not allowed"):
        build_zip(root)


def test_build_zip_refuses_a_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a directory"):
        build_zip(tmp_path / "nope")


def test_built_zip_passes_inspection(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"app.py": "print(1)\n", "pkg/data.bin": bytes(range(256)) * 10})
    data = build_zip(root)
    summary = inspect_zip(data)
    assert summary.sha256 == hashlib.sha256(data).hexdigest()
    assert summary.size == len(data)
    assert summary.unzipped_size == len("print(1)\n") + 2560
    assert summary.names == ("app.py", "pkg/data.bin")


# ------------------------------------------------------------------------ inspect_zip


def test_directory_entries_are_allowed_but_not_listed() -> None:
    summary = inspect_zip(zip_of([("pkg/", b""), ("pkg/m.py", b"x")]))
    assert summary.names == ("pkg/m.py",) and summary.unzipped_size == 1


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x03\x04garbage"])
def test_not_a_zip(data: bytes) -> None:
    with pytest.raises(ArtifactError, match="artifact is not a valid zip"):
        inspect_zip(data)


def test_truncated_zip() -> None:
    data = zip_of([("app.py", b"x" * 1000)])
    with pytest.raises(ArtifactError):
        inspect_zip(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/etc/passwd", "/etc/passwd: absolute paths are not allowed"),
        ("C:/windows/x", "C:/windows/x: absolute paths are not allowed"),
        ("../escape.py", "../escape.py: '..', '.' and empty path components are not allowed"),
        ("pkg/../../escape.py", "pkg/../../escape.py: '..'"),
        ("pkg/./m.py", "pkg/./m.py: '..'"),
        ("pkg//m.py", "pkg//m.py: '..'"),
        ("..\\evil.py", "invalid entry name (backslash or NUL)"),
        ("pkg\\m.py", "invalid entry name (backslash or NUL)"),
    ],
)
def test_unsafe_entry_names(name: str, expected: str) -> None:
    info = zipfile.ZipInfo("placeholder")
    info.filename = name  # bypass zipfile's own normalisation, as a hostile client would
    with pytest.raises(ArtifactError) as caught:
        inspect_zip(zip_of([(info, b"x")]))
    assert expected in caught.value.message


def test_symlink_entry_is_refused() -> None:
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(ArtifactError, match="link: symlinks are not allowed in the zip"):
        inspect_zip(zip_of([("app.py", b""), (info, b"/etc/passwd")]))


def test_duplicate_entry_is_refused() -> None:
    with pytest.raises(ArtifactError, match=re.escape("app.py: duplicate entry")):
        inspect_zip(zip_of([("app.py", b"good"), ("app.py", b"evil")]))


def test_encrypted_entry_is_refused() -> None:
    data = bytearray(zip_of([("app.py", b"x")]))
    central = data.index(b"PK\x01\x02")
    flags = struct.unpack_from("<H", data, central + 8)[0]
    struct.pack_into("<H", data, central + 8, flags | 0x1)
    with pytest.raises(ArtifactError, match=re.escape("app.py: encrypted entries are not supported")):
        inspect_zip(bytes(data))


def test_zipped_limit_is_lambdas_50_mb() -> None:
    assert ARTIFACT_ZIPPED_LIMIT == 50 * 1024 * 1024
    with pytest.raises(RequestTooLarge, match=f"over the {ARTIFACT_ZIPPED_LIMIT}-byte limit"):
        inspect_zip(b"\0" * (ARTIFACT_ZIPPED_LIMIT + 1))


def test_zipped_limit_parameter() -> None:
    data = zip_of([("a", b"x" * 1000)])
    inspect_zip(data, zipped_limit=len(data))
    with pytest.raises(RequestTooLarge, match="zipped"):
        inspect_zip(data, zipped_limit=len(data) - 1)


def _declare_size(data: bytes, size: int) -> bytes:
    """Rewrite the central directory's uncompressed size (what a client can lie about)."""
    patched = bytearray(data)
    central = patched.index(b"PK\x01\x02")
    struct.pack_into("<I", patched, central + 24, size)
    return bytes(patched)


def test_declared_unzipped_size_over_250_mb_is_refused_without_decompressing() -> None:
    assert ARTIFACT_UNZIPPED_LIMIT == 250 * 1024 * 1024
    data = _declare_size(zip_of([("big.bin", b"x")]), ARTIFACT_UNZIPPED_LIMIT + 1)
    with pytest.raises(RequestTooLarge, match=f"unzips to {ARTIFACT_UNZIPPED_LIMIT + 1} bytes"):
        inspect_zip(data)


def test_unzipped_limit_counts_all_members() -> None:
    data = zip_of([("a", b"\0" * 600), ("b", b"\0" * 600)])
    assert inspect_zip(data, unzipped_limit=1200).unzipped_size == 1200
    with pytest.raises(RequestTooLarge, match="over the 1000-byte limit"):
        inspect_zip(data, unzipped_limit=1000)


def test_zip_bomb_lying_about_its_size_is_caught_while_decompressing() -> None:
    # 1 MB of zeros compresses to about 1 KB; the header claims 10 bytes. Decompression stops
    # at the declared size, so the member can never expand past it: its CRC then fails.
    bomb = _declare_size(zip_of([("bomb.bin", b"\0" * 1024 * 1024)]), 10)
    with pytest.raises(ArtifactError, match=re.escape("bomb.bin: corrupt or unsupported entry: Bad CRC-32")):
        inspect_zip(bomb, unzipped_limit=64 * 1024)


def test_corrupt_member_data_is_refused() -> None:
    data = bytearray(zip_of([("app.py", b"print('hello world')" * 50)]))
    data[40] ^= 0xFF  # inside the compressed data of the first member
    with pytest.raises(ArtifactError, match=re.escape("app.py: corrupt or unsupported entry")):
        inspect_zip(bytes(data))
