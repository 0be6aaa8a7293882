"""Real dependency vendoring: pip (binary manylinux wheels for cp311) and npm, from the registries.

Needs network access to PyPI and the npm registry (or the machine's configured mirrors).
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import pytest

from fnplat.errors import ArtifactError
from fnplat.packaging import package_function

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def infos(data: bytes) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: info for info in archive.infolist()}


def test_pip_vendors_binary_wheel_for_cp311_manylinux(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text("name: fn\nruntime: python3.11\nhandler: app.handler\n")
    (tmp_path / "app.py").write_text("import markupsafe\n")
    (tmp_path / "requirements.txt").write_text("markupsafe==3.0.3\n")
    messages: list[str] = []
    packaged = package_function(tmp_path, progress=messages.append)
    entries = infos(packaged.zip_bytes)
    assert "markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so" in entries
    assert "markupsafe/__init__.py" in entries
    assert any(name.startswith("markupsafe-3.0.3.dist-info/") for name in entries)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in entries)
    assert any("pip" in message for message in messages)
    assert not (tmp_path / "markupsafe").exists()  # the user's directory is untouched


def test_pip_vendoring_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text("name: fn\nruntime: python3.11\nhandler: app.handler\n")
    (tmp_path / "app.py").write_text("")
    (tmp_path / "requirements.txt").write_text("markupsafe==3.0.3\n")
    assert package_function(tmp_path).sha256 == package_function(tmp_path).sha256


def test_pip_package_without_a_wheel_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text("name: fn\nruntime: python3.11\nhandler: app.handler\n")
    (tmp_path / "app.py").write_text("")
    (tmp_path / "requirements.txt").write_text("docopt==0.6.2\n")  # published as an sdist only
    with pytest.raises(ArtifactError) as caught:
        package_function(tmp_path)
    assert "pip could not install requirements.txt for 3.11" in caught.value.message
    assert "docopt" in caught.value.message


def test_deps_python_example_vendors_libyaml_binding() -> None:
    entries = infos(package_function(EXAMPLES / "deps-python").zip_bytes)
    assert any(name.startswith("yaml/_yaml.cpython-311-x86_64-linux-gnu.so") for name in entries)


def test_npm_vendors_production_dependencies(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text("name: fn\nruntime: nodejs18.x\nhandler: index.handler\n")
    (tmp_path / "index.js").write_text("const isNumber = require('is-number');\n")
    (tmp_path / "package.json").write_text(
        json.dumps({"name": "fn", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}})
    )
    packaged = package_function(tmp_path)
    entries = infos(packaged.zip_bytes)
    assert "node_modules/is-number/index.js" in entries
    assert "node_modules/is-number/package.json" in entries
    assert not any(name.startswith("node_modules/.bin/") for name in entries)
    assert not any(stat.S_ISLNK(info.external_attr >> 16) for info in entries.values())
    assert not (tmp_path / "node_modules").exists()
    assert list(entries).count("package.json") == 1
