"""`fnctl init`: write a new function directory from the template of its runtime."""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from fnplat.domain import FUNCTION_NAME_RE, RUNTIMES
from fnplat.errors import InvalidParameter
from fnplat.spec import SPEC_FILENAME, parse_spec

TEMPLATE_SUFFIX = ".tmpl"  # templates are not importable modules or live config files
NAME_PLACEHOLDER = "__NAME__"
EXECUTABLE_FILES = frozenset({"bootstrap"})


def _template_dir(runtime: str) -> Traversable:
    return resources.files("fnplat").joinpath("templates", runtime)


def render_templates(name: str, runtime: str) -> dict[str, str]:
    """File name -> content for a new function; the rendered spec is validated."""
    if not FUNCTION_NAME_RE.match(name):
        raise InvalidParameter(f"function name must be 1-64 letters, digits, '-' or '_', got {name!r}")
    if runtime not in RUNTIMES:
        raise InvalidParameter(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    files: dict[str, str] = {}
    for entry in _template_dir(runtime).iterdir():
        if entry.is_file() and entry.name.endswith(TEMPLATE_SUFFIX):
            target = entry.name.removesuffix(TEMPLATE_SUFFIX)
            files[target] = entry.read_text(encoding="utf-8").replace(NAME_PLACEHOLDER, name)
    # e.g. a function named "v1" would get a route under the reserved /v1: say so now.
    parse_spec(files[SPEC_FILENAME], f"{name}/{SPEC_FILENAME}")
    return files


def scaffold(name: str, runtime: str, directory: Path) -> list[Path]:
    """Create `directory` with the runtime's template; never overwrites an existing file."""
    files = render_templates(name, runtime)
    if directory.exists() and not directory.is_dir():
        raise InvalidParameter(f"{directory} exists and is not a directory")
    clashes = sorted(f for f in files if (directory / f).exists())
    if clashes:
        raise InvalidParameter(f"{directory} already has {', '.join(clashes)}: not overwriting")
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for filename in sorted(files):
        path = directory / filename
        path.write_text(files[filename], encoding="utf-8")
        if filename in EXECUTABLE_FILES:
            os.chmod(path, 0o755)
        written.append(path)
    return written
