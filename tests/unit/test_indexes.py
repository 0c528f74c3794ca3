"""The transaction and address index follows the active chain, through reorgs and restarts.

Every check compares the index with an oracle computed independently from the chain
itself: walk the active chain's blocks for transaction locations and history, and read
the chainstate's UTXO set for each key's coins. The index must agree exactly, and hold
no record beyond what the oracle has (no stale entry left by a disconnected block).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from chain.chainstate import Chainstate
from chain.coins import decode_coin
from chain.producer import assemble_block
from chain.transaction import OutPoint, Transaction, TxOut
from node.indexes import (
    P_COINS,
    P_HISTORY,
    P_TX,
    AddressCoin,
    ChainIndexes,
    HistoryEntry,
)
from tests.chainbuilder import ALICE, BOB, PRODUCER, SPACING, BaseChain, key, pay, secret_for
from tests.exactwork import sample
from tests.rpcnode import RpcNode, copy_base, mine_base, open_node

CAROL = secret_for("carol")
DEADLINE = 20.0  # seconds to wait for the follower; never reached when things work


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseChain:
    return mine_base(tmp_path_factory.mktemp("index-base"))


@pytest.fixture
def node(base: BaseChain, tmp_path: Path) -> Iterator[RpcNode]:
    opened = open_node(copy_base(base, tmp_path / "node"))
    yield opened
    opened.close()


# -- the oracle --------------------------------------------------------------------------
@dataclass
class Expected:
    locations: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    history: dict[bytes, list[HistoryEntry]] = field(default_factory=lambda: defaultdict(list))
    coins: dict[bytes, list[AddressCoin]] = field(default_factory=lambda: defaultdict(list))


def expected_from_chain(chain: Chainstate) -> Expected:
    want = Expected()
    outputs: dict[OutPoint, TxOut] = {}
    for height in range(chain.height + 1):
        block_hash = chain.active[height]
        block = chain.get_block(block_hash)
        assert block is not None
        for position, tx in enumerate(block.transactions):
            want.locations[tx.txid] = (block_hash, position)
            for n, txin in enumerate(tx.inputs):
                spent = outputs[txin.prevout]
                want.history[spent.pubkey].append(
                    HistoryEntry(height, position, tx.txid, "spent", n, spent.amount)
                )
            for n, out in enumerate(tx.outputs):
                outputs[OutPoint(tx.txid, n)] = out
                want.history[out.pubkey].append(
                    HistoryEntry(height, position, tx.txid, "received", n, out.amount)
                )
    for entries in want.history.values():
        entries.sort(
            key=lambda e: (e.height, e.position, e.direction == "spent", e.index), reverse=True
        )
    for key_bytes, value in chain.iter_coins():
        coin = decode_coin(value)
        outpoint = OutPoint(key_bytes[:32], int.from_bytes(key_bytes[32:], "big"))
        want.coins[coin.pubkey].append(
            AddressCoin(outpoint, coin.amount, coin.height, coin.is_coinbase)
        )
    return want


def count_records(indexes: ChainIndexes, prefix: bytes) -> int:
    return sum(1 for _ in indexes.db.iterator(prefix=prefix, include_value=False))


def assert_matches_chain(indexes: ChainIndexes) -> None:
    chain = indexes.core.chainstate
    assert indexes.best_block == chain.tip.hash
    want = expected_from_chain(chain)
    for txid, (block_hash, position) in want.locations.items():
        location = indexes.tx_location(txid)
        assert location is not None, f"tx {txid.hex()} missing from the index"
        assert (location.block_hash, location.position) == (block_hash, position)
    assert count_records(indexes, P_TX) == len(want.locations)
    for pubkey, entries in want.history.items():
        page = indexes.history(pubkey, limit=10_000)
        assert page.entries == entries, f"history of {pubkey.hex()[:16]}"
        assert page.cursor is None
    assert count_records(indexes, P_HISTORY) == sum(len(e) for e in want.history.values())
    for pubkey, coins in want.coins.items():
        found, more = indexes.coins(pubkey, limit=10_000)
        assert sorted(found, key=lambda c: c.outpoint.key()) == sorted(
            coins, key=lambda c: c.outpoint.key()
        )
        assert not more
    assert count_records(indexes, P_COINS) == sum(len(c) for c in want.coins.values())


async def wait_synced(indexes: ChainIndexes) -> None:
    with trio.fail_after(DEADLINE):
        while not indexes.synced:
            await trio.sleep(0.01)


def alice_to(base: BaseChain, coin: int, to: bytes, amount: int, fee: int = 10_000) -> Transaction:
    spend = base.alice[coin]
    outputs = [TxOut(amount, to), TxOut(spend.amount - amount - fee, key(ALICE))]
    return pay([spend], outputs)


# -- tests ----------------------------------------------------------------------------------
def test_catches_up_from_nothing_and_matches_the_chain(node: RpcNode, base: BaseChain) -> None:
    assert node.indexes.best_block is None
    node.indexes.sync()
    assert_matches_chain(node.indexes)
    assert node.indexes.height == 110
    alice_coins, more = node.indexes.coins(key(ALICE), limit=1000)
    assert len(alice_coins) == 300 and not more
    funding = node.indexes.tx_location(base.funding.txid)
    assert funding is not None
    assert funding.block_hash == node.core.chainstate.active[102] and funding.position == 1


@pytest.mark.anyio
async def test_follows_new_blocks_and_their_spends(node: RpcNode, base: BaseChain) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(node.indexes.run)
        tx = alice_to(base, 0, key(BOB), 3_000_000)
        await node.core.submit_transaction(tx)
        await node.core.generate(2, PRODUCER)
        await wait_synced(node.indexes)
        assert_matches_chain(node.indexes)
        location = node.indexes.tx_location(tx.txid)
        assert location is not None and location.block_hash == node.core.chainstate.active[111]
        bob = node.indexes.history(key(BOB), limit=10).entries
        assert [(e.direction, e.amount, e.height) for e in bob] == [("received", 3_000_000, 111)]
        alice = node.indexes.history(key(ALICE), limit=2).entries
        assert {(e.direction, e.txid) for e in alice} == {("spent", tx.txid), ("received", tx.txid)}
        spent = OutPoint(base.alice[0].outpoint.txid, base.alice[0].outpoint.vout)
        alice_coins, _ = node.indexes.coins(key(ALICE), limit=1000)
        assert spent not in {c.outpoint for c in alice_coins}
        nursery.cancel_scope.cancel()


def side_branch(node: RpcNode, fork_height: int, txs: list[list[Transaction]]) -> list:
    """Blocks on top of the active block at ``fork_height``, one per entry of ``txs``."""
    chain = node.core.chainstate
    parent = chain.parent_info(chain.active[fork_height])
    blocks = []
    for block_txs in txs:
        block = assemble_block(
            chain.params, parent, CAROL, block_txs, parent.time + SPACING, fees=0, sampler=sample
        )
        blocks.append(block)
        parent = parent._replace(
            hash=block.hash,
            height=parent.height + 1,
            time=block.header.time,
            median_time_past=parent.median_time_past,  # only the time matters to next_target
        )
    return blocks


@pytest.mark.anyio
async def test_a_reorg_rewinds_and_replays_the_index(node: RpcNode, base: BaseChain) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(node.indexes.run)
        to_bob = alice_to(base, 0, key(BOB), 3_000_000)
        await node.core.submit_transaction(to_bob)
        await node.core.generate(2, PRODUCER)
        await wait_synced(node.indexes)
        assert node.indexes.tx_location(to_bob.txid) is not None
        # A heavier branch from 110 pays the same coin to Carol instead.
        to_carol = alice_to(base, 0, key(CAROL), 4_000_000, fee=0)
        blocks = side_branch(node, 110, [[to_carol], [], []])
        for block in blocks:
            outcome = await node.core.submit_block(block)
            assert outcome.accepted, outcome.error
        assert node.core.chainstate.tip.hash == blocks[-1].hash
        await wait_synced(node.indexes)
        assert_matches_chain(node.indexes)
        assert node.indexes.tx_location(to_bob.txid) is None  # conflicted out
        assert node.indexes.history(key(BOB), limit=10).entries == []
        carol = node.indexes.history(key(CAROL), limit=10).entries
        assert ("received", 4_000_000) in {(e.direction, e.amount) for e in carol}
        nursery.cancel_scope.cancel()


@pytest.mark.anyio
async def test_reopening_after_the_index_fell_behind_a_reorg(
    node: RpcNode, base: BaseChain
) -> None:
    """The index saw block 111, then (as if killed) missed a reorg that removed it."""
    await node.core.generate(1, PRODUCER)
    node.indexes.sync()
    stale = node.indexes.best_block
    assert stale == node.core.chainstate.tip.hash
    for block in side_branch(node, 110, [[], [], []]):
        assert (await node.core.submit_block(block)).accepted
    assert not node.core.chainstate.is_active(stale)
    node.close()
    reopened = open_node(node.datadir)
    try:
        assert reopened.indexes.best_block == stale  # the marker survived the restart
        await reopened.indexes.catch_up()
        assert_matches_chain(reopened.indexes)
    finally:
        reopened.close()
    node.core = reopened.core  # the fixture closes it again, harmlessly


def test_reopening_an_up_to_date_index_changes_nothing(node: RpcNode) -> None:
    node.indexes.sync()
    before = list(node.indexes.db.iterator())
    node.close()
    reopened = open_node(node.datadir)
    try:
        reopened.indexes.sync()
        assert list(reopened.indexes.db.iterator()) == before
    finally:
        reopened.close()
    node.core = reopened.core


def test_a_marker_the_chainstate_does_not_know_rebuilds_the_index(node: RpcNode) -> None:
    node.indexes.sync()
    node.indexes.db.put(b"B", b"\x42" * 32)  # as if the chainstate had been replaced
    node.indexes.db.put(P_TX + b"\x43" * 32, b"\x44" * 36)  # and a record from that past
    rebuilt = ChainIndexes(node.core)
    assert rebuilt.best_block is None
    rebuilt.sync()
    assert_matches_chain(rebuilt)


def test_history_pages_cover_everything_once(node: RpcNode) -> None:
    node.indexes.sync()
    full = node.indexes.history(key(ALICE), limit=10_000).entries
    assert len(full) == 300
    pages: list[HistoryEntry] = []
    cursor = None
    while True:
        page = node.indexes.history(key(ALICE), limit=7, cursor=cursor)
        pages.extend(page.entries)
        if page.cursor is None:
            break
        assert len(page.entries) == 7
        cursor = page.cursor
    assert pages == full
    assert node.indexes.history(key(CAROL), limit=5).entries == []


# -- kills ------------------------------------------------------------------------------------
CHILD = """
import sys, trio
from pathlib import Path
from chain.producer import assemble_block
from tests.chainbuilder import PRODUCER, SPACING, secret_for
from tests.exactwork import sample
from tests.rpcnode import open_node

