"""Shared builders for the mempool and block-template tests: a real in-memory chain.

:class:`MemChain` keeps a ``MemoryCoins`` coin set and connects blocks with the consensus
functions (``check_block``, ``check_block_work`` re-executing the draw with the regtest
model of ``tests/exactwork.py``, ``connect_block``, ``disconnect_block``), so the mempool
sees a real chain tip through the same ``ChainTip`` protocol the LevelDB chainstate
satisfies.
No mocks. The module-scoped base chain (REGTEST) is mined once and copied per test:

    heights 1..100  empty blocks; coinbases pay 50 FC to PRODUCER
    height  101     FUNDING: the coinbase of block 1 split into FUNDED_COINS outputs of
                    COIN_VALUE to ALICE, plus change

At the tip (101) the next block is 102: the coinbase of height 2 is exactly mature, the
one of height 3 is one block short. Disconnecting block 101 makes height 2 immature again.

Fixture names say what they are: ``mem_chain`` (a fresh copy of the base chain),
``funded`` (ALICE's coins in it), ``mem_chain_base`` (the shared original; never change it).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pytest

from chain.block import Block
from chain.checks import check_block
from chain.coins import Coin, MemoryCoins
from chain.contextual import (
    ParentInfo,
    Undo,
    check_block_work,
    connect_block,
    disconnect_block,
    median_time_past,
)
from chain.params import REGTEST
from chain.producer import assemble_block
from chain.transaction import OutPoint, Transaction, TxOut
from tests.chainbuilder import ALICE, PRODUCER, Spendable, key, outputs_of, pay
from tests.exactwork import sample, verify

SPACING = 200
FUNDED_COINS = 60
COIN_VALUE = 20_000_000  # 0.2 FC each
FUNDING_HEIGHT = 101


class MemChain:
    """An in-memory chain: coins, blocks and undo records, validated by consensus code."""

    def __init__(self) -> None:
        self.params = REGTEST
        self.coins = MemoryCoins()
        genesis = REGTEST.genesis
        for n, out in enumerate(genesis.transactions[0].outputs):
            self.coins.coins[OutPoint(genesis.transactions[0].txid, n)] = Coin(
                out.amount, out.pubkey, 0, True
            )
        self.blocks: list[Block] = [genesis]
        self.undos: list[Undo] = [Undo([])]

    # -- the ChainTip protocol -------------------------------------------------------
    @property
    def height(self) -> int:
        return len(self.blocks) - 1

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self.coins.get_coin(outpoint)

    def known_job_ids(self) -> set[bytes]:
        # No block of this chain admits a lottery job: the standing one is all there is.
        return {REGTEST.lottery.standing_job.job_id}

    # -- building ----------------------------------------------------------------------
    def parent_info(self) -> ParentInfo:
        tip = self.blocks[-1]
        times = [b.header.time for b in self.blocks[-11:]]
        return ParentInfo(tip.hash, tip.header.height, tip.header.time, median_time_past(times))

    def build(self, txs: Sequence[Transaction] = (), fees: int = 0) -> Block:
        info = self.parent_info()
        return assemble_block(
            REGTEST, info, PRODUCER, txs, info.time + SPACING, fees=fees, sampler=sample
        )

    def connect(self, block: Block) -> Block:
        check_block(block, REGTEST)
        check_block_work(block, REGTEST, [REGTEST.lottery.standing_job], verify)
        result = connect_block(block, self.coins, REGTEST, known_jobs=self.known_job_ids())
        self.coins.apply(result.overlay)
        self.blocks.append(block)
        self.undos.append(result.undo)
        return block

    def mine(self, txs: Sequence[Transaction] = ()) -> Block:
        return self.connect(self.build(txs))

    def disconnect(self) -> Block:
        block = self.blocks.pop()
        self.coins.apply(disconnect_block(block, self.undos.pop(), self.coins))
        return block

    def coinbase(self, height: int) -> Spendable:
        cb = self.blocks[height].transactions[0]
        return Spendable(OutPoint(cb.txid, 0), cb.outputs[0], PRODUCER)

    def copy(self) -> MemChain:
        twin = copy.copy(self)
        twin.coins = MemoryCoins()
        twin.coins.coins = dict(self.coins.coins)
        twin.blocks = list(self.blocks)
        twin.undos = list(self.undos)
        return twin


@pytest.fixture(scope="module")
def mem_chain_base() -> MemChain:
    chain = MemChain()
    for _ in range(FUNDING_HEIGHT - 1):
        chain.mine()
    first = chain.coinbase(1)
    change = first.amount - FUNDED_COINS * COIN_VALUE - 10_000
    funding = pay(
        [first], [TxOut(COIN_VALUE, key(ALICE))] * FUNDED_COINS + [TxOut(change, key(PRODUCER))]
    )
    chain.mine([funding])
    assert chain.height == FUNDING_HEIGHT
    return chain


@pytest.fixture
def mem_chain(mem_chain_base: MemChain) -> MemChain:
    return mem_chain_base.copy()


@pytest.fixture
def funded(mem_chain: MemChain) -> list[Spendable]:
    """ALICE's FUNDED_COINS plain coins of COIN_VALUE, confirmed in block 101."""
    funding = mem_chain.blocks[FUNDING_HEIGHT].transactions[1]
    return outputs_of(funding, ALICE)[:FUNDED_COINS]
