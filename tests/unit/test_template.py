"""Block templates: ancestor-package fee-rate order, CPFP, the size budget, validity.

Every template is assembled by ``producer.assemble_block`` and then connected to the real
in-memory chain (``conftest.MemChain``) with the consensus functions, so a template in a
wrong order (child before parent) or claiming the wrong fees would fail loudly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

from chain.mempool import Mempool
from chain.params import REGTEST, block_subsidy
from chain.template import BLOCK_RESERVED_SIZE, create_block, select_transactions
from chain.transaction import Transaction, TxOut
from tests.chainbuilder import ALICE, Spendable, key, outputs_of, pay
from tests.exactwork import sample

if TYPE_CHECKING:
    from tests.unit.conftest import MemChain

NOW = REGTEST.genesis_time + 10_000_000
PRODUCER_SECRET = b"\x05" * 32


def at_rate(coins: Sequence[Spendable], rate: int, n_out: int = 1) -> Transaction:
    """A transaction paying exactly ``rate`` units per byte, outputs to ALICE."""

    def build(fee: int) -> Transaction:
        total = sum(c.amount for c in coins) - fee
        amounts = [total // n_out] * n_out
        amounts[0] += total - sum(amounts)
        return pay(coins, [TxOut(a, key(ALICE)) for a in amounts])

    tx = build(0)
    for _ in range(5):
        again = build(rate * tx.size)
        if again.size == tx.size:
            return again
        tx = again
    raise AssertionError("size did not settle")


def outs(tx: Transaction) -> list[Spendable]:
    return outputs_of(tx, ALICE)


def fill(chain: MemChain, txs: Sequence[Transaction]) -> Mempool:
    pool = Mempool(chain, REGTEST)
    for tx in txs:
        pool.accept(tx, NOW)
        assert tx.txid in pool
    return pool


def fee_of(pool: Mempool, tx: Transaction) -> int:
    entry = pool.get(tx.txid)
    assert entry is not None
    return entry.fee


def test_orders_by_fee_rate_and_builds_a_valid_block(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    one, five, three = (at_rate([c], r) for c, r in zip(funded, (1, 5, 3), strict=False))
    pool = fill(mem_chain, [one, five, three])
    fees = sum(fee_of(pool, t) for t in (one, five, three))
    template = create_block(
        REGTEST, mem_chain.parent_info(), PRODUCER_SECRET, pool, NOW, sampler=sample
    )
    assert template.block.transactions[1:] == (five, three, one)
    assert template.fees == fees
    coinbase = template.block.transactions[0]
    assert coinbase.outputs[0].amount == block_subsidy(mem_chain.height + 1, REGTEST) + fees
    mem_chain.connect(template.block)  # check_block, its draw, connect_block: valid, fees exact
    removed = pool.remove_for_block(template.block, NOW)
    assert set(removed.confirmed) == {one, five, three} and len(pool) == 0


def test_child_pays_for_parent(mem_chain: MemChain, funded: list[Spendable]) -> None:
    parent = at_rate(funded[:1], 1)
    child = at_rate(outs(parent), 20)  # package (1 + 20) / 2 = 10.5 per byte
    middle = at_rate(funded[1:2], 5)
    high = at_rate(funded[2:3], 15)
    pool = fill(mem_chain, [parent, middle, child, high])
    selection = select_transactions(pool, 10**6)
    assert selection.transactions == (high, parent, child, middle)
    assert selection.fees == sum(fee_of(pool, t) for t in (high, parent, child, middle))
    assert selection.size == sum(t.size for t in selection.transactions)
    # Without the child, the parent is the last choice.
    lone = fill(mem_chain, [parent, middle, high])
    assert select_transactions(lone, 10**6).transactions == (high, middle, parent)


def test_included_ancestors_lift_the_remaining_package(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    # parent (2) has two children: 30 and 4. Parent + 30 go first as a package; the 4-child
    # is then judged on its own (4), above a 3 but below a 5.
    parent = at_rate(funded[:1], 2, n_out=2)
    rich, poor = (at_rate([c], r) for c, r in zip(outs(parent), (30, 4), strict=True))
    five, three = at_rate(funded[1:2], 5), at_rate(funded[2:3], 3)
    pool = fill(mem_chain, [parent, rich, poor, five, three])
    order = select_transactions(pool, 10**6).transactions
    assert order == (parent, rich, five, poor, three)


def test_a_cheap_child_drops_back_once_its_rich_parent_is_in(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    # The child's first key is its package with the parent, (50 + 1) / 2; once the parent
    # is included that key is stale and the child competes at its own rate of 1.
    parent = at_rate(funded[:1], 50)
    child = at_rate(outs(parent), 1)
    other = at_rate(funded[1:2], 10)
    pool = fill(mem_chain, [parent, child, other])
    assert select_transactions(pool, 10**6).transactions == (parent, other, child)


def test_size_budget_skips_what_does_not_fit(mem_chain: MemChain, funded: list[Spendable]) -> None:
    big = at_rate(funded[:6], 10, n_out=6)  # the best rate, but large
    small_a = at_rate(funded[6:7], 4)
    small_b = at_rate(funded[7:8], 3)
    small_c = at_rate(funded[8:9], 2)
    pool = fill(mem_chain, [big, small_a, small_b, small_c])
    budget = big.size + small_a.size - 1  # big alone fits, big + one small does not
    assert select_transactions(pool, budget).transactions == (big,)
    budget = 2 * small_a.size + small_c.size - 1  # big does not fit at all
    assert select_transactions(pool, budget).transactions == (small_a, small_b)
    assert select_transactions(pool, small_a.size - 1).transactions == ()


def test_package_that_does_not_fit_is_skipped_whole(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    parent = at_rate(funded[:1], 1)
    child = at_rate(outs(parent), 30)
    other = at_rate(funded[1:2], 2)
    pool = fill(mem_chain, [parent, child, other])
    # Room for two small transactions, but the package needs two and other one: the
    # package goes first (15.5 > 2); with room for one, only ``other`` fits.
    assert select_transactions(pool, parent.size + child.size).transactions == (parent, child)
    assert select_transactions(pool, child.size).transactions == (other,)


def test_template_respects_the_block_size(mem_chain: MemChain, funded: list[Spendable]) -> None:
    txs = [at_rate([c], 2 + n) for n, c in enumerate(funded[:20])]
    pool = fill(mem_chain, txs)
    limit = BLOCK_RESERVED_SIZE + 5 * txs[0].size
    template = create_block(
        REGTEST,
        mem_chain.parent_info(),
        PRODUCER_SECRET,
        pool,
        NOW,
        sampler=sample,
        max_block_size=limit,
    )
    assert template.block.transactions[1:] == tuple(reversed(txs))[:5]
    assert template.block.size <= limit
    mem_chain.connect(template.block)


def test_min_fee_rate_stops_selection(mem_chain: MemChain, funded: list[Spendable]) -> None:
    one, two, three = (at_rate([c], r) for c, r in zip(funded, (1, 2, 3), strict=False))
    pool = fill(mem_chain, [one, two, three])
    assert select_transactions(pool, 10**6, min_fee_rate=2_000).transactions == (three, two)
    assert select_transactions(pool, 10**6, min_fee_rate=2_001).transactions == (three,)


def test_parents_first_even_when_they_arrived_last(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    """After a reorg the re-added funding transaction is newer than its pooled children;
    the template must still put it first (ordering by ancestor count, not arrival)."""
    pool = Mempool(mem_chain, REGTEST)
    children = [at_rate([c], 50) for c in funded[:3]]
    for tx in children:
        pool.accept(tx, NOW)
    block = mem_chain.disconnect()
    funding = block.transactions[1]
    assert pool.readd_disconnected(list(block.transactions), NOW).readded == (funding,)
    sequence = {e.txid: e.sequence for e in pool.entries()}
    assert all(sequence[funding.txid] > sequence[c.txid] for c in children)
    template = create_block(
        REGTEST, mem_chain.parent_info(), PRODUCER_SECRET, pool, NOW, sampler=sample
    )
    assert template.block.transactions[1] == funding
    assert set(template.block.transactions[2:]) == set(children)
    mem_chain.connect(template.block)


def test_template_needs_the_pools_tip(mem_chain: MemChain) -> None:
    pool = Mempool(mem_chain, REGTEST)
    stale = mem_chain.parent_info()
    mem_chain.mine()
    with pytest.raises(ValueError, match="tip"):
        create_block(REGTEST, stale, PRODUCER_SECRET, pool, NOW, sampler=sample)
    with pytest.raises(ValueError, match="reserved"):
        create_block(
            REGTEST,
            mem_chain.parent_info(),
            PRODUCER_SECRET,
            pool,
            NOW,
            sampler=sample,
            max_block_size=BLOCK_RESERVED_SIZE,
        )


def test_empty_pool_gives_a_coinbase_only_block(mem_chain: MemChain) -> None:
    pool = Mempool(mem_chain, REGTEST)
    template = create_block(
        REGTEST, mem_chain.parent_info(), PRODUCER_SECRET, pool, NOW, sampler=sample
    )
    assert len(template.block.transactions) == 1 and template.fees == 0
    mem_chain.connect(template.block)  # the coinbase claims exactly the subsidy
