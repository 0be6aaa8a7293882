"""Code artifacts: deterministic zips, their validation, and the content-addressed store.

A function's code travels as a zip. `build_zip` makes one from a directory (the same bytes for
the same files, so the sha256 dedupes identical deploys), `inspect_zip` refuses anything unsafe
or too big before it is stored, and `ArtifactStore` keeps each distinct zip once
(`root/sha256/<hex>.zip`) and unpacks it once per node (`code_root/<hex>/`, bind-mounted
read-only into tasks as /var/task).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from fnplat.domain import ARTIFACT_UNZIPPED_LIMIT, ARTIFACT_ZIPPED_LIMIT
from fnplat.errors import ArtifactError, NotFound, RequestTooLarge

# Never part of a function's code: VCS data, bytecode caches (stale against fixed timestamps
# and unwritable in a read-only /var/task), local virtualenvs.
DEFAULT_EXCLUDES: tuple[str, ...] = (".git", "__pycache__", "*.pyc", ".venv")
# Vendored dependency trees are zipped whole apart from bytecode caches.
VENDOR_EXCLUDES: tuple[str, ...] = ("__pycache__", "*.pyc")

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the zip epoch: timestamps never change the hash
_MODE_EXEC, _MODE_FILE = 0o755, 0o644
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ZipInfoSummary:
    sha256: str
    size: int  # zipped bytes
    unzipped_size: int  # real bytes counted while decompressing
    names: tuple[str, ...]  # file entries (directories excluded)


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    sha256: str
    size: int
    unzipped_size: int
    path: Path
    created: bool  # False when an identical artifact was already stored


# ---------------------------------------------------------------------------- building


def build_zip(
    source_dir: Path,
    extra_dirs: Iterable[Path] = (),
    excludes: Iterable[str] = DEFAULT_EXCLUDES,
) -> bytes:
    """Zip `source_dir` (minus `excludes`) with each extra dir merged at the zip root.

    Extra dirs hold vendored dependencies (pip --target, node_modules) and are taken whole except
    bytecode caches. Deterministic: sorted entries, fixed timestamps, modes normalised to 0644/0755.
    Symlinks are refused (they could point outside the function). A path present in two
    trees is refused rather than silently overwritten.
    """
    files: dict[str, Path] = {}
    trees = [(Path(source_dir), tuple(excludes))] + [(Path(d), VENDOR_EXCLUDES) for d in extra_dirs]
    for root, tree_excludes in trees:
        if not root.is_dir():
            raise ArtifactError(f"{root}: not a directory")
        for arcname, path in _walk(root, tree_excludes):
            if arcname in files:
                raise ArtifactError(f"{arcname}: exists both in {files[arcname].parent} and {root}")
            files[arcname] = path
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for arcname in sorted(files):
            path = files[arcname]
            mode = _MODE_EXEC if os.stat(path).st_mode & 0o111 else _MODE_FILE
            info = zipfile.ZipInfo(arcname, date_time=_FIXED_DATE)
            info.create_system = 3  # unix: external_attr carries the mode
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as src, archive.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
    return buffer.getvalue()


def _walk(root: Path, excludes: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        kept_dirs = []
        for name in sorted(dirnames):
            if _excluded(name, excludes):
                continue
            if (base / name).is_symlink():
                link = (base / name).relative_to(root)
                raise ArtifactError(f"{link}: symlinks are not allowed in a function")
            kept_dirs.append(name)
        dirnames[:] = kept_dirs  # prune in place: os.walk then skips excluded trees
        for name in filenames:
            path = base / name
            if _excluded(name, excludes):
                continue
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise ArtifactError(f"{relative}: symlinks are not allowed in a function")
            if not path.is_file():
                raise ArtifactError(f"{relative}: only regular files can be packaged")
            yield relative, path


def _excluded(name: str, excludes: tuple[str, ...]) -> bool:
    return any(fnmatch(name, pattern) for pattern in excludes)


# ---------------------------------------------------------------------------- validation


def inspect_zip(
    data: bytes,
    zipped_limit: int = ARTIFACT_ZIPPED_LIMIT,
    unzipped_limit: int = ARTIFACT_UNZIPPED_LIMIT,
) -> ZipInfoSummary:
    """Validate an uploaded zip fully (it is decompressed once) and summarise it.

    Raises RequestTooLarge over the limits (declared sizes and real bytes, so a zip bomb that
    lies in its headers is caught while decompressing) and ArtifactError naming the entry for
    anything unsafe: absolute or `..` paths, backslashes, symlinks, duplicates, encryption.
    """
    if len(data) > zipped_limit:
        raise RequestTooLarge(f"artifact is {len(data)} bytes zipped, over the {zipped_limit}-byte limit")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ArtifactError(f"artifact is not a valid zip: {exc}") from exc
    with archive:
        infos = archive.infolist()
        seen: set[str] = set()
        for info in infos:
            check_entry(info)
            if info.filename in seen:
                raise ArtifactError(f"{info.filename}: duplicate entry in the zip")
            seen.add(info.filename)
        declared = sum(info.file_size for info in infos)
        if declared > unzipped_limit:
            raise RequestTooLarge(
                f"artifact unzips to {declared} bytes, over the {unzipped_limit}-byte limit"
            )
        total = 0
        for info in infos:
            if info.is_dir():
                continue
            total = _count_member(archive, info, total, unzipped_limit)
    names = tuple(info.filename for info in infos if not info.is_dir())
    return ZipInfoSummary(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), unzipped_size=total, names=names
    )


def _count_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, total: int, limit: int) -> int:
    """Decompress one member counting real bytes; zipfile checks its CRC at the end."""
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise RequestTooLarge(f"artifact unzips to more than the {limit}-byte limit")
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, RuntimeError) as exc:
        raise ArtifactError(f"{info.filename}: corrupt or unsupported entry: {exc}") from exc
    return total


def check_entry(info: zipfile.ZipInfo) -> None:
    """Refuse an entry whose name or type could escape the unpack directory."""
    name = info.filename
    if not name or "\\" in name or "\x00" in name:
        raise ArtifactError(f"{name!r}: invalid entry name (backslash or NUL)")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ArtifactError(f"{name}: absolute paths are not allowed in the zip")
    parts = name.rstrip("/").split("/")
    if any(part in ("..", ".", "") for part in parts):
        raise ArtifactError(f"{name}: '..', '.' and empty path components are not allowed in the zip")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArtifactError(f"{name}: symlinks are not allowed in the zip")
    if info.flag_bits & 0x1:
        raise ArtifactError(f"{name}: encrypted entries are not supported")


def is_executable(info: zipfile.ZipInfo) -> bool:
    return bool((info.external_attr >> 16) & 0o111)


# ---------------------------------------------------------------------------- store


class ArtifactStore:
    """Zips stored once by sha256 under `root`, unpacked once under `code_root`.

    Writes are atomic (temp + rename in the same directory), so concurrent puts/unpacks of the
    same artifact are safe: the first rename wins, the others find it in place.
    """

    def __init__(self, root: Path, code_root: Path) -> None:
        self.root = Path(root)
        self.code_root = Path(code_root)

    def zip_path(self, sha256: str) -> Path:
        return self.root / "sha256" / f"{_checked_sha(sha256)}.zip"

    def code_path(self, sha256: str) -> Path:
        return self.code_root / _checked_sha(sha256)

    def exists(self, sha256: str) -> bool:
        return _SHA256_RE.match(sha256) is not None and self.zip_path(sha256).is_file()

    def put(self, data: bytes) -> StoredArtifact:
        summary = inspect_zip(data)
        path = self.zip_path(summary.sha256)
        created = False
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".zip")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(temp, 0o644)
                os.replace(temp, path)
                created = True
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        return StoredArtifact(summary.sha256, summary.size, summary.unzipped_size, path, created)

    def read(self, sha256: str) -> bytes:
        path = self.zip_path(sha256)
        if not path.is_file():
            raise NotFound(f"artifact {sha256} not found")
        return path.read_bytes()

    def read_member(self, sha256: str, name: str) -> bytes | None:
        """One file of a stored artifact, or None when the zip has no such entry."""
        path = self.zip_path(sha256)
        if not path.is_file():
            raise NotFound(f"artifact {sha256} not found")
        with zipfile.ZipFile(path) as archive:
            try:
                return archive.read(name)
            except KeyError:
                return None

    def unpack(self, sha256: str) -> Path:
        """Extract the artifact once to `code_root/<hex>/` and return that directory.

        Files are 0644 (0755 when the zip marks them executable) and directories 0755, so the
        non-root task user can read them through the read-only bind mount.
        """
        target = self.code_path(sha256)
        if target.is_dir():
            return target
        source = self.zip_path(sha256)
        if not source.is_file():
            raise NotFound(f"artifact {sha256} not found")
        self.code_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.code_root, prefix=f".tmp-{sha256[:12]}-"))
        try:
            with zipfile.ZipFile(source) as archive:
                _extract(archive, staging)
            os.chmod(staging, 0o755)
            try:
                os.rename(staging, target)
            except OSError:
                if not target.is_dir():  # not a lost race: a real failure
                    raise
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def discard(self, sha256: str) -> None:
        """Remove an artifact and its unpacked code (a failed deploy's, which nothing references)."""
        self.zip_path(sha256).unlink(missing_ok=True)
        shutil.rmtree(self.code_path(sha256), ignore_errors=True)


def _extract(archive: zipfile.ZipFile, dest: Path) -> None:
    for info in archive.infolist():
        check_entry(info)  # the stored zip was validated on put; cheap insurance for the path join
        relative = info.filename.rstrip("/")
        path = dest.joinpath(*relative.split("/"))
        if info.is_dir():
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            os.chmod(path, 0o755)
            continue
        _make_parents(path.parent, dest)
        with archive.open(info) as src, open(path, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        os.chmod(path, _MODE_EXEC if is_executable(info) else _MODE_FILE)


def _make_parents(directory: Path, dest: Path) -> None:
    missing: list[Path] = []
    while directory != dest and not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir()
        os.chmod(path, 0o755)  # explicit: mkdir's mode is filtered by the process umask


def _checked_sha(sha256: str) -> str:
    if not _SHA256_RE.match(sha256):
        raise NotFound(f"artifact {sha256!r} not found (not a sha256 hex digest)")
    return sha256
