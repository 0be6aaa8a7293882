"""What `fnctl deploy` builds: a function directory becomes one zip with its dependencies.

The source directory is zipped as it is (minus caches, see artifacts.DEFAULT_EXCLUDES) and the
dependencies are vendored into a temporary directory merged at the zip root, so the user's
directory is never modified. The layout rules every runtime needs (`check_layout`) are also what
the server applies to an uploaded zip.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fnplat.artifacts import (
    DEFAULT_EXCLUDES,
    ZipInfoSummary,
    build_zip,
    inspect_zip,
    is_executable,
    open_zip,
    summarise_zip,
)
from fnplat.domain import ARTIFACT_UNZIPPED_LIMIT, FunctionSpec
from fnplat.errors import ArtifactError, SpecError
from fnplat.spec import SPEC_FILENAME, check_spec_size, load_spec, parse_spec

Progress = Callable[[str], None]

PYTHON_PLATFORMS: tuple[str, ...] = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
PYTHON_VERSION = "3.11"  # the Python of fnplat/runtime-python3.11 (Debian bookworm)
VENDOR_TIMEOUT_S = 900.0
_TAIL_LINES = 12


@dataclass(frozen=True, slots=True)
class PackagedFunction:
    spec: FunctionSpec
    zip_bytes: bytes
    sha256: str


def _quiet(_: str) -> None:
    return None


def package_function(directory: str | Path, progress: Progress = _quiet) -> PackagedFunction:
    """Load the spec, vendor dependencies for the runtime, and zip everything.

    Raises SpecError/ArtifactError for what the user must fix, RequestTooLarge when the result
    exceeds Lambda's package limits (checked here so nothing big is uploaded in vain).
    """
    # Absolute: pip and npm run with another working directory.
    source = Path(directory).resolve()
    if not source.is_dir():
        raise ArtifactError(f"{source}: not a directory")
    spec = load_spec(source)
    progress(f"read {SPEC_FILENAME}: {spec.name} ({spec.runtime})")
    excludes = DEFAULT_EXCLUDES
    with tempfile.TemporaryDirectory(prefix="fnctl-vendor-") as vendor_root:
        vendor = Path(vendor_root)
        if spec.runtime == "python3.11" and _has_requirements(source / "requirements.txt"):
            progress("installing requirements.txt (pip, manylinux wheels for Python 3.11)")
            vendor_python(source / "requirements.txt", vendor)
        elif spec.runtime == "nodejs18.x" and _has_npm_dependencies(source / "package.json"):
            progress("installing package.json dependencies (npm)")
            vendor_node(source, vendor)
            # The source's own node_modules (dev dependencies, other platforms) is replaced.
            excludes = (*DEFAULT_EXCLUDES, "node_modules")
        progress("building zip")
        data = build_zip(source, extra_dirs=[vendor], excludes=excludes)
    summary = inspect_zip(data)
    check_layout(spec, data)
    progress(f"packaged {len(summary.names)} files, {summary.size} bytes zipped")
    return PackagedFunction(spec=spec, zip_bytes=data, sha256=summary.sha256)


def validate_upload(data: bytes) -> tuple[ZipInfoSummary, FunctionSpec]:
    """Everything the server checks in an uploaded zip, cheapest first: size, entry count and
    names, then the spec and layout, then every member decompressed. CPU-bound and pure Python
    (YAML): the deploy service runs it off the event loop, in one call."""
    with open_zip(data) as archive:
        spec = _read_spec(archive)
        _check_layout_entries(spec, {info.filename: info for info in archive.infolist()})
        summary = summarise_zip(archive, data, ARTIFACT_UNZIPPED_LIMIT)
    return summary, spec


def spec_from_zip(data: bytes) -> FunctionSpec:
    """The spec inside an uploaded zip (`function.yaml` at its root). For the server."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ArtifactError(f"artifact is not a valid zip: {exc}") from exc
    with archive:
        return _read_spec(archive)


