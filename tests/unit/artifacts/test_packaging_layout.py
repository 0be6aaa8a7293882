"""package_function without the network: what gets vendored when, layout rules per runtime."""

from __future__ import annotations

import io
import os
import re
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from fnplat import packaging
from fnplat.errors import ArtifactError, SpecError
from fnplat.packaging import check_layout, package_function, pip_command, spec_from_zip, validate_upload
from fnplat.spec import SPEC_SIZE_LIMIT, parse_spec


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return sorted(archive.namelist())


PY_SPEC = "name: fn\nruntime: python3.11\nhandler: app.handler\n"
NODE_SPEC = "name: fn\nruntime: nodejs18.x\nhandler: index.handler\n"


@pytest.fixture
def no_tools(monkeypatch: pytest.MonkeyPatch) -> list[Sequence[str]]:
    """Record vendoring commands instead of running pip/npm."""
    calls: list[Sequence[str]] = []

    def fake_run(command: Sequence[str], cwd: Path, tool: str) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        if tool == "npm":  # what npm would leave behind
            write(
                cwd,
                {
                    "node_modules/left-pad/index.js": "module.exports = 1",
                    "node_modules/.package-lock.json": "{}",
                },
            )
        return subprocess.CompletedProcess(list(command), 0, "")

    monkeypatch.setattr(packaging, "_run", fake_run)
    return calls


def test_python_without_requirements_zips_the_source_only(
    tmp_path: Path, no_tools: list[Sequence[str]]
) -> None:
    write(tmp_path, {"function.yaml": PY_SPEC, "app.py": "", "lib/util.py": "", "__pycache__/app.pyc": ""})
    messages: list[str] = []
    packaged = package_function(tmp_path, progress=messages.append)
    assert names(packaged.zip_bytes) == ["app.py", "function.yaml", "lib/util.py"]
    assert no_tools == []
    assert packaged.spec.name == "fn" and len(packaged.sha256) == 64
    assert messages[0] == "read function.yaml: fn (python3.11)" and messages[-1].startswith(
        "packaged 3 files"
    )


def test_comment_only_requirements_do_not_run_pip(tmp_path: Path, no_tools: list[Sequence[str]]) -> None:
    write(tmp_path, {"function.yaml": PY_SPEC, "app.py": "", "requirements.txt": "# nothing yet\n\n"})
    package_function(tmp_path)
    assert no_tools == []


def test_requirements_run_pip_for_the_runtime_platform(tmp_path: Path, no_tools: list[Sequence[str]]) -> None:
    write(tmp_path, {"function.yaml": PY_SPEC, "app.py": "", "requirements.txt": "markupsafe==3.0.3\n"})
    package_function(tmp_path)
    [command] = no_tools
    assert list(command[1:4]) == ["-m", "pip", "install"]
    assert "requirements.txt" in command[-1]


