"""``NodeCore.submit_blocks``: runs of blocks in one trip to the validation thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from chain.errors import InvalidBlock, Reject
from chain.params import REGTEST
from node.core import BlockConnected, NodeCore
from tests.chainbuilder import NOW, Node
from tests.exactwork import tiny_lottery


def test_a_run_stops_at_its_first_invalid_block(tmp_path: Path) -> None:
    builder = Node(tmp_path / "builder")
    good = builder.build()
    builder.submit(good)
    bad = builder.build(fees=1)  # claims more than the subsidy: fails when connected
    with pytest.raises(InvalidBlock):  # stored marked failed: the builder can build on it
        builder.submit(bad)
    after_bad = builder.build(parent=bad.hash)
    builder.close()

    (tmp_path / "node").mkdir()

    async def run() -> None:
        core = NodeCore(tmp_path / "node", REGTEST, clock=lambda: NOW, lottery=tiny_lottery())
        events = core.subscribe()
        try:
            outcomes = await core.submit_blocks([good, bad, after_bad])
            assert [o.accepted for o in outcomes] == [True, False]  # the third is not tried
            error = outcomes[1].error
            assert error is not None and error.code == Reject.CB_AMOUNT
            assert core.chainstate.tip.hash == good.hash
            assert after_bad.hash not in core.chainstate.index
            assert (core.stats.blocks_accepted, core.stats.blocks_rejected) == (1, 1)
            event = events.receive_nowait()
            assert isinstance(event, BlockConnected) and event.block.hash == good.hash
            try:
                events.receive_nowait()
                raise AssertionError("only the good block connected")
            except trio.WouldBlock:
                pass
        finally:
            core.close()

    trio.run(run)
