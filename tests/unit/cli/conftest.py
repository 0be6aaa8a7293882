from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_fnplat import API_KEY, FakeFnplat, running


@pytest.fixture
def fake() -> Iterator[FakeFnplat]:
    yield from running()


@pytest.fixture
def runner(fake: FakeFnplat, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("FNCTL_ENDPOINT", fake.url)
    monkeypatch.setenv("FNCTL_API_KEY", API_KEY)
    monkeypatch.setenv("FNPLAT_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()