node = open_node(Path(sys.argv[1]))
other = secret_for("carol")

async def main() -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(node.indexes.run)
        n = 0
        while True:
            n += 1
            if n % 4 == 0:  # a two-block branch from the tip's parent: a reorg
                chain = node.core.chainstate
                parent = chain.parent_info(chain.active[chain.height - 1])
                for _ in range(2):
                    block = assemble_block(
                        chain.params, parent, other, [], parent.time + SPACING + n, sampler=sample
                    )
                    assert (await node.core.submit_block(block)).accepted
                    parent = chain.parent_info(block.hash)
            else:
                await node.core.generate(1, PRODUCER)
            await node.indexes.catch_up()
            print(node.core.chainstate.height, flush=True)

trio.run(main)
"""


@pytest.mark.slow
def test_a_kill_at_any_moment_leaves_an_index_that_catches_up(node: RpcNode) -> None:
    """SIGKILL a node that keeps producing blocks and reorgs while its index follows;
    reopened, the index always ends exactly where the chainstate is."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    node.close()
    rng = random.Random(7)
    for round_ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(node.datadir)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            wanted = 3 + round_ * 2
            deadline = time.monotonic() + 120
            for _ in range(wanted):  # blocks on real progress, not on a timer
                line = child.stdout.readline()
                assert line, f"child died: {child.stderr.read() if child.stderr else ''}"
                assert time.monotonic() < deadline
            time.sleep(rng.uniform(0, 0.05))  # land the kill anywhere in the next step
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait(30)
        reopened = open_node(node.datadir)
        try:
            reopened.indexes.sync()
            assert_matches_chain(reopened.indexes)
        finally:
            reopened.close()
    node.core = reopened.core
