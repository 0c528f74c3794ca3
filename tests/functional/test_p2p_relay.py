"""Block announcements and transaction relay over gossipsub between in-process nodes.

Nodes stand in a line, so anything reaching the far end was re-announced hop by hop
(our gossipsub never forwards other peers' messages: each node announces what it has
itself connected or accepted)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from p2pnodes import Node, Nodes, spend_coinbase, wait_for

from chain.transaction import OutPoint, TxOut
from tests.chainbuilder import Spendable, key, pay, secret_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@asynccontextmanager
async def line(root: Path, count: int) -> AsyncIterator[list[Node]]:
    """``count`` nodes, each connected to the next."""
    async with trio.open_nursery() as nursery:
        nodes = Nodes(root, nursery)
        try:
            started = await nodes.start(count)
            for left, right in itertools.pairwise(started):
                await right.connect(left)
            yield started
        finally:
            await nodes.stop_all()


async def test_a_new_block_reaches_four_other_nodes(tmp_path: Path) -> None:
    async with line(tmp_path, 5) as nodes:
        first, last = nodes[0], nodes[-1]
        (made,) = await first.produce(1)
        await wait_for(lambda: all(n.tip == made for n in nodes), "block 1 to reach every node")
        (back,) = await last.produce(1)
        await wait_for(lambda: all(n.tip == back for n in nodes), "block 2 to come back")
        # Every node but the producer fetched the announced body; none needed a sync round.
        for node in nodes[1:-1]:
            assert node.s.stats.blocks_relayed_in == 2
            assert node.s.stats.blocks_synced == 0
        assert first.s.stats.messages_out["announce"] >= 1


async def test_a_burst_of_blocks_reaches_the_far_end(tmp_path: Path) -> None:
    # Announcements are coalesced to the tip (at most ten a second), so most headers a
    # node sees have an unknown parent: it keeps the block as an orphan and syncs the gap.
    async with line(tmp_path, 4) as nodes:
        await nodes[0].produce(30)
        tip = nodes[0].tip
        await wait_for(lambda: all(n.tip == tip for n in nodes), "30 blocks to reach every node")


async def test_a_transaction_reaches_every_mempool_and_then_a_block(tmp_path: Path) -> None:
    async with line(tmp_path, 4) as nodes:
        await nodes[0].produce(101)  # the coinbase of block 1 is mature at height 101
        await wait_for(lambda: all(n.height == 101 for n in nodes), "the chain to sync")
        tx = spend_coinbase(nodes[2], 1)
        await nodes[2].c.submit_transaction(tx)
        await wait_for(
            lambda: all(tx.txid in n.c.mempool for n in nodes), "the tx to reach every mempool"
        )
        # The far producer mines it; the confirmation empties every mempool.
        (made,) = await nodes[0].produce(1)
        block = nodes[0].c.chainstate.get_block(made)
        assert block is not None and tx in block.transactions
        await wait_for(
            lambda: all(n.tip == made and len(n.c.mempool) == 0 for n in nodes),
            "the block to confirm the tx everywhere",
        )


async def test_many_transactions_travel_in_few_batches(tmp_path: Path) -> None:
    async with line(tmp_path, 3) as nodes:
        source = nodes[0]
        await source.produce(101)
        await wait_for(lambda: all(n.height == 101 for n in nodes), "the chain to sync")
        owner = secret_for("p2p-fanout")
        fanout = spend_coinbase(source, 1, to=key(owner), outputs=200)
        await source.c.submit_transaction(fanout)
        # Confirm the fan-out first: 200 unconfirmed children would break the mempool's
        # descendant limit.
        (confirming,) = await source.produce(1)
        await wait_for(lambda: all(n.tip == confirming for n in nodes), "the fan-out to confirm")
        coins = [
            Spendable(OutPoint(fanout.txid, n), out, owner) for n, out in enumerate(fanout.outputs)
        ]
        payee = key(secret_for("p2p-payee"))
        children = [pay([c], [TxOut(c.amount - 1_000, payee)]) for c in coins]
        for tx in children:
            await source.c.submit_transaction(tx)
        wanted = {tx.txid for tx in children}
        await wait_for(
            lambda: all(wanted <= {e.txid for e in n.c.mempool.entries()} for n in nodes),
            "200 transactions to reach every mempool",
        )
        batches = source.s.stats.messages_out["txbatch"]
        assert source.s.stats.txs_relayed_out == 201  # the fan-out and its children
        assert 2 <= batches <= 20, f"201 transactions went out in {batches} batches"
