"""Code artifacts: deterministic zips, their validation, and the content-addressed store.

A function's code travels as a zip. `build_zip` makes one from a directory (the same bytes for
the same files, so the sha256 dedupes identical deploys), `inspect_zip` refuses anything unsafe
or too big before it is stored, and `ArtifactStore` keeps each distinct zip once
(`root/sha256/<hex>.zip`) and unpacks it once per node (`code_root/<hex>/`, bind-mounted
read-only into tasks as /var/task).
"""

from __future__ import annotations

import contextlib
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

from fnplat.domain import ARTIFACT_MAX_ENTRIES, ARTIFACT_UNZIPPED_LIMIT, ARTIFACT_ZIPPED_LIMIT
from fnplat.errors import ArtifactError, NotFound, RequestTooLarge
from fnplat.zip_entries import check_entry_count, check_names_coexist, count_entries

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
    _check_no_file_is_a_directory(files)
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


def _check_no_file_is_a_directory(files: dict[str, Path]) -> None:
    """Two merged trees can hold a file `x` and a directory `x/` (a module next to a vendored
    package of that name): one zip cannot."""
    for arcname, path in files.items():
        parent = arcname.rpartition("/")[0]
        while parent:
            if parent in files:
                raise ArtifactError(
                    f"{parent}: is a file ({files[parent]}) and also the directory of {arcname} "
                    f"({path}); rename one of them"
                )
            parent = parent.rpartition("/")[0]


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
    entries_limit: int = ARTIFACT_MAX_ENTRIES,
) -> ZipInfoSummary:
    """Validate an uploaded zip fully (it is decompressed once) and summarise it.

    Raises RequestTooLarge over the size limits (declared sizes and real bytes, so a zip bomb
    that lies in its headers is caught while decompressing) and ArtifactError for too many
    entries and for anything unsafe, naming the entry: absolute or `..` paths, backslashes,
    symlinks, duplicates, a file where a directory must be, encryption.
    """
    with open_zip(data, zipped_limit, entries_limit) as archive:
        return summarise_zip(archive, data, unzipped_limit)


def open_zip(
    data: bytes,
    zipped_limit: int = ARTIFACT_ZIPPED_LIMIT,
    entries_limit: int = ARTIFACT_MAX_ENTRIES,
) -> zipfile.ZipFile:
    """The zip of `data` once its size, entry count and entry names are checked (nothing is
    decompressed yet: `summarise_zip` does that). The caller closes it."""
    if len(data) > zipped_limit:
        raise RequestTooLarge(f"artifact is {len(data)} bytes zipped, over the {zipped_limit}-byte limit")
    # Counted on the raw bytes first, so zipfile never builds objects for an oversized directory.
    check_entry_count(count_entries(data, entries_limit), entries_limit)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ArtifactError(f"artifact is not a valid zip: {exc}") from exc
    try:
        infos = archive.infolist()
        check_entry_count(len(infos), entries_limit)
        for info in infos:
            check_entry(info)
        check_names_coexist(info.filename for info in infos)
    except BaseException:
        archive.close()
        raise
    return archive


def summarise_zip(archive: zipfile.ZipFile, data: bytes, unzipped_limit: int) -> ZipInfoSummary:
    """Decompress every member of an opened zip, counting real bytes against `unzipped_limit`."""
    infos = archive.infolist()
    declared = sum(info.file_size for info in infos)
    if declared > unzipped_limit:
        raise RequestTooLarge(f"artifact unzips to {declared} bytes, over the {unzipped_limit}-byte limit")
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


@dataclass(frozen=True, slots=True)
class CodeAccess:
    """Ownership and modes of unpacked code.

    Tasks read their code through a read-only bind mount as uid:gid `task_user`; the permissions
    of the directories above it on the host do not apply inside the container, so the code itself
    must be readable by the task and by nobody else who matters: group-readable with the tasks'
    group when the platform can give files that group, else world-readable bits inside a data dir
    that other local users cannot enter (0700).
    """

    group: int | None  # gid given to every unpacked file and directory; None: left as created
    dir_mode: int
    file_mode: int
    exec_mode: int

    @classmethod
    def world_readable(cls) -> CodeAccess:
        return cls(None, 0o755, _MODE_FILE, _MODE_EXEC)

    @classmethod
    def for_group(cls, gid: int) -> CodeAccess:
        return cls(gid, 0o750, 0o640, 0o750)


