"""Two partitions mine apart, then reconnect: every node ends on the chain with the most
work, and the losing branch's transactions are back in the mempools."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from p2pnodes import Nodes, spend_coinbase, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_partitions_converge_on_the_most_work_chain(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        nodes = Nodes(tmp_path, nursery)
        try:
            a, b, c, d = await nodes.start(4)
            for left, right in ((a, b), (b, c), (c, d)):
                await right.connect(left)
            await a.produce(101)  # coinbases of blocks 1 and 2 are mature at 101 and 102
            await wait_for(lambda: all(n.height == 101 for n in (a, b, c, d)), "common history")

            # Cut the network between b and c: {a, b} and {c, d}.
            assert await b.s.disconnect(c.s.peer_id)
            await wait_for(lambda: b.s.peer(c.s.peer_id) is None, "b to drop c")
            await wait_for(lambda: c.s.peer(b.s.peer_id) is None, "c to drop b")

            losing_tx = spend_coinbase(a, 1)
            await a.c.submit_transaction(losing_tx)
            await wait_for(lambda: losing_tx.txid in b.c.mempool, "the tx to reach b")
            await a.produce(3)  # the short branch confirms losing_tx
            await wait_for(lambda: b.tip == a.tip and b.height == 104, "b to follow a")
            winning_tx = spend_coinbase(c, 2)
            await c.c.submit_transaction(winning_tx)
            await wait_for(lambda: winning_tx.txid in d.c.mempool, "the tx to reach d")
            await d.produce(5)  # the long branch confirms winning_tx
            await wait_for(lambda: c.tip == d.tip and c.height == 106, "c to follow d")
            assert losing_tx.txid not in c.c.mempool  # the partitions never saw each other

            await c.connect(b)
            winner = d.tip
            await wait_for(
                lambda: all(n.tip == winner for n in (a, b, c, d)), "every node to reorganise"
            )
            # losing_tx was confirmed only on the losing branch: back in every mempool
            # (the losers put it back, and relay it to the winners who never had it).
            await wait_for(
                lambda: all(losing_tx.txid in n.c.mempool for n in (a, b, c, d)),
                "the losing branch's tx to be back in every mempool",
            )
            for node in (a, b, c, d):
                assert winning_tx.txid not in node.c.mempool
                assert node.c.chainstate.utxo_commitment() == d.c.chainstate.utxo_commitment()
        finally:
            await nodes.stop_all()
