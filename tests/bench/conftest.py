"""The bench package lives at the repository root (it is not part of fnplat): make it importable
however pytest is started."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
