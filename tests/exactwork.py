"""The block lottery for tests: the regtest model (tiny, 8 tokens a draw), loaded once.

Every block a test builds is won by a real draw and every block a test connects has its
draw re-executed, exactly as on a node; with the tiny model a draw costs ~20 ms and a
check ~8 ms. The model is derived once into a store shared by all test processes of
this user (deriving takes ~5 s; later loads read the blob).
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

TEST_STORE = Path(
    os.environ.get("FC_TEST_STORE") or Path(tempfile.gettempdir()) / f"fc-test-store-{os.getuid()}"
)


@cache
def tiny_lottery() -> Any:
    """The regtest ``ExactLottery`` (``workloads.lottery``)."""
    from chain.params import REGTEST
    from workloads.lottery import shared_lottery

    return shared_lottery(REGTEST, TEST_STORE)


def sample(tasks: Any) -> list[bytes]:
    """``chain.lottery.Sampler``: pass as ``assemble_block(..., sampler=sample)``."""
    return tiny_lottery().sample(tasks)  # type: ignore[no-any-return]


def verify(task: Any, tokens: bytes) -> bool:
    """``chain.lottery.WorkVerifier``: pass as ``Chainstate(path, params, verify)``."""
    return tiny_lottery().verify(task, tokens)  # type: ignore[no-any-return]
