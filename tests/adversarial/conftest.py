"""Fixtures shared by the adversarial suites: one base chain per module, a copy per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chainbuilder import BaseChain, Node, build_base_chain, open_copy


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseChain:
    return build_base_chain(tmp_path_factory.mktemp("base") / "chain")


@pytest.fixture
def node(base: BaseChain, tmp_path: Path) -> Iterator[Node]:
    n = open_copy(base, tmp_path / "node")
    yield n
    n.close()
