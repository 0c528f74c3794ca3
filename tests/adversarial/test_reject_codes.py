"""Every reject code is tested and specified: no consensus rule goes without either.

A code counts as tested when some test file under ``tests/`` (this one aside) names it,
either as ``Reject.NAME`` or as its string value. It counts as specified when its string
value appears, as code (in backticks), in ``specs/consensus.md`` or ``specs/encoding.md``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from chain.errors import Reject

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SPECS = [ROOT / "specs" / "consensus.md", ROOT / "specs" / "encoding.md"]


@cache
def sources_of_tests() -> str:
    here = Path(__file__).resolve()
    return "\n".join(p.read_text() for p in sorted(TESTS.rglob("*.py")) if p.resolve() != here)


@pytest.mark.parametrize("code", list(Reject), ids=lambda c: c.value)
def test_every_reject_code_is_tested(code: Reject) -> None:
    sources = sources_of_tests()
    assert f"Reject.{code.name}" in sources or f'"{code.value}"' in sources, (
        f"no test under tests/ mentions Reject.{code.name} ({code.value})"
    )


@pytest.mark.parametrize("code", list(Reject), ids=lambda c: c.value)
def test_every_reject_code_is_specified(code: Reject) -> None:
    missing = [p for p in SPECS if not p.exists()]
    assert not missing, f"spec files missing: {[str(p.relative_to(ROOT)) for p in missing]}"
    text = "\n".join(p.read_text() for p in SPECS)
    assert f"`{code.value}`" in text, f"`{code.value}` is not in specs/consensus.md or encoding.md"
