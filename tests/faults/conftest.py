"""Fault tests: what the platform does when a function, a client, Docker or the store misbehaves.

Each test here proves one bound or recovery rule of ARCHITECTURE.md ("Bounds and recovery").
They reuse the end-to-end harness (a real `fnctl up` in a temporary data dir).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

from e2e_platform import platform

__all__ = ["platform"]
