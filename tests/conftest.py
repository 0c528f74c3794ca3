"""Make the repository root importable, so test modules can share helpers as
``tests.chainbuilder`` however pytest is started (``pytest`` puts only the test
directories on ``sys.path``; ``python -m pytest`` adds the working directory too)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
