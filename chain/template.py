"""Block templates: which pooled transactions a producer puts in its next block.

A producer wants the most fees for the bytes it has. Judging each transaction by its own
fee rate would be wrong twice over: a child cannot go in without its unconfirmed parents,
and a cheap parent with a generous child (child pays for parent, CPFP) is worth more
than either alone. So, as Bitcoin Core's ``BlockAssembler`` does, we rank *ancestor
packages*: a transaction together with its not-yet-selected in-pool ancestors, by the
package's total fee over its total size. Repeatedly:

1. take the package with the highest ancestor fee rate (ties: earliest arrival);
2. if it fits the remaining size budget, append it, ancestors first (ordering by
   ancestor count is topological: an ancestor always has fewer ancestors than its
   descendant), else skip it and try the next;
3. re-rank the descendants of what was just included, since part of their package is
   now paid for.

Rates are compared exactly (``policy.FeeRate``, cross-multiplied). Selection stops when
the best remaining package pays less than ``min_fee_rate``, or when the block is nearly
full and a long run of packages has failed to fit. The result is in a valid order by
construction: parents before children, every input either in the chain or earlier in
the block. ``create_block`` then hands the list to ``producer.assemble_block``, which
builds the coinbase (subsidy plus exactly these fees), the Merkle root, the winning
draw and the signature. Reads the pool; changes nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from chain.block import MAX_BLOCK_SIZE, Block
from chain.contextual import ParentInfo
from chain.lottery import LotteryJob, Sampler
from chain.mempool import Mempool, MempoolEntry
from chain.params import ChainParams
from chain.policy import FeeRate, pays
from chain.producer import assemble_block, make_coinbase
from chain.schnorr import pubkey_of
from chain.transaction import Transaction

# Bytes kept free for everything but pooled transactions: the header (under 1,300 bytes),
# the coinbase (under 200 with 100 bytes of extra data) and the block's array framing.
BLOCK_RESERVED_SIZE = 1_600
MAX_CONSECUTIVE_FAILURES = 1_000  # as Core: give up after this many misfits ...
NEARLY_FULL = 4_000  # ... once fewer than this many bytes are left


class Selection(NamedTuple):
    transactions: tuple[Transaction, ...]  # in block order
    fees: int
    size: int  # sum of encoded sizes


class BlockTemplate(NamedTuple):
    block: Block
    fees: int  # what the coinbase claims on top of the subsidy


def _unselected_ancestors(
    txid: bytes, entries: dict[bytes, MempoolEntry], selected: dict[bytes, None]
) -> set[bytes]:
    package = {txid}
    stack = [txid]
    while stack:
        for parent in entries[stack.pop()].parents:
            if parent not in package and parent not in selected:
                package.add(parent)
                stack.append(parent)
    return package


def _unselected_descendants(
    roots: Iterable[bytes], entries: dict[bytes, MempoolEntry], selected: dict[bytes, None]
) -> set[bytes]:
    found: set[bytes] = set()
    stack = list(roots)
    while stack:
        for child in entries[stack.pop()].children:
            if child not in found and child not in selected:
                found.add(child)
                stack.append(child)
    return found


def select_transactions(pool: Mempool, max_size: int, min_fee_rate: int = 0) -> Selection:
    """Pick transactions from ``pool`` by ancestor-package fee rate within ``max_size``
    bytes; ``min_fee_rate`` (units per 1,000 bytes) is the least a package must pay."""
    entries = {e.txid: e for e in pool.entries()}
    selected: dict[bytes, None] = {}
    chosen: list[Transaction] = []
    # Max-heap through negated fees: FeeRate(-f, s) orders the reverse of FeeRate(f, s).
    heap = [(FeeRate(-e.ancestor_fee, e.ancestor_size), e.sequence, t) for t, e in entries.items()]
    heapq.heapify(heap)
    size = fees = failures = 0
    while heap:
        key, _, txid = heapq.heappop(heap)
        if txid in selected:
            continue
        package = _unselected_ancestors(txid, entries, selected)
        package_fee = sum(entries[t].fee for t in package)
        package_size = sum(entries[t].size for t in package)
        if FeeRate(-package_fee, package_size) != key:
            continue  # stale: an ancestor went in since; a fresh key is queued
        if not pays(package_fee, package_size, min_fee_rate):
            break  # everything left pays less
        if size + package_size > max_size:
            failures += 1
            if failures >= MAX_CONSECUTIVE_FAILURES and size > max_size - NEARLY_FULL:
                break
            continue
        failures = 0
        for t in sorted(package, key=lambda t: (entries[t].ancestor_count, entries[t].sequence)):
            selected[t] = None
            chosen.append(entries[t].tx)
        size += package_size
        fees += package_fee
        for t in sorted(
            _unselected_descendants(package, entries, selected), key=lambda t: entries[t].sequence
        ):
            rest = _unselected_ancestors(t, entries, selected)
            rest_fee = sum(entries[r].fee for r in rest)
            rest_size = sum(entries[r].size for r in rest)
            heapq.heappush(heap, (FeeRate(-rest_fee, rest_size), entries[t].sequence, t))
    return Selection(tuple(chosen), fees, size)


class Contents(NamedTuple):
    """What a block on a parent carries: its transactions (coinbase first) and fees."""

    transactions: tuple[Transaction, ...]
    fees: int


def block_contents(
    params: ChainParams,
    parent: ParentInfo,
    pool: Mempool,
    pay_to: bytes,
    *,
    max_block_size: int = MAX_BLOCK_SIZE,
    min_fee_rate: int = 0,
) -> Contents:
    """The best transactions of ``pool`` for a block on ``parent`` (which must be the
    pool's tip) and a coinbase claiming the subsidy plus their fees for ``pay_to``."""
    if parent.height != pool.tip.height:
        raise ValueError(f"parent height {parent.height} is not the pool's tip {pool.tip.height}")
    if max_block_size <= BLOCK_RESERVED_SIZE:
        raise ValueError(f"max_block_size must exceed the {BLOCK_RESERVED_SIZE} reserved bytes")
    selection = select_transactions(pool, max_block_size - BLOCK_RESERVED_SIZE, min_fee_rate)
    coinbase = make_coinbase(parent.height + 1, params, pay_to, selection.fees)
    return Contents((coinbase, *selection.transactions), selection.fees)


def create_block(
    params: ChainParams,
    parent: ParentInfo,
    producer_secret: bytes,
    pool: Mempool,
    time: int,
    *,
    sampler: Sampler,
    jobs: Sequence[LotteryJob] | None = None,
    max_block_size: int = MAX_BLOCK_SIZE,
    pay_to: bytes | None = None,
    min_fee_rate: int = 0,
) -> BlockTemplate:
    """A signed block on ``parent`` (which must be the pool's tip) carrying the best
    transactions of ``pool`` and a coinbase claiming the subsidy plus their fees, its
    draw won with ``sampler`` over the lottery ``jobs`` admitted up to ``parent``."""
    contents = block_contents(
        params,
        parent,
        pool,
        pay_to or pubkey_of(producer_secret),
        max_block_size=max_block_size,
        min_fee_rate=min_fee_rate,
    )
    block = assemble_block(
        params,
        parent,
        producer_secret,
        contents.transactions[1:],
        time,
        coinbase=contents.transactions[0],
        sampler=sampler,
        jobs=jobs,
    )
    if block.size > max_block_size:  # the reserve covers header and coinbase; never expected
        raise RuntimeError(f"template of {block.size} bytes exceeds {max_block_size}")
    return BlockTemplate(block, contents.fees)