class ArtifactStore:
    """Zips stored once by sha256 under `root`, unpacked once under `code_root`.

    Writes are atomic (temp + rename in the same directory), so concurrent puts/unpacks of the
    same artifact are safe: the first rename wins, the others find it in place. Stored zips are
    0600 in 0700 directories; unpacked code follows `code_access`.
    """

    def __init__(self, root: Path, code_root: Path, code_access: CodeAccess | None = None) -> None:
        self.root = Path(root)
        self.code_root = Path(code_root)
        self.code_access = code_access or CodeAccess.world_readable()

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
        try:
            # Stored already: a deploy uses it again, so garbage collection's grace period
            # starts again now (gc_claim looks at this time).
            os.utime(path)
        except FileNotFoundError:
            make_private_dirs(path.parent)
            # mkstemp creates the file 0600: never readable by anyone but the platform.
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".zip")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
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

        Modes and group follow `code_access` (executables keep their execute bits), so the
        task user can read the code through the read-only bind mount.
        """
        return self._unpack(sha256, self.code_access)

    def unpack_build_context(self, sha256: str) -> Path:
        """Like `unpack`, for an image's build context: world-readable modes (0644, 0755), because
        Dockerfile COPY keeps them and gives the files to root, and the image's non-root user must
        read them. Only Docker reads the context; the 0700 directories above keep others out.
        (A zip is either a build context or bind-mounted code, never both: its function.yaml
        says which.)"""
        return self._unpack(sha256, CodeAccess.world_readable())

    def _unpack(self, sha256: str, access: CodeAccess) -> Path:
        target = self.code_path(sha256)
        if target.is_dir():
            return target
        source = self.zip_path(sha256)
        if not source.is_file():
            raise NotFound(f"artifact {sha256} not found")
        make_private_dirs(self.code_root)
        staging = Path(tempfile.mkdtemp(dir=self.code_root, prefix=f".tmp-{sha256[:12]}-"))
        try:
            with zipfile.ZipFile(source) as archive:
                _extract(archive, staging, access)
            _set_access(staging, access.dir_mode, access)
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


    # ---- garbage collection (fnplat/housekeeping.py decides what is unreferenced) -------------
    #
    # A deploy in flight must never lose its artifact. A deploy stores (or touches) the zip
    # before it writes the version that references it, so collection takes the zip away first
    # with an atomic rename (`gc_claim`) and keeps it only if it was not touched within the grace
    # period: a deploy that touched it before the rename is seen, and one that comes after the
    # rename finds no zip and writes it again.

    def gc_candidates(self) -> dict[str, float]:
        """Every artifact with a zip or a code dir here, and the newest mtime of the two."""
        found: dict[str, float] = {}
        for directory, suffix in ((self.root / "sha256", ".zip"), (self.code_root, "")):
            if not directory.is_dir():
                continue
            for entry in directory.iterdir():
                name = entry.name.removesuffix(suffix) if suffix else entry.name
                if (suffix and not entry.name.endswith(suffix)) or not _SHA256_RE.match(name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    found[name] = max(found.get(name, 0.0), entry.stat().st_mtime)
        return found

    def gc_claim(self, sha256: str, older_than: float) -> Path | None:
        """Take the zip away (renamed `.gc-<sha>.zip`) if it was last stored or used before
        `older_than` (a time.time()); None when it is absent or young (then it stays in place)."""
        path = self.zip_path(sha256)
        claimed = path.with_name(f".gc-{sha256}.zip")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        if claimed.stat().st_mtime >= older_than:
            self.gc_release(sha256, claimed)
            return None
        return claimed

    def gc_release(self, sha256: str, claimed: Path) -> None:
        """Put a claimed zip back (a deploy that stored it again meanwhile wins: same bytes)."""
        path = self.zip_path(sha256)
        if path.exists():
            claimed.unlink(missing_ok=True)
        else:
            os.rename(claimed, path)

    def gc_restored(self, sha256: str) -> bool:
        """True when a deploy stored the zip again after it was claimed."""
        return self.zip_path(sha256).exists()

    def gc_remove_code(self, sha256: str, older_than: float | None = None) -> bool:
        """Remove the unpacked code dir (renamed away first, so no task start sees half of it);
        with `older_than`, only if it was not modified since. True when removed."""
        target = self.code_path(sha256)
        try:
            if older_than is not None and target.stat().st_mtime >= older_than:
                return False
            doomed = target.with_name(f".gc-{sha256}")
            os.rename(target, doomed)
        except FileNotFoundError:
            return False
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def gc_temporaries(self, older_than: float) -> int:
        """Remove what interrupted puts, unpacks and collections left (`.tmp-*`, `.gc-*`)."""
        removed = 0
        for directory in (self.root / "sha256", self.code_root):
            if not directory.is_dir():
                continue
            for entry in directory.iterdir():
                if not entry.name.startswith((".tmp-", ".gc-")):
                    continue
                try:
                    if entry.lstat().st_mtime >= older_than:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()
                    removed += 1
                except FileNotFoundError:
                    continue
        return removed


def make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents as 0700 (existing ones are left alone)."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if not path.is_dir():
                raise
        os.chmod(path, 0o700)  # explicit: mkdir's mode is filtered by the process umask


def _extract(archive: zipfile.ZipFile, dest: Path, access: CodeAccess) -> None:
    for info in archive.infolist():
        check_entry(info)  # the stored zip was validated on put; cheap insurance for the path join
        relative = info.filename.rstrip("/")
        path = dest.joinpath(*relative.split("/"))
        if info.is_dir():
            _make_parents(path, dest, access)
            continue
        _make_parents(path.parent, dest, access)
        mode = access.exec_mode if is_executable(info) else access.file_mode
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with archive.open(info) as src, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
            if access.group is not None:
                os.fchown(out.fileno(), -1, access.group)
            os.fchmod(out.fileno(), mode)  # after chown: chown may clear set-id bits, not these


def _make_parents(directory: Path, dest: Path, access: CodeAccess) -> None:
    missing: list[Path] = []
    while directory != dest and not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700)
        _set_access(path, access.dir_mode, access)


def _set_access(path: Path, mode: int, access: CodeAccess) -> None:
    if access.group is not None:
        os.chown(path, -1, access.group)
    os.chmod(path, mode)  # explicit: mkdir's mode is filtered by the process umask


def _checked_sha(sha256: str) -> str:
    if not _SHA256_RE.match(sha256):
        raise NotFound(f"artifact {sha256!r} not found (not a sha256 hex digest)")
    return sha256
