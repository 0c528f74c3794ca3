"""Reorganisations of the LevelDB chainstate, checked against independent replays.

Every scenario forks two branches off a shared 110-block prefix (100 coinbase-only
blocks, so coinbases mature, then 10 with transfers). Blocks on both branches carry
chained transfers, and the losing branch double-spends a coin the winning branch spends
differently. After each reorganisation the chainstate must agree with:

* the builder's ledger (``connect_block`` over in-memory coin sets, block by block),
* an explicit ``MemoryCoins`` replay of the winning chain from genesis,
* a fresh ``Chainstate`` fed only the winning chain,

on the UTXO commitment, and its total value must be the subsidies minus what the
coinbases chose not to claim.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import pytest
from chainfeed import NOW, LedgerBuilder

from chain.block import Block
from chain.chainstate import P_UNDO, BlockStatus, Chainstate, ChainUpdate
from chain.coins import CoinsOverlay, MemoryCoins, memory_utxo_hash
from chain.contextual import connect_block
from chain.errors import InvalidBlock, Reject, UnknownParent
from chain.params import REGTEST
from chain.transaction import OutPoint
from tests.exactwork import verify

PREFIX = 110
NOTHING = ChainUpdate([], [])


class Base(NamedTuple):
    builder: LedgerBuilder
    prefix: list[Block]
    template: Path  # a closed chainstate holding the prefix, copied by each test


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    builder = LedgerBuilder(seed=7)
    prefix = builder.branch(builder.genesis, 100, transfers=0)
    prefix += builder.branch(prefix[-1].hash, PREFIX - 100, transfers=3)
    template = tmp_path_factory.mktemp("template") / "chainstate"
    cs = Chainstate(template, REGTEST, verify)
    feed(cs, prefix)
    assert cs.tip.hash == prefix[-1].hash
    cs.close()
    return Base(builder, prefix, template)


def open_copy(base: Base, path: Path) -> Chainstate:
    shutil.copytree(base.template, path)
    return Chainstate(path, REGTEST, verify)


def feed(cs: Chainstate, blocks: Iterable[Block]) -> list[ChainUpdate]:
    return [cs.accept_block(block, NOW) for block in blocks]


def mirror(cs: Chainstate) -> list[bytes]:
    """A copy of the active chain kept up to date *only* from the ``ChainUpdate``s the
    chainstate announces: it matches ``cs.active`` iff the updates tell the whole story."""
    chain = list(cs.active)

    def follow(update: ChainUpdate) -> None:
        for block in reversed(update.disconnected):
            assert chain.pop() == block.hash
        for block in update.connected:
            assert block.header.prev_hash == chain[-1]
            chain.append(block.hash)

    cs.listeners.append(follow)
    return chain


def hashes(blocks: Iterable[Block]) -> list[str]:
    return [b.hash.hex()[:16] for b in blocks]


def memory_replay(blocks: Sequence[Block]) -> bytes:
    """The commitment of ``blocks`` (heights 1..n) connected over a plain in-memory set."""
    coins = MemoryCoins()
    overlay = CoinsOverlay(coins)
    overlay.add_outputs(REGTEST.genesis.transactions[0], 0)
    coins.apply(overlay)
    for block in blocks:
        coins.apply(connect_block(block, coins, REGTEST).overlay)
    return memory_utxo_hash(coins)


def check_state(cs: Chainstate, builder: LedgerBuilder, tip: bytes, scratch: Path) -> None:
    """Tip, commitment (three references), value and the index of ``cs`` at ``tip``."""
    node = builder.node(tip)
    assert node.valid
    assert cs.tip.hash == tip
    assert cs.height == node.height
    chain = builder.chain_to(tip)
    assert cs.active == [REGTEST.genesis_hash, *(b.hash for b in chain)]
    commitment = cs.utxo_commitment()
    assert commitment == builder.commitment(tip)
    assert commitment == memory_replay(chain)
    fresh = Chainstate(scratch, REGTEST, verify)
    try:
        feed(fresh, chain)
        assert fresh.tip.hash == tip
        assert fresh.utxo_commitment() == commitment
    finally:
        fresh.close()
        shutil.rmtree(scratch)
    count, total = cs.utxo_stats()
    assert count == len(node.coins)
    assert total == node.value  # subsidies minus what the coinbases left unclaimed
    # Undo records exist exactly for the connected blocks.
    undo = {key[1:] for key in cs.db.iterator(prefix=P_UNDO, include_value=False)}
    assert undo == set(cs.active)


# -- reorganisations of several depths ---------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 10, pytest.param(100, marks=pytest.mark.slow)])
def test_reorg_to_more_work_and_back(depth: int, base: Base, tmp_path: Path) -> None:
    builder = base.builder
    fork = base.prefix[-1].hash
    tag = b"reorg-%d" % depth
    contested = builder.mature_coins(fork)[depth % 5]
    builder.reserved.add(contested)
    # Branch A (seen first, loses): its first block spends the contested coin.
    a = [builder.extend(fork, producer=1, transfers=3, spend=[contested], tag=tag)]
    builder.reserved.add(OutPoint(a[0].transactions[1].txid, 1))  # kept to look at later
    a += builder.branch(a[-1].hash, depth - 1, producer=1, transfers=2, tag=tag)
    # Branch B (one block more work, wins): spends the contested coin in its last block,
    # and its coinbases leave part of their claim unclaimed.
    b = builder.branch(fork, depth, producer=2, transfers=2, burn=1_000, tag=tag)
    b.append(builder.extend(b[-1].hash, producer=2, transfers=3, spend=[contested], tag=tag))
    spend_a, spend_b = a[0].transactions[1], b[-1].transactions[1]
    assert spend_a.inputs[0].prevout == spend_b.inputs[0].prevout == contested
    assert spend_a.txid != spend_b.txid

    cs = open_copy(base, tmp_path / "cs")
    seen: list[ChainUpdate] = []
    cs.listeners.append(seen.append)
    follower = mirror(cs)

    for block, update in zip(a, feed(cs, a), strict=True):
        assert hashes(update.connected) == hashes([block])
        assert update.disconnected == []
    original = cs.utxo_commitment()
    assert original == builder.commitment(a[-1].hash)
    assert cs.get_coin(contested) is None
    assert cs.get_coin(OutPoint(spend_a.txid, 1)) is not None

    # B up to equal work changes nothing: the first seen tip stays.
    assert feed(cs, b[:-1]) == [NOTHING] * depth
    assert cs.tip.hash == a[-1].hash
    assert cs.utxo_commitment() == original
    assert len(seen) == depth

    update = cs.accept_block(b[-1], NOW)
    assert hashes(update.disconnected) == hashes(a)  # oldest first
    assert hashes(update.connected) == hashes(b)
    assert seen[-1] == update
    check_state(cs, builder, b[-1].hash, tmp_path / "fresh")
    # The contested coin went B's way; A's spend of it is gone with its outputs.
    assert cs.get_coin(contested) is None
    assert cs.get_coin(OutPoint(spend_b.txid, 1)) is not None
    assert cs.get_coin(OutPoint(spend_a.txid, 1)) is None

    # A grows past B: back to A, as if B had never been connected.
    more = builder.branch(a[-1].hash, 2, producer=1, transfers=2, tag=tag)
    assert cs.accept_block(more[0], NOW) == NOTHING  # equal work: B, seen first, stays
    update = cs.accept_block(more[1], NOW)
    assert hashes(update.disconnected) == hashes(b)
    assert hashes(update.connected) == hashes(a + more)
    check_state(cs, builder, more[-1].hash, tmp_path / "fresh")
    assert cs.get_coin(OutPoint(spend_a.txid, 1)) is not None
    assert cs.get_coin(OutPoint(spend_b.txid, 1)) is None
    assert follower == cs.active
    # Disconnecting B and reconnecting A reproduced A's ledger exactly: the state under
    # the two new blocks is the one we had before the first reorganisation.
    assert builder.commitment(a[-1].hash) == original
    cs.close()


# -- invalid branches ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("len_a", "len_b"),
    [
        (2, 5),  # B overtakes A at its bad block 3: back to A at once
        (6, 8),  # B's bad block and descendants are stored before B has more work
        (1, 5),  # B's valid part has more work than A: the node stays on B's block 2
    ],
)
def test_invalid_branch_with_more_work(len_a: int, len_b: int, base: Base, tmp_path: Path) -> None:
    builder = base.builder
    fork = base.prefix[-1].hash
    tag = b"invalid-%d-%d" % (len_a, len_b)
    a = builder.branch(fork, len_a, producer=3, transfers=2, tag=tag)
    b = builder.branch(fork, 2, producer=4, transfers=2, tag=tag)
    b.append(builder.extend(b[-1].hash, producer=4, transfers=2, corrupt=True, tag=tag))
    b += builder.branch(b[-1].hash, len_b - 3, producer=4, transfers=2, tag=tag)
    assert [builder.node(x.hash).valid for x in b] == [True, True] + [False] * (len_b - 2)
    expected = b[1] if len_a < 2 else a[-1]

    cs = open_copy(base, tmp_path / "cs")
    follower = mirror(cs)
    feed(cs, a)
    stored: list[Block] = []
    for n, block in enumerate(b):
        parent = cs.index.get(block.header.prev_hash)
        if parent is None:  # its parent was refused, never stored
            with pytest.raises(UnknownParent):
                cs.accept_block(block, NOW)
        elif parent.failed:
            with pytest.raises(InvalidBlock) as err:
                cs.accept_block(block, NOW)
            assert err.value.code == Reject.PREV_INVALID
        elif n == 2 and n + 1 > len_a:  # the bad block has the most work: tried at once
            with pytest.raises(InvalidBlock) as err:
                cs.accept_block(block, NOW)
            assert err.value.code == Reject.TX_SIG_INVALID
            stored.append(block)
        elif n >= 3 and n + 1 > len_a:  # stored, B is tried now and fails at its block 3
            with pytest.raises(InvalidBlock) as err:
                cs.accept_block(block, NOW)
            assert err.value.code == Reject.PREV_INVALID
            stored.append(block)
        else:
            cs.accept_block(block, NOW)
            stored.append(block)
    assert len(stored) == (3 if len_a < 3 else len_b - 1)
    assert follower == cs.active
    # The node is on the most-work *valid* chain.
    check_state(cs, builder, expected.hash, tmp_path / "fresh")
    # The bad block and every stored descendant are marked failed; the rest are not.
    assert cs.index[b[2].hash].status & BlockStatus.FAILED
    for block in stored:
        n = b.index(block)
        entry = cs.index[block.hash]
        assert entry.failed == (n >= 2)
        assert bool(entry.status & BlockStatus.FAILED_PARENT) == (n >= 3)
    # Failure marks survive a restart; the bad branch stays refused.
    statuses = {h: e.status for h, e in cs.index.items()}
    cs.close()
    cs = Chainstate(tmp_path / "cs", REGTEST, verify)
    assert {h: e.status for h, e in cs.index.items()} == statuses
    assert cs.activate_best_chain() == NOTHING
    assert cs.tip.hash == expected.hash
    last_stored = stored[-1]
    child = next((x for x in b if x.header.prev_hash == last_stored.hash), None)
    if child is not None:
        with pytest.raises(InvalidBlock) as err:
            cs.accept_block(child, NOW)
        assert err.value.code == Reject.PREV_INVALID
    # A reindex forgets the marks, retries the bad block, and ends where we were.
    cs.reindex()
    check_state(cs, builder, expected.hash, tmp_path / "fresh")
    assert {h: e.status for h, e in cs.index.items()} == statuses
    cs.close()


# -- equal work ------------------------------------------------------------------------------
def test_equal_work_first_seen_stays(base: Base, tmp_path: Path) -> None:
    builder = base.builder
    fork = base.prefix[-1].hash
    a = builder.branch(fork, 3, producer=5, transfers=2, tag=b"tie")
    b = builder.branch(fork, 3, producer=6, transfers=2, tag=b"tie")
    # Both arrival orders of the same two branches: whichever hash sorts first, one of
    # them has the first-seen tip sorting after its rival.
    for name, first, second in (("ab", a, b), ("ba", b, a)):
        cs = open_copy(base, tmp_path / name)
        feed(cs, first)
        assert feed(cs, second) == [NOTHING] * 3
        check_state(cs, builder, first[-1].hash, tmp_path / "fresh")
        commitment = cs.utxo_commitment()
        cs.close()
        # The first-seen tip also survives a restart, an activation and a reindex (arrival
        # order is not stored, so the loader must prefer the chain it was on).
        cs = Chainstate(tmp_path / name, REGTEST, verify)
        assert cs.tip.hash == first[-1].hash
        assert cs.activate_best_chain() == NOTHING
        assert cs.tip.hash == first[-1].hash
        cs.reindex()
        assert cs.tip.hash == first[-1].hash
        assert cs.utxo_commitment() == commitment
        cs.close()


def test_best_chain_choice_looks_only_at_live_rivals(base: Base, tmp_path: Path) -> None:
    """The candidate set holds the settled tip and nothing that cannot win: blocks of a
    losing branch leave it once the tip settles, and a branch that catches up with the
    tip is considered again. Choosing the best chain then costs the live rivals, not a
    scan of every block ever stored (which made a 2000-block sync quadratic)."""
    builder = base.builder
    fork = base.prefix[-1].hash
    cs = open_copy(base, tmp_path / "cs")
    assert cs._candidates == {cs.tip.hash}  # reopened: pruned at the first activation
    a = builder.branch(fork, 4, producer=7, transfers=1, tag=b"live")
    b = builder.branch(fork, 5, producer=8, transfers=1, tag=b"live")
    for block in a:
        cs.accept_block(block, NOW)
        assert cs._candidates == {block.hash}
    for block in b[:4]:  # less work, then equal work seen later: never the tip
        assert cs.accept_block(block, NOW) == NOTHING
        assert cs._candidates == {a[-1].hash}
    update = cs.accept_block(b[4], NOW)  # B overtakes: its stored blocks were not lost
    assert hashes(update.connected) == hashes(b)
    assert cs._candidates == {b[-1].hash}
    cs.close()


# -- restart and reindex -----------------------------------------------------------------------
def test_reopen_and_reindex_after_reorgs(base: Base, tmp_path: Path) -> None:
    builder = base.builder
    fork = base.prefix[-1].hash
    a = builder.branch(fork, 6, producer=7, transfers=3, tag=b"reopen")
    b = builder.branch(base.prefix[-4].hash, 12, producer=8, transfers=2, burn=500, tag=b"reopen")
    c = builder.branch(a[2].hash, 10, producer=9, transfers=2, tag=b"reopen")  # beats b
    cs = open_copy(base, tmp_path / "cs")
    feed(cs, a + b + c)
    tip = c[-1].hash
    check_state(cs, builder, tip, tmp_path / "fresh")
    commitment = cs.utxo_commitment()
    active = list(cs.active)
    statuses = {h: e.status for h, e in cs.index.items()}
    cs.close()

    cs = Chainstate(tmp_path / "cs", REGTEST, verify)
    assert cs.tip.hash == tip
    assert cs.active == active
    assert cs.utxo_commitment() == commitment
    assert {h: e.status for h, e in cs.index.items()} == statuses
    assert cs.activate_best_chain() == NOTHING

    update = cs.reindex()
    assert update.disconnected == []
    assert hashes(update.connected) == hashes(builder.chain_to(tip))
    assert cs.active == active
    assert cs.utxo_commitment() == commitment
    check_state(cs, builder, tip, tmp_path / "fresh")
    cs.close()
    cs = Chainstate(tmp_path / "cs", REGTEST, verify)
    assert cs.utxo_commitment() == commitment
    cs.close()