def test_relative_function_dir_gives_tools_absolute_paths(
    tmp_path: Path, no_tools: list[Sequence[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "fn", {"function.yaml": PY_SPEC, "app.py": "", "requirements.txt": "markupsafe\n"})
    monkeypatch.chdir(tmp_path)
    package_function("fn")  # pip runs in another working directory
    [command] = no_tools
    assert command[-2:] == ["-r", str(tmp_path / "fn" / "requirements.txt")]
    assert Path(command[command.index("--target") + 1]).is_absolute()


def test_pip_command_targets_manylinux_cp311_wheels_only(tmp_path: Path) -> None:
    command = " ".join(pip_command(tmp_path / "requirements.txt", tmp_path / "stage"))
    for flag in (
        f"--target {tmp_path / 'stage'}",
        "--platform manylinux2014_x86_64",
        "--platform manylinux_2_28_x86_64",
        "--implementation cp",
        "--python-version 3.11",
        "--only-binary=:all:",
        "--upgrade",
        f"-r {tmp_path / 'requirements.txt'}",
    ):
        assert flag in command


def test_pip_failure_explains_wheels_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pip_output = "Collecting docopt\nERROR: No matching distribution found for docopt==0.6.2\n"
    monkeypatch.setattr(
        packaging, "_run", lambda command, cwd, tool: subprocess.CompletedProcess(command, 1, pip_output)
    )
    write(tmp_path, {"function.yaml": PY_SPEC, "app.py": "", "requirements.txt": "docopt==0.6.2\n"})
    with pytest.raises(ArtifactError) as caught:
        package_function(tmp_path)
    assert "only wheels can be vendored" in caught.value.message
    assert caught.value.message.endswith("ERROR: No matching distribution found for docopt==0.6.2")


def test_node_dependencies_are_vendored_and_local_node_modules_replaced(
    tmp_path: Path, no_tools: list[Sequence[str]]
) -> None:
    write(
        tmp_path,
        {
            "function.yaml": NODE_SPEC,
            "index.js": "",
            "package.json": '{"dependencies": {"left-pad": "1.3.0"}, "devDependencies": {"jest": "1"}}',
            "node_modules/jest/index.js": "dev only",
        },
    )
    packaged = package_function(tmp_path)
    assert no_tools == [packaging.npm_command()]
    assert "--omit=dev" in no_tools[0] and "--no-bin-links" in no_tools[0]
    assert names(packaged.zip_bytes) == [
        "function.yaml",
        "index.js",
        "node_modules/.package-lock.json",
        "node_modules/left-pad/index.js",
        "package.json",
    ]


def test_node_without_dependencies_keeps_its_own_node_modules(
    tmp_path: Path, no_tools: list[Sequence[str]]
) -> None:
    write(
        tmp_path,
        {"function.yaml": NODE_SPEC, "index.js": "", "package.json": "{}", "node_modules/m/i.js": ""},
    )
    assert "node_modules/m/i.js" in names(package_function(tmp_path).zip_bytes)
    assert no_tools == []


def test_node_bad_package_json(tmp_path: Path) -> None:
    write(tmp_path, {"function.yaml": NODE_SPEC, "index.js": "", "package.json": "{oops"})
    with pytest.raises(ArtifactError, match=re.escape(f"{tmp_path / 'package.json'}: not valid JSON")):
        package_function(tmp_path)


def test_npm_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fnplat.packaging.shutil.which", lambda name: None)
    write(
        tmp_path, {"function.yaml": NODE_SPEC, "index.js": "", "package.json": '{"dependencies": {"a": "1"}}'}
    )
    with pytest.raises(ArtifactError, match="npm not found"):
        package_function(tmp_path)


def test_provided_needs_an_executable_bootstrap(tmp_path: Path) -> None:
    write(tmp_path, {"function.yaml": "name: fn\nruntime: provided\n"})
    with pytest.raises(ArtifactError, match="needs an executable 'bootstrap' file at the root"):
        package_function(tmp_path)
    write(tmp_path, {"bootstrap": "#!/bin/sh\n"})
    os.chmod(tmp_path / "bootstrap", 0o644)
    with pytest.raises(ArtifactError, match=re.escape("bootstrap is not executable (chmod +x bootstrap)")):
        package_function(tmp_path)
    os.chmod(tmp_path / "bootstrap", 0o755)
    assert names(package_function(tmp_path).zip_bytes) == ["bootstrap", "function.yaml"]


def test_image_needs_a_dockerfile(tmp_path: Path) -> None:
    write(tmp_path, {"function.yaml": "name: fn\nruntime: image\n", "app.py": ""})
    with pytest.raises(ArtifactError, match="runtime image needs a Dockerfile"):
        package_function(tmp_path)
    write(tmp_path, {"Dockerfile": "FROM fnplat/runtime-python3.11:latest\n"})
    assert "Dockerfile" in names(package_function(tmp_path).zip_bytes)


def test_package_errors_for_missing_dir_or_spec(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a directory"):
        package_function(tmp_path / "nope")
    with pytest.raises(SpecError, match="not found"):
        package_function(tmp_path)


def zip_with(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_spec_from_zip_for_the_server() -> None:
    assert spec_from_zip(zip_with({"function.yaml": PY_SPEC, "app.py": ""})).name == "fn"
    with pytest.raises(SpecError, match=re.escape("function.yaml: missing at the root of the zip")):
        spec_from_zip(zip_with({"sub/function.yaml": PY_SPEC}))
    with pytest.raises(SpecError, match=re.escape("function.yaml: unknown key 'x'")):
        spec_from_zip(zip_with({"function.yaml": PY_SPEC + "x: 1\n"}))
    with pytest.raises(ArtifactError, match="not a valid zip"):
        spec_from_zip(b"nope")


def test_check_layout_on_uploaded_zips() -> None:
    spec = parse_spec("name: fn\nruntime: provided\n", "function.yaml")
    with pytest.raises(ArtifactError, match="bootstrap is not executable"):
        check_layout(spec, zip_with({"function.yaml": "", "bootstrap": ""}))  # writestr: mode 0600
    with pytest.raises(SpecError, match="missing at the root"):
        check_layout(spec, zip_with({"bootstrap": ""}))


def test_validate_upload_gives_the_summary_and_the_spec() -> None:
    data = zip_with({"function.yaml": PY_SPEC, "app.py": "x = 1\n"})
    summary, spec = validate_upload(data)
    assert spec.name == "fn" and summary.names == ("function.yaml", "app.py")
    assert summary.unzipped_size == len(PY_SPEC) + len("x = 1\n")


def test_validate_upload_checks_the_spec_before_decompressing(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("decompressed an upload whose spec is invalid")

    monkeypatch.setattr(packaging, "summarise_zip", never)
    with pytest.raises(SpecError, match="unknown key 'x'"):
        validate_upload(zip_with({"function.yaml": PY_SPEC + "x: 1\n", "app.py": ""}))


def test_oversized_spec_in_a_zip_is_refused_by_its_declared_size(monkeypatch: pytest.MonkeyPatch) -> None:
    data = zip_with({"function.yaml": PY_SPEC + "#" * SPEC_SIZE_LIMIT + "\n"})

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("read an oversized function.yaml")

    monkeypatch.setattr(zipfile.ZipFile, "read", never)
    for check in (spec_from_zip, validate_upload):
        with pytest.raises(SpecError, match="over the 65536-byte limit"):
            check(data)


def test_validate_upload_refuses_names_that_cannot_coexist() -> None:
    with pytest.raises(ArtifactError, match="is a file in the zip"):
        validate_upload(zip_with({"function.yaml": PY_SPEC, "lib": "", "lib/x.py": ""}))
