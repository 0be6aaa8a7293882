"""Every package of the source tree is in pyproject's package list: an editable install finds
modules anyway, but the wheel (the platform image) would silently leave an unlisted one out."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ROOTS = {
    "fnplat": REPO / "platform" / "fnplat",
    "fnplat.controller": REPO / "controller",
    "fnplat.gateway": REPO / "gateway",
    "fnplat.migrations": REPO / "migrations",
}


def test_every_package_directory_is_listed() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for name, root in ROOTS.items():
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root)
            found.add(".".join([name, *relative.parts]))
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
