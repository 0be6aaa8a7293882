"""Deploy input cannot stall or fool the platform: hostile zips and specs get a clear 400 and
store nothing, and a warm function keeps answering while hostile and large uploads are being
processed (YAML parsing and zip inspection run off the event loop)."""

from __future__ import annotations

import concurrent.futures
import io
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
import requests
from e2e_platform import Platform

pytestmark = pytest.mark.docker

FUNCTION = Path(__file__).parent / "functions" / "py-env"
ENTRY_LIMIT = 20_000  # fnplat.domain.ARTIFACT_MAX_ENTRIES, the documented bound
SPEC_LIMIT = 64 * 1024  # fnplat.spec.SPEC_SIZE_LIMIT


def spec(name: str) -> str:
    return f"name: {name}\nruntime: python3.11\nhandler: app.handler\n"


def zip_of(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name)
            kind = (stat.S_IFDIR | 0o755) if name.endswith("/") else (stat.S_IFREG | 0o644)
            info.external_attr = kind << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def function_zip(name: str, *extra: tuple[str, bytes], spec_text: str | None = None) -> bytes:
    text = spec(name) if spec_text is None else spec_text
    code = b"def handler(e, c):\n    return 1\n"
    return zip_of([("function.yaml", text.encode()), ("app.py", code), *extra])


def post(plat: Platform, data: bytes) -> requests.Response:
    return requests.post(
        f"{plat.url}/v1/functions",
        data=data,
        headers={**plat.headers(), "Content-Type": "application/zip"},
        timeout=120,
    )


def stored_files(plat: Platform) -> set[str]:
    roots = [plat.data_dir / "artifacts", plat.data_dir / "code"]
    return {str(p.relative_to(plat.data_dir)) for root in roots if root.exists() for p in root.rglob("*")}


HOSTILE = {
    "file-under-a-file": (
        function_zip("file-under-a-file", ("lib", b"x"), ("lib/mod.py", b"y")),
        "lib: is a file in the zip and also the directory",
    ),
    "dir-and-file-of-one-name": (
        function_zip("dir-and-file-of-one-name", ("lib/", b""), ("lib", b"x")),
        "lib: duplicate entry in the zip",
    ),
    "too-many-entries": (
        function_zip("too-many-entries", *((f"d{i // 100}/f{i}", b"") for i in range(ENTRY_LIMIT))),
        f"more than {ENTRY_LIMIT} entries",
    ),
    "oversized-spec": (
        function_zip("oversized-spec", spec_text=spec("oversized-spec") + "# pad\n" * (SPEC_LIMIT // 6)),
        "over the 65536-byte limit",
    ),
    "yaml-alias": (
        function_zip(
            "yaml-alias", spec_text="name: &n yaml-alias\nruntime: python3.11\nhandler: app.handler\n"
            "environment: {SELF: *n}\n"
        ),
        "YAML aliases are not allowed",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_deploys_get_400_and_store_nothing(platform: Platform, case: str) -> None:
    data, message = HOSTILE[case]
    before = stored_files(platform)
    response = post(platform, data)
    assert response.status_code == 400, response.text
    body = response.json()
    assert message in body["message"] and body["Type"] == "User", body
    described = requests.get(f"{platform.url}/v1/functions/{case}", headers=platform.headers(), timeout=30)
    assert described.status_code == 404
    assert stored_files(platform) == before


@pytest.mark.slow
def test_a_warm_function_keeps_answering_while_uploads_are_processed(
    platform: Platform, tmp_path: Path
) -> None:
    directory = tmp_path / "py-env"
    shutil.copytree(FUNCTION, directory)
    platform.fnctl("deploy", str(directory))
    assert platform.invoke("py-env", {"names": ["STAGE"]}).json() == {"STAGE": "prod"}  # warm now

    # A 2 MB flow list: pure-Python YAML takes ~30 s over it, which stalled every request while
    # the event loop parsed it. And a large legitimate upload: 240 MB to decompress and check.
    stall = spec("stall") + "x: [" + "1," * 1_000_000 + "1]\n"
    hostile = zip_of([("function.yaml", stall.encode()), ("app.py", b"")])
    large = function_zip("large-upload", ("filler.bin", bytes(240 * 1024 * 1024)))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        deploys = [pool.submit(post, platform, data) for data in (hostile, large)]
        answered = 0
        while True:
            # Bounded wait per call: a warm call takes milliseconds; the stalled loop took ~30 s.
            invoked = requests.post(
                f"{platform.url}/2015-03-31/functions/py-env/invocations",
                json={"names": ["STAGE"]},
                headers=platform.headers(),
                timeout=10,
            )
            assert invoked.status_code == 200 and invoked.json() == {"STAGE": "prod"}, invoked.text
            answered += 1
            if all(deploy.done() for deploy in deploys):
                break
        statuses = [deploy.result().status_code for deploy in deploys]
    assert statuses == [400, 201], [deploy.result().text for deploy in deploys]
    assert answered >= 1
