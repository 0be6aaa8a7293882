#!/usr/bin/env python3
"""Rewrite the configuration table in README.md from the settings declared in fnplat/config.py."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from fnplat.config import settings_markdown

BEGIN, END = "<!-- settings-table:begin -->", "<!-- settings-table:end -->"


def main() -> int:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        print(f"README.md has no {BEGIN} ... {END} block", file=sys.stderr)
        return 1
    readme.write_text(pattern.sub(f"{BEGIN}\n{settings_markdown()}\n{END}", text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