def _read_spec(archive: zipfile.ZipFile) -> FunctionSpec:
    try:
        info = archive.getinfo(SPEC_FILENAME)
    except KeyError as exc:
        raise SpecError(f"{SPEC_FILENAME}: missing at the root of the zip") from exc
    # The declared size bounds what reading the member can return: check it before reading.
    check_spec_size(info.file_size)
    try:
        raw = archive.read(info)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, RuntimeError) as exc:
        raise ArtifactError(f"{SPEC_FILENAME}: corrupt or unsupported entry: {exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{SPEC_FILENAME}: is not UTF-8 text") from exc
    return parse_spec(text, SPEC_FILENAME)


def check_layout(spec: FunctionSpec, data: bytes) -> None:
    """The files a runtime needs at the zip root: `bootstrap` (executable) or `Dockerfile`."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = {info.filename: info for info in archive.infolist()}
    _check_layout_entries(spec, entries)


def _check_layout_entries(spec: FunctionSpec, entries: Mapping[str, zipfile.ZipInfo]) -> None:
    if SPEC_FILENAME not in entries:
        raise SpecError(f"{SPEC_FILENAME}: missing at the root of the zip")
    if spec.runtime == "image" and "Dockerfile" not in entries:
        raise ArtifactError("runtime image needs a Dockerfile at the root of the function directory")
    if spec.runtime == "provided":
        bootstrap = entries.get("bootstrap")
        if bootstrap is None:
            raise ArtifactError("runtime provided needs an executable 'bootstrap' file at the root")
        if not is_executable(bootstrap):
            raise ArtifactError("bootstrap is not executable (chmod +x bootstrap)")


def _has_requirements(path: Path) -> bool:
    if not path.is_file():
        return False
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return any(lines)


def _has_npm_dependencies(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON: {exc}") from exc
    return isinstance(manifest, dict) and bool(manifest.get("dependencies"))


def pip_command(requirements: Path, target: Path) -> list[str]:
    """Binary wheels for the runtime image's Python, whatever Python runs fnctl."""
    platforms = [arg for platform in PYTHON_PLATFORMS for arg in ("--platform", platform)]
    return [
        sys.executable, "-m", "pip", "install",
        "--target", str(target),
        *platforms,
        "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
        "--only-binary=:all:",
        "--upgrade",
        "--no-compile",  # .pyc would be stale against the zip's fixed timestamps anyway
        "--disable-pip-version-check",
        "--no-input",
        "-r", str(requirements),
    ]  # fmt: skip


def vendor_python(requirements: Path, target: Path) -> None:
    result = _run(pip_command(requirements, target), cwd=requirements.parent, tool="pip")
    if result.returncode != 0:
        raise ArtifactError(
            f"pip could not install {requirements.name} for {PYTHON_VERSION} on manylinux x86_64 "
            "(only wheels can be vendored: a package without a binary or pure-Python wheel "
            f"cannot be used):\n{_tail(result.stdout)}"
        )


def npm_command() -> list[str]:
    # --no-bin-links: node_modules/.bin would be symlinks, which artifacts refuse.
    return ["npm", "install", "--omit=dev", "--no-audit", "--no-fund", "--no-bin-links", "--no-save"]


def vendor_node(source: Path, target: Path) -> None:
    """npm install in a copy of the manifest; only node_modules is kept in `target`."""
    if shutil.which("npm") is None:
        raise ArtifactError("npm not found: install Node.js and npm to vendor package.json dependencies")
    manifests = [
        name for name in ("package.json", "package-lock.json", ".npmrc") if (source / name).is_file()
    ]
    for name in manifests:
        shutil.copy2(source / name, target / name)
    result = _run(npm_command(), cwd=target, tool="npm")
    if result.returncode != 0:
        raise ArtifactError(f"npm install failed:\n{_tail(result.stdout)}")
    for name in manifests:  # already in the source tree: the zip must not hold them twice
        (target / name).unlink()


def _run(command: Sequence[str], cwd: Path, tool: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(command),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=VENDOR_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ArtifactError(f"{tool} did not finish within {VENDOR_TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise ArtifactError(f"cannot run {tool}: {exc}") from exc


def _tail(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return "\n".join(lines[-_TAIL_LINES:])
