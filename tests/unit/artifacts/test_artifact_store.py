"""The content-addressed store: stored once, atomic, unpacked once with readable permissions."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fnplat.artifacts import ArtifactStore, CodeAccess
from fnplat.errors import ArtifactError, NotFound


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("function.yaml", "name: x\n")
        archive.writestr("pkg/", b"")
        archive.writestr("pkg/sub/mod.py", "VALUE = 1\n")
        boot = zipfile.ZipInfo("bootstrap")
        boot.create_system = 3
        boot.external_attr = (stat.S_IFREG | 0o700) << 16  # owner-only exec: still executable
        archive.writestr(boot, "#!/bin/sh\n")
        private = zipfile.ZipInfo("secret.txt")
        private.create_system = 3
        private.external_attr = (stat.S_IFREG | 0o600) << 16
        archive.writestr(private, "s")
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts", tmp_path / "code")


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob(".tmp-*")] if directory.exists() else []


def test_put_stores_by_sha256_once(store: ArtifactStore) -> None:
    data = function_zip()
    sha = hashlib.sha256(data).hexdigest()
    first = store.put(data)
    assert first.created and first.sha256 == sha and first.size == len(data)
    assert first.path == store.root / "sha256" / f"{sha}.zip"
    assert first.path.read_bytes() == data
    inode = first.path.stat().st_ino
    os.utime(first.path, (0, 0))
    second = store.put(data)
    assert not second.created and second.path == first.path
    assert first.path.stat().st_ino == inode  # not rewritten
    assert first.path.stat().st_mtime > 0  # but touched: garbage collection's grace starts again
    assert store.exists(sha)
    assert leftovers(store.root) == []


def test_put_refuses_invalid_zip_and_stores_nothing(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError):
        store.put(b"nope")
    assert not (store.root / "sha256").exists() or list((store.root / "sha256").iterdir()) == []


def test_exists_is_false_for_unknown_or_malformed_sha(store: ArtifactStore) -> None:
    assert not store.exists("0" * 64)
    assert not store.exists("../../etc/passwd")
    assert not store.exists("ABC")


def test_read_member(store: ArtifactStore) -> None:
    sha = store.put(function_zip()).sha256
    assert store.read_member(sha, "function.yaml") == b"name: x\n"
    assert store.read_member(sha, "missing.txt") is None
    with pytest.raises(NotFound):
        store.read_member("0" * 64, "function.yaml")


def test_unpack_permissions_readable_by_any_uid(store: ArtifactStore, strict_umask: None) -> None:
    sha = store.put(function_zip()).sha256
    code = store.unpack(sha)
    assert code == store.code_root / sha

    def mode(relative: str) -> int:
        return stat.S_IMODE((code / relative).stat().st_mode)

    assert mode(".") == 0o755
    assert mode("pkg") == 0o755 and mode("pkg/sub") == 0o755
    assert mode("pkg/sub/mod.py") == 0o644
    assert mode("secret.txt") == 0o644  # the task user must read it whatever the zip says
    assert mode("bootstrap") == 0o755
    assert (code / "pkg/sub/mod.py").read_text() == "VALUE = 1\n"
    assert leftovers(store.code_root) == []


def test_unpack_is_cached(store: ArtifactStore) -> None:
    sha = store.put(function_zip()).sha256
    code = store.unpack(sha)
    marker = code / "function.yaml"
    os.chmod(marker, 0o644)
    marker.write_text("changed")
    assert store.unpack(sha) == code
    assert marker.read_text() == "changed"  # not extracted again


def test_concurrent_unpacks_agree(store: ArtifactStore) -> None:
    sha = store.put(function_zip()).sha256
    barrier = threading.Barrier(4)
    results: list[Path] = []
    failures: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(store.unpack(sha))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == [] and results == [store.code_root / sha] * 4
    assert leftovers(store.code_root) == []


def test_unpack_unknown_or_malformed_sha(store: ArtifactStore) -> None:
    with pytest.raises(NotFound):
        store.unpack("f" * 64)
    with pytest.raises(NotFound, match="not a sha256"):
        store.unpack("../../../tmp")


# ---- privacy: stored zips and directories are the platform's own; code is for the task group


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_stored_zips_are_private(store: ArtifactStore) -> None:
    stored = store.put(function_zip())
    assert mode_of(store.root) == 0o700 and mode_of(store.root / "sha256") == 0o700
    assert mode_of(stored.path) == 0o600


def test_unpacked_code_for_the_task_group(tmp_path: Path, strict_umask: None) -> None:
    # Our own group: any process may give its files a group it belongs to.
    gid = os.getegid()
    store = ArtifactStore(tmp_path / "artifacts", tmp_path / "code", CodeAccess.for_group(gid))
    code = store.unpack(store.put(function_zip()).sha256)
    assert mode_of(store.code_root) == 0o700
    expected = {
        ".": 0o750,
        "pkg": 0o750,
        "pkg/sub": 0o750,
        "pkg/sub/mod.py": 0o640,
        "secret.txt": 0o640,
        "function.yaml": 0o640,
        "bootstrap": 0o750,
    }
    for relative, mode in expected.items():
        assert (mode_of(code / relative), (code / relative).stat().st_gid) == (mode, gid), relative


def test_build_contexts_stay_world_readable(tmp_path: Path, strict_umask: None) -> None:
    # COPY keeps a context's modes and gives the files to root: the image's user must read them.
    store = ArtifactStore(tmp_path / "artifacts", tmp_path / "code", CodeAccess.for_group(os.getegid()))
    context = store.unpack_build_context(store.put(function_zip()).sha256)
    assert mode_of(context / "pkg") == 0o755 and mode_of(context / "pkg/sub/mod.py") == 0o644
    assert mode_of(context / "secret.txt") == 0o644 and mode_of(context / "bootstrap") == 0o755
    assert mode_of(store.code_root) == 0o700
