"""The mempool: consensus reuse, each policy rule, the size cap, RBF, orphans, chain events.

Every transaction here is real (signed with ``sign_transaction`` on REGTEST) and the chain
under the pool is a real in-memory chain (``conftest.MemChain``: ``MemoryCoins`` plus
blocks connected by ``connect_block``). Each rejection asserts the exact class and code
*and* that the pool did not change; each limit is probed on both sides of its boundary,
so a rule that fired everywhere (or nowhere) would fail a test. ``Mempool.check``
recomputes every index and package aggregate from scratch after each step.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from chain.errors import InvalidTransaction, MissingInputs, Reject, RuleError
from chain.mempool import AcceptResult, Mempool
from chain.params import REGTEST, TESTNET
from chain.policy import (
    DEFAULT_POLICY,
    FeeRate,
    PolicyConfig,
    PolicyError,
    dust_threshold,
    fee_for,
    pays,
)
from chain.producer import make_coinbase, sign_transaction
from chain.schnorr import sign
from chain.sighash import sighashes
from chain.transaction import OutPoint, Transaction, TxOut
from tests import chainbuilder
from tests.chainbuilder import ALICE, BOB, Spendable, key, outputs_of, pay
from tests.exactwork import sample

if TYPE_CHECKING:
    from tests.unit.conftest import MemChain

NOW = REGTEST.genesis_time + 10_000_000


# -- builders ---------------------------------------------------------------------------


def send(coins: Sequence[Spendable], fee: int, n_out: int = 1, to: bytes = ALICE) -> Transaction:
    """Spend ``coins`` into ``n_out`` equal outputs to ``to`` (remainder to the first)."""
    total = sum(c.amount for c in coins) - fee
    amounts = [total // n_out] * n_out
    amounts[0] += total - sum(amounts)
    return pay(coins, [TxOut(a, key(to)) for a in amounts])


def at_rate(coins: Sequence[Spendable], rate: int, n_out: int = 1) -> Transaction:
    """A transaction paying exactly ``rate`` units per byte."""
    tx = send(coins, 0, n_out)
    for _ in range(5):
        again = send(coins, rate * tx.size, n_out)
        if again.size == tx.size:
            return again
        tx = again
    raise AssertionError("size did not settle")


def outs(tx: Transaction) -> list[Spendable]:
    return outputs_of(tx, ALICE)


def make_pool(chain: MemChain, **config: Any) -> Mempool:
    return Mempool(chain, REGTEST, PolicyConfig(**config) if config else DEFAULT_POLICY)


def snapshot(pool: Mempool) -> tuple[Any, ...]:
    """Everything a rejected transaction must leave as it was."""
    return (
        tuple(
            (
                e.txid,
                e.tx.wtxid,
                e.fee,
                e.sequence,
                e.ancestor_count,
                e.ancestor_fee,
                e.descendant_count,
                e.descendant_fee,
                tuple(sorted(e.parents)),
                tuple(sorted(e.children)),
            )
            for e in pool.entries()
        ),
        pool.total_bytes,
        tuple(tx.wtxid for tx in pool.orphans.transactions()),
        pool.orphans.total_bytes,
        pool.min_fee(NOW),
        pool.min_fee(NOW + 10**6),
    )


def refuse(
    pool: Mempool, tx: Transaction, code: Reject, error: type[RuleError] = PolicyError
) -> RuleError:
    """Assert ``tx`` is refused with exactly ``error``/``code`` and nothing changed."""
    before = snapshot(pool)
    with pytest.raises(RuleError) as info:
        pool.accept(tx, NOW)
    assert type(info.value) is error, f"expected {error.__name__}, got {info.value!r}"
    assert info.value.code == code, f"expected {code.value}, got {info.value}"
    assert snapshot(pool) == before
    pool.check()
    return info.value


def admit(pool: Mempool, tx: Transaction, now: int = NOW) -> AcceptResult:
    result = pool.accept(tx, now)
    assert not result.orphan, result
    assert tx.txid in pool
    pool.check()
    return result


def resigned(tx: Transaction, coins: Sequence[Spendable]) -> Transaction:
    """The same transaction (same txid) with different, still valid, signatures."""
    messages = sighashes(tx, [c.output for c in coins], REGTEST.magic)
    return tx.with_signatures(
        [sign(c.secret, m, b"\x01" * 32) for c, m in zip(coins, messages, strict=True)]
    )


# -- policy helpers -----------------------------------------------------------------------


def test_fee_rates_compare_exactly() -> None:
    assert FeeRate(1, 3) == FeeRate(2, 6) and hash(FeeRate(1, 3)) == hash(FeeRate(2, 6))
    assert FeeRate(1, 3) < FeeRate(334, 1000) and FeeRate(333, 1000) < FeeRate(1, 3)
    assert FeeRate(-5, 1) < FeeRate(-4, 1)  # negated fees reverse the order (template heap)
    assert fee_for(1000, 157) == 157 and fee_for(1, 1) == 1 and fee_for(0, 500) == 0
    assert pays(157, 157, 1000) and not pays(156, 157, 1000)
    assert dust_threshold(3000) == 450
    with pytest.raises(ValueError):
        FeeRate(1, 0)


def test_policy_config_is_validated() -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        PolicyConfig(min_relay_fee=-1)
    with pytest.raises(ValueError, match="max_standard_tx_size"):
        PolicyConfig(max_standard_tx_size=200_000)
    with pytest.raises(ValueError, match="max_orphan_tx_size"):
        PolicyConfig(max_orphan_tx_size=10, max_orphan_bytes=5)
    with pytest.raises(ValueError, match="max_mempool_bytes"):
        PolicyConfig(max_mempool_bytes=10)


# -- acceptance ---------------------------------------------------------------------------


def test_accepts_a_valid_transfer(mem_chain: MemChain, funded: list[Spendable]) -> None:
    pool = make_pool(mem_chain)
    tx = send(funded[:2], 5_000, n_out=2)
    result = admit(pool, tx)
    assert result.accepted == (tx,) and result.replaced == () and result.evicted == ()
    entry = pool.get(tx.txid)
    assert entry is not None and entry.fee == 5_000 and entry.size == tx.size
    assert pool.get_by_wtxid(tx.wtxid) is entry
    assert pool.total_bytes == tx.size and len(pool) == 1
    assert pool.spender(funded[0].outpoint) == tx.txid
    assert pool.spender(funded[2].outpoint) is None


def test_child_of_pooled_parent_and_package_aggregates(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    parent = send(funded[:1], 1_000, n_out=2)
    child = send(outs(parent)[:1], 3_000)
    grandchild = send(outs(child), 2_000)
    for tx in (parent, child, grandchild):
        admit(pool, tx)
    p, c, g = (pool.get(t.txid) for t in (parent, child, grandchild))
    assert p is not None and c is not None and g is not None
    assert c.parents == {parent.txid} and p.children == {child.txid}
    assert (g.ancestor_count, g.ancestor_fee) == (3, 6_000)
    assert g.ancestor_size == parent.size + child.size + grandchild.size
    assert (p.descendant_count, p.descendant_fee) == (3, 6_000)
    assert c.ancestor_rate == FeeRate(4_000, parent.size + child.size)


def test_spends_mature_coinbase_but_not_a_young_one(mem_chain: MemChain) -> None:
    pool = make_pool(mem_chain)
    young = send([mem_chain.coinbase(3)], 10_000)  # 102 - 3 = 99 < 100
    refuse(pool, young, Reject.TX_PREMATURE_SPEND, InvalidTransaction)
    admit(pool, send([mem_chain.coinbase(2)], 10_000))  # exactly 100 deep at height 102


# -- rejections: consensus reused -----------------------------------------------------------


def test_consensus_failures_keep_their_codes(mem_chain: MemChain, funded: list[Spendable]) -> None:
    pool = make_pool(mem_chain)
    bad_sig = send(funded[:1], 1_000).with_signatures([b"\x01" * 64])
    refuse(pool, bad_sig, Reject.TX_SIG_INVALID, InvalidTransaction)
    wrong_key = sign_transaction(send(funded[:1], 1_000), [BOB], [funded[0].output], REGTEST)
    refuse(pool, wrong_key, Reject.TX_SIG_INVALID, InvalidTransaction)
    overspend = pay(funded[:1], [TxOut(funded[0].amount + 1, key(BOB))])
    refuse(pool, overspend, Reject.TX_IN_BELOWOUT, InvalidTransaction)
    duplicate_input = pay([funded[0], funded[0]], [TxOut(1_000_000, key(BOB))])
    refuse(pool, duplicate_input, Reject.TX_INPUTS_DUPLICATE, InvalidTransaction)
    testnet = sign_transaction(send(funded[:1], 1_000), [ALICE], [funded[0].output], TESTNET)
    refuse(pool, testnet, Reject.TX_SIG_INVALID, InvalidTransaction)
    assert len(pool) == 0


def test_spending_a_missing_output_of_a_pooled_parent(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    parent = admit(pool, send(funded[:1], 1_000)).accepted[0]
    ghost = Spendable(OutPoint(parent.txid, 5), parent.outputs[0], ALICE)
    refuse(pool, send([ghost], 1_000), Reject.TX_INPUTS_MISSING, MissingInputs)
    assert len(pool.orphans) == 0


# -- rejections: policy ---------------------------------------------------------------------


def test_coinbase_is_never_accepted(mem_chain: MemChain) -> None:
    pool = make_pool(mem_chain)
    refuse(pool, make_coinbase(102, REGTEST, key(BOB), 0), Reject.POLICY_COINBASE)


def test_standard_size_limit(mem_chain: MemChain, funded: list[Spendable]) -> None:
    tx = send(funded[:3], 10_000, n_out=10)
    refuse(make_pool(mem_chain, max_standard_tx_size=tx.size - 1), tx, Reject.POLICY_TX_SIZE)
    admit(make_pool(mem_chain, max_standard_tx_size=tx.size), tx)


def test_dust_outputs(mem_chain: MemChain, funded: list[Spendable]) -> None:
    pool = make_pool(mem_chain)
    limit = dust_threshold(DEFAULT_POLICY.dust_relay_fee)
    change = funded[0].amount - limit - 1_000
    dusty = pay(funded[:1], [TxOut(change + 1, key(ALICE)), TxOut(limit - 1, key(BOB))])
    refuse(pool, dusty, Reject.POLICY_DUST)
    refuse(
        pool, pay(funded[:1], [TxOut(0, key(BOB)), TxOut(change, key(ALICE))]), Reject.POLICY_DUST
    )
    admit(pool, pay(funded[:1], [TxOut(change, key(ALICE)), TxOut(limit, key(BOB))]))


def test_duplicates(mem_chain: MemChain, funded: list[Spendable]) -> None:
    pool = make_pool(mem_chain)
    tx = send(funded[:1], 1_000)
    admit(pool, tx)
    refuse(pool, tx, Reject.POLICY_ALREADY_IN_MEMPOOL)
    twin = resigned(tx, funded[:1])
    assert twin.txid == tx.txid and twin.wtxid != tx.wtxid
    refuse(pool, twin, Reject.POLICY_SAME_TXID_IN_MEMPOOL)


def test_confirmed_transaction_is_already_known_not_an_orphan(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    tx = send(funded[:1], 1_000)
    mem_chain.mine([tx])
    refuse(pool, tx, Reject.POLICY_ALREADY_KNOWN)
    assert len(pool.orphans) == 0


def test_min_relay_fee_boundary(mem_chain: MemChain, funded: list[Spendable]) -> None:
    pool = make_pool(mem_chain)
    size = send(funded[:1], 100).size
    short = send(funded[:1], size - 1)
    assert short.size == size
    refuse(pool, short, Reject.POLICY_MIN_RELAY_FEE)
    admit(pool, send(funded[:1], size))  # exactly 1 unit per byte


def test_chain_limits(mem_chain: MemChain, funded: list[Spendable]) -> None:
    # Ancestors: three in a row are fine, a fourth would have 4 ancestors (itself included).
    pool = make_pool(mem_chain, max_ancestors=3)
    a = admit(pool, send(funded[:1], 1_000)).accepted[0]
    b = admit(pool, send(outs(a), 1_000)).accepted[0]
    c = admit(pool, send(outs(b), 1_000)).accepted[0]
    refuse(pool, send(outs(c), 1_000), Reject.POLICY_CHAIN_TOO_LONG)
    # Descendants: a parent with two children has 3; a third child would make it 4.
    pool = make_pool(mem_chain, max_descendants=3)
    parent = admit(pool, send(funded[:1], 1_000, n_out=3)).accepted[0]
    kids = outs(parent)
    admit(pool, send(kids[:1], 1_000))
    admit(pool, send(kids[1:2], 1_000))
    refuse(pool, send(kids[2:], 1_000), Reject.POLICY_CHAIN_TOO_LONG)
    # Ancestor bytes.
    first = send(funded[5:6], 1_000)
    second = send(outs(first), 1_000)
    pool = make_pool(mem_chain, max_ancestor_size=first.size + second.size - 1)
    admit(pool, first)
    refuse(pool, second, Reject.POLICY_CHAIN_TOO_LONG)


# -- replacement (full RBF) ---------------------------------------------------------------------


def test_replacement_evicts_conflict_and_descendants(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    original = admit(pool, send(funded[:1], 1_000)).accepted[0]
    child = admit(pool, send(outs(original), 1_000)).accepted[0]
    bystander = admit(pool, send(funded[1:2], 1_000)).accepted[0]
    replacement = send(funded[:1], 2_000 + send(funded[:1], 0).size)  # pays both + own bytes
    result = admit(pool, replacement)
    assert result.replaced == (original, child)
    assert original.txid not in pool and child.txid not in pool and bystander.txid in pool
    assert pool.spender(funded[0].outpoint) == replacement.txid
    assert pool.spender(OutPoint(original.txid, 0)) is None


def test_replacement_must_beat_each_conflicts_fee_rate(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    admit(pool, at_rate(funded[:1], 10))
    bigger = send(funded[:1], 0, n_out=4)
    lower_rate = send(funded[:1], 10 * bigger.size - 1, n_out=4)  # more fee, lower rate
    assert lower_rate.size == bigger.size
    refuse(pool, lower_rate, Reject.POLICY_RBF_INSUFFICIENT_FEERATE)
    refuse(pool, at_rate(funded[:1], 10, n_out=2), Reject.POLICY_RBF_INSUFFICIENT_FEERATE)  # equal
    admit(pool, send(funded[:1], 10 * bigger.size + bigger.size, n_out=4))


def test_replacement_must_pay_for_everything_it_evicts(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    original = admit(pool, send(funded[:1], 1_000)).accepted[0]
    admit(pool, send(outs(original), 50_000))  # a rich child
    # Higher rate than the conflict, but less than the conflict and its child together.
    refuse(pool, send(funded[:1], 40_000), Reject.POLICY_RBF_INSUFFICIENT_FEE)
    size = original.size
    # More than all evicted, but short of the incremental fee for its own bytes by one.
    refuse(pool, send(funded[:1], 51_000 + size - 1), Reject.POLICY_RBF_INSUFFICIENT_FEE)
    admit(pool, send(funded[:1], 51_000 + size))


def test_replacement_may_evict_at_most_the_limit(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    def build(limit: int) -> Mempool:
        pool = make_pool(mem_chain, max_replacements=limit)
        parent = admit(pool, send(funded[:1], 1_000, n_out=3)).accepted[0]
        for coin in outs(parent):
            admit(pool, send([coin], 1_000))
        return pool

    replacement = send(funded[:1], 100_000)
    refuse(build(3), replacement, Reject.POLICY_RBF_TOO_MANY)  # parent + 3 children = 4
    assert len(admit(build(4), replacement).replaced) == 4


def test_replacement_may_not_spend_what_it_replaces(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    original = admit(pool, send(funded[:2], 1_000, n_out=2)).accepted[0]
    child = admit(pool, send(outs(original)[:1], 1_000)).accepted[0]
    # Conflicts with ``original`` on funded[1] and spends its output: directly ...
    refuse(pool, send([funded[1], outs(original)[1]], 90_000), Reject.POLICY_RBF_SPENDS_CONFLICT)
    # ... or through a descendant of it.
    refuse(pool, send([funded[1], *outs(child)], 90_000), Reject.POLICY_RBF_SPENDS_CONFLICT)


# -- the size cap ---------------------------------------------------------------------------------


def capped_pool(chain: MemChain, count: int, size: int) -> Mempool:
    return make_pool(chain, max_mempool_bytes=count * size, max_standard_tx_size=size)


def test_eviction_order_floor_and_mempool_full(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    size = at_rate(funded[:1], 2).size
    pool = capped_pool(mem_chain, 5, size)
    txs = {rate: admit(pool, at_rate([funded[rate]], rate)).accepted[0] for rate in (2, 5, 6, 7, 8)}
    assert pool.total_bytes == 5 * size and pool.min_fee(NOW) == 0
    # A better transaction evicts the cheapest, and the floor rises above it.
    result = admit(pool, at_rate([funded[10]], 10))
    assert result.evicted == (txs[2],)
    assert txs[2].txid not in pool and pool.total_bytes == 5 * size
    assert pool.min_fee(NOW) == 2_000 + DEFAULT_POLICY.incremental_relay_fee
    # Below the floor: refused before anything is tried.
    refuse(pool, at_rate([funded[20]], 2), Reject.POLICY_MEMPOOL_MIN_FEE)
    # Above the floor but below everything pooled: it would be the one evicted.
    refuse(pool, at_rate([funded[21]], 4), Reject.POLICY_MEMPOOL_FULL)
    # Equal to the cheapest: among equals the newest goes first, so still refused.
    refuse(pool, at_rate([funded[22]], 5), Reject.POLICY_MEMPOOL_FULL)
    result = admit(pool, at_rate([funded[23]], 6))
    assert result.evicted == (txs[5],)
    assert pool.min_fee(NOW) == 6_000


def test_eviction_ties_take_the_newest(mem_chain: MemChain, funded: list[Spendable]) -> None:
    size = at_rate(funded[:1], 3).size
    pool = capped_pool(mem_chain, 3, size)
    first, second, third = (admit(pool, at_rate([funded[n]], 3)).accepted[0] for n in range(3))
    assert admit(pool, at_rate([funded[3]], 9)).evicted == (third,)
    assert first.txid in pool and second.txid in pool


def test_eviction_by_descendant_package_protects_cpfp(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    size = at_rate(funded[:1], 1).size
    pool = capped_pool(mem_chain, 4, size)
    parent = admit(pool, at_rate(funded[:1], 1)).accepted[0]  # cheapest on its own ...
    child = admit(pool, at_rate(outs(parent), 20)).accepted[0]  # ... but its child pays
    five = admit(pool, at_rate(funded[1:2], 5)).accepted[0]
    six = admit(pool, at_rate(funded[2:3], 6)).accepted[0]
    # Alone the parent (1/byte) is the cheapest, but its package scores (1 + 20) / 2.
    assert admit(pool, at_rate(funded[3:4], 12)).evicted == (five,)
    assert admit(pool, at_rate(funded[4:5], 15)).evicted == (six,)
    assert parent.txid in pool and child.txid in pool
    # Now the package is the cheapest, and it goes as a whole, descendants included.
    assert admit(pool, at_rate(funded[5:6], 16)).evicted == (parent, child)
    assert pool.min_fee(NOW) == 10_500 + DEFAULT_POLICY.incremental_relay_fee


def test_full_pool_refuses_a_child_whose_parent_would_be_evicted(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    size = at_rate(funded[:1], 1).size
    pool = capped_pool(mem_chain, 3, size)
    parent = admit(pool, at_rate(funded[:1], 1)).accepted[0]
    admit(pool, at_rate(funded[1:2], 10))
    admit(pool, at_rate(funded[2:3], 11))
    # The child's own rate (2) is fine, but the cheapest package is parent + child (1.5).
    refuse(pool, at_rate(outs(parent), 2), Reject.POLICY_MEMPOOL_FULL)
    assert pool.min_fee(NOW) == 0  # the rolled-back eviction did not raise the floor


def test_rolling_floor_decays_only_after_a_block(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    size = at_rate(funded[:1], 2).size
    pool = capped_pool(mem_chain, 2, size)
    admit(pool, at_rate(funded[:1], 2))
    admit(pool, at_rate(funded[1:2], 4))
    admit(pool, at_rate(funded[2:3], 5))
    halflife = DEFAULT_POLICY.rolling_fee_halflife
    assert pool.min_fee(NOW) == 3_000
    assert pool.min_fee(NOW + 100 * halflife) == 3_000  # no block yet: the floor holds
    later = NOW + 1_000
    pool.remove_for_block(mem_chain.mine(), later)
    assert pool.min_fee(later + halflife - 1) == 3_000
    assert pool.min_fee(later + halflife) == 1_500  # the pool is full: the full half-life
    assert pool.min_fee(later + 2 * halflife) == 1_000  # 750 < incremental: raised to it
    assert pool.min_fee(later + 3 * halflife) == 0  # 375 < incremental / 2: gone


# -- orphans -------------------------------------------------------------------------------------


def test_orphans_wait_for_parents_and_resolve_in_order(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    parent = send(funded[:1], 1_000)
    child = send(outs(parent), 1_000)
    grandchild = send(outs(child), 1_000)
    r = pool.accept(grandchild, NOW)
    assert r.orphan and r.missing_parents == (child.txid,) and r.accepted == ()
    assert pool.accept(child, NOW).missing_parents == (parent.txid,)
    assert pool.accept(child, NOW).orphan  # again: still an orphan, stored once
    assert len(pool) == 0 and len(pool.orphans) == 2
    pool.check()
    result = admit(pool, parent)
    assert result.accepted == (parent, child, grandchild)
    assert len(pool.orphans) == 0 and pool.orphans.total_bytes == 0
    pool.check()


def test_orphan_with_two_missing_parents(mem_chain: MemChain, funded: list[Spendable]) -> None:
    pool = make_pool(mem_chain)
    mom, dad = send(funded[:1], 1_000), send(funded[1:2], 1_000)
    kid = send([*outs(mom), *outs(dad)], 1_000)
    assert pool.accept(kid, NOW).missing_parents == (mom.txid, dad.txid)
    assert admit(pool, mom).accepted == (mom,)  # still waiting for dad
    assert kid.wtxid in pool.orphans
    pool.check()
    assert admit(pool, dad).accepted == (dad, kid)


def test_invalid_orphan_is_dropped_when_its_parent_arrives(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    parent = send(funded[:1], 1_000)
    forged = sign_transaction(send(outs(parent), 1_000), [BOB], [parent.outputs[0]], REGTEST)
    cheap = send(outs(parent), 1)
    assert pool.accept(forged, NOW).orphan and pool.accept(cheap, NOW).orphan
    assert admit(pool, parent).accepted == (parent,)
    assert len(pool.orphans) == 0 and len(pool) == 1


def test_orphan_pool_bounds(mem_chain: MemChain, funded: list[Spendable]) -> None:
    parents = [send([c], 1_000) for c in funded[:5]]
    orphans = [send(outs(p), 1_000) for p in parents]
    size = orphans[0].size
    # Count: the fourth evicts the oldest.
    pool = make_pool(mem_chain, max_orphans=3)
    for o in orphans[:4]:
        assert pool.accept(o, NOW).orphan
    assert pool.orphans.transactions() == orphans[1:4]
    pool.check()
    # Bytes: room for two and a half.
    pool = make_pool(mem_chain, max_orphan_bytes=size * 5 // 2, max_orphan_tx_size=size)
    for o in orphans[:3]:
        pool.accept(o, NOW)
    assert pool.orphans.transactions() == orphans[1:3]
    assert pool.orphans.total_bytes == 2 * size
    # Per orphan: one byte over the cap is not kept at all.
    pool = make_pool(mem_chain, max_orphan_tx_size=size - 1)
    refuse(pool, orphans[0], Reject.POLICY_ORPHAN_TOO_LARGE)
    assert len(pool.orphans) == 0
    # The evicted orphan is really gone: its parent no longer brings it in.
    pool = make_pool(mem_chain, max_orphans=1)
    pool.accept(orphans[0], NOW)
    pool.accept(orphans[1], NOW)
    assert admit(pool, parents[0]).accepted == (parents[0],)
    assert admit(pool, parents[1]).accepted == (parents[1], orphans[1])


def test_orphans_expire(mem_chain: MemChain, funded: list[Spendable]) -> None:
    pool = make_pool(mem_chain)
    first = send(outs(send(funded[:1], 1_000)), 1_000)
    second = send(outs(send(funded[1:2], 1_000)), 1_000)
    pool.accept(first, NOW)
    expiry = DEFAULT_POLICY.orphan_expiry
    pool.accept(second, NOW + expiry - 1)
    assert len(pool.orphans) == 2
    pool.expire(NOW + expiry)
    assert pool.orphans.transactions() == [second]
    third = send(outs(send(funded[2:3], 1_000)), 1_000)
    pool.accept(third, NOW + 2 * expiry)  # adding sweeps the expired too
    assert pool.orphans.transactions() == [third]
    pool.check()


# -- chain events ---------------------------------------------------------------------------------


def test_remove_for_block_confirms_and_removes_conflicts(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    a = admit(pool, send(funded[:1], 1_000)).accepted[0]
    a_child = admit(pool, send(outs(a), 1_000)).accepted[0]
    b = admit(pool, send(funded[1:2], 1_000)).accepted[0]
    b_child = admit(pool, send(outs(b), 1_000)).accepted[0]
    keep = admit(pool, send(funded[2:3], 1_000)).accepted[0]
    rival = send(funded[1:2], 7)  # double-spends b; valid in a block, whatever policy says
    orphan_parent = send(funded[3:4], 1_000)
    resolved = send(outs(orphan_parent), 1_000)
    doomed_orphan = send([funded[1], *outs(send(funded[4:5], 1_000))], 1_000)
    assert pool.accept(resolved, NOW).orphan and pool.accept(doomed_orphan, NOW).orphan
    block = mem_chain.mine([a, rival, orphan_parent])
    result = pool.remove_for_block(block, NOW)
    assert result.confirmed == (a,)
    assert result.conflicts == (b, b_child)
    assert result.orphans_removed == (doomed_orphan,)
    assert result.resolved == (resolved,)
    assert set(e.txid for e in pool.entries()) == {a_child.txid, keep.txid, resolved.txid}
    entry = pool.get(a_child.txid)
    assert entry is not None and entry.parents == set() and entry.ancestor_count == 1
    pool.check()


def test_readd_after_disconnect_relinks_children(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    young = mem_chain.coinbase(2)  # mature at 102, immature at 101 once block 101 is gone
    spends_young = admit(pool, send([young], 10_000)).accepted[0]
    child = admit(pool, send(funded[:1], 1_000)).accepted[0]  # spends the funding tx's output
    grandchild = admit(pool, send(outs(child), 1_000)).accepted[0]
    funding_block = mem_chain.disconnect()
    funding = funding_block.transactions[1]
    result = pool.readd_disconnected(list(funding_block.transactions), NOW)
    assert result.readded == (funding,) and result.dropped == ()
    assert result.invalidated == (spends_young,)
    readded = pool.get(funding.txid)
    assert readded is not None and readded.children == {child.txid}
    entry = pool.get(child.txid)
    assert entry is not None and entry.parents == {funding.txid} and entry.ancestor_count == 2
    g = pool.get(grandchild.txid)
    assert g is not None and g.ancestor_count == 3
    pool.check()


def test_reorg_drops_what_the_new_chain_double_spends(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    old = send(funded[:1], 1_000)
    kept = send(funded[1:2], 1_000)
    old_block = mem_chain.mine([old, kept])
    pool.remove_for_block(old_block, NOW)
    child = admit(pool, send(outs(old), 1_000)).accepted[0]
    # Reorg: block 102 is replaced by one that spends funded[0] differently.
    mem_chain.disconnect()
    new_block = mem_chain.mine([send(funded[:1], 2_000, to=BOB)])
    removed = pool.remove_for_block(new_block, NOW)
    assert removed.conflicts == ()  # nothing pooled spends funded[0] any more
    result = pool.readd_disconnected(list(old_block.transactions), NOW)
    assert result.readded == (kept,)
    assert [(tx, exc.code) for tx, exc in result.dropped] == [(old, Reject.TX_INPUTS_MISSING)]
    assert result.invalidated == (child,)
    assert [e.txid for e in pool.entries()] == [kept.txid]
    assert len(pool.orphans) == 0  # a dropped re-add is never orphaned
    pool.check()


def test_readd_skips_what_the_new_chain_already_has(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    pool = make_pool(mem_chain)
    tx = send(funded[:1], 1_000)
    block = mem_chain.mine([tx])
    mem_chain.disconnect()
    mem_chain.mine([tx, send(funded[1:2], 1_000)])  # the other branch has it too
    result = pool.readd_disconnected(list(block.transactions), NOW)
    assert [(t, exc.code) for t, exc in result.dropped] == [(tx, Reject.POLICY_ALREADY_KNOWN)]
    assert len(pool) == 0


def test_readd_bypasses_fee_floors_then_applies_the_cap(
    mem_chain: MemChain, funded: list[Spendable]
) -> None:
    cheap = send(funded[:1], 7)  # far below the minimum relay fee: fine in a block
    block = mem_chain.mine([cheap])
    size = at_rate(funded[1:2], 5).size
    roomy = make_pool(mem_chain)
    full = capped_pool(mem_chain, 2, size)
    for p in (roomy, full):
        admit(p, at_rate(funded[1:2], 5))
        admit(p, at_rate(funded[2:3], 6))
    mem_chain.disconnect()
    result = roomy.readd_disconnected(list(block.transactions), NOW)
    assert result.readded == (cheap,) and result.evicted == ()
    assert cheap.txid in roomy
    roomy.check()
    # With the pool full, it is re-admitted first and only then trimmed as the cheapest.
    result = full.readd_disconnected(list(block.transactions), NOW)
    assert result.readded == (cheap,) and result.evicted == (cheap,)
    assert cheap.txid not in full and len(full) == 2
    full.check()


def test_expire_old_entries_with_descendants(mem_chain: MemChain, funded: list[Spendable]) -> None:
    pool = make_pool(mem_chain)
    old = admit(pool, send(funded[:1], 1_000), now=NOW).accepted[0]
    young_child = admit(pool, send(outs(old), 1_000), now=NOW + 10).accepted[0]
    fresh = admit(pool, send(funded[1:2], 1_000), now=NOW + 10).accepted[0]
    expiry = DEFAULT_POLICY.mempool_expiry
    assert pool.expire(NOW + expiry) == []
    assert pool.expire(NOW + expiry + 1) == [old, young_child]
    assert [e.txid for e in pool.entries()] == [fresh.txid]
    pool.check()


# -- everything at once ------------------------------------------------------------------------


def test_random_operations_keep_every_invariant(mem_chain: MemChain) -> None:
    """Random spends, double-spends, chains, orphans, blocks, rival blocks and reorgs over a
    small capped pool. After every step the pool's indexes and aggregates match a
    recomputation from scratch, the cap holds, and every block built from the pool
    connects. The counters at the end make sure each path was really taken."""
    from chain.template import BLOCK_RESERVED_SIZE, create_block

    rng = random.Random(7)
    cap = 4_000
    pool = make_pool(mem_chain, max_mempool_bytes=cap, max_standard_tx_size=2_000, max_orphans=5)
    alice = key(ALICE)
    seen: Counter[str] = Counter()
    now = NOW
    for _ in range(400):
        now += 10
        roll = rng.random()
        if roll < 0.05:
            # Room for about two transactions, for about eight, or for everything.
            size = BLOCK_RESERVED_SIZE + rng.choice([600, 2_000, 1_000_000])
            template = create_block(
                REGTEST,
                mem_chain.parent_info(),
                b"\x07" * 32,
                pool,
                now,
                sampler=sample,
                max_block_size=size,
            )
            mem_chain.connect(template.block)  # raises if the template were invalid
            result = pool.remove_for_block(template.block, now)
            assert len(result.confirmed) == len(template.block.transactions) - 1
            seen["template-tx"] += len(result.confirmed)
        elif roll < 0.07:
            chain_spends = [
                i.prevout for e in pool.entries() for i in e.tx.inputs if i.prevout.txid not in pool
            ]
            if not chain_spends:
                continue
            prevout = rng.choice(chain_spends)
            coin = mem_chain.get_coin(prevout)
            assert coin is not None
            rival = send([Spendable(prevout, coin.output, ALICE)], 500, to=BOB)
            result = pool.remove_for_block(mem_chain.mine([rival]), now)
            assert result.conflicts
            seen["conflicts"] += len(result.conflicts)
        elif roll < 0.10 and mem_chain.height > 104:
            gone = [mem_chain.disconnect() for _ in range(rng.choice([1, 2]))]
            if rng.random() < 0.5:
                pool.remove_for_block(mem_chain.mine(), now)
            txs = [tx for block in reversed(gone) for tx in block.transactions]
            readd = pool.readd_disconnected(txs, now)
            seen["readded"] += len(readd.readded)
            seen["invalidated"] += len(readd.invalidated)
        else:
            chain_coins = [
                Spendable(op, coin.output, ALICE)
                for op, coin in mem_chain.coins.coins.items()
                if coin.pubkey == alice
            ]
            pooled = [
                Spendable(OutPoint(e.txid, n), out, ALICE)
                for e in pool.entries()
                for n, out in enumerate(e.tx.outputs)
                if pool.spender(OutPoint(e.txid, n)) is None
            ]
            candidates = chain_coins + pooled
            picked = rng.sample(candidates, k=min(len(candidates), rng.choice([1, 1, 2])))
            if not picked:
                continue
            tx = send(picked, rng.randrange(200, 6_000), n_out=rng.choice([1, 2]))
            if rng.random() < 0.1:  # sometimes a child arrives before its parent
                with contextlib.suppress(RuleError):
                    seen["orphans"] += pool.accept(send(outs(tx)[:1], 1_000), now).orphan
            try:
                result = pool.accept(tx, now)
            except RuleError as exc:
                seen[exc.code.value] += 1
            else:
                seen["accepted"] += 1
                seen["replaced"] += len(result.replaced)
                seen["evicted"] += len(result.evicted)
                seen["resolved"] += len(result.accepted) - 1
        pool.check()
        assert pool.total_bytes <= cap
    for what in (
        "accepted",
        "template-tx",
        "conflicts",
        "readded",
        "orphans",
        "resolved",
        "replaced",
        "evicted",
        Reject.POLICY_MEMPOOL_MIN_FEE.value,
        Reject.POLICY_RBF_INSUFFICIENT_FEE.value,
    ):
        assert seen[what] > 0, f"the random walk never took the {what!r} path: {seen}"


def test_the_leveldb_chainstate_is_a_chain_tip(tmp_path: Path) -> None:
    """The same pool over the real chainstate: accept, template, connect, remove."""
    from chain.template import create_block

    base = chainbuilder.build_base_chain(tmp_path / "base")
    node = chainbuilder.open_copy(base, tmp_path / "node")
    try:
        pool = Mempool(node.cs, REGTEST)
        parent = admit(pool, send(base.alice[:2], 1_000, n_out=2))
        child = admit(pool, send(outs(parent.accepted[0])[:1], 5_000))
        young = send([base.coinbases[12]], 10_000)  # one block short of maturity
        refuse(pool, young, Reject.TX_PREMATURE_SPEND, InvalidTransaction)
        info = node.cs.parent_info(node.tip_hash)
        template = create_block(
            REGTEST, info, chainbuilder.PRODUCER, pool, info.time + 200, sampler=sample
        )
        assert template.fees == 6_000
        update = node.submit(template.block)
        for block in update.connected:
            pool.remove_for_block(block, NOW)
        assert len(pool) == 0 and node.cs.height == chainbuilder.BASE_HEIGHT + 1
        assert child.accepted[0].txid in {tx.txid for tx in template.block.transactions}
        admit(pool, young)  # the new tip made it mature
    finally:
        node.close()
