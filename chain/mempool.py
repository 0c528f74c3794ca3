"""The mempool: valid, unconfirmed transactions waiting for a block, and their orphans.

A transaction enters through :meth:`Mempool.accept`, which runs *consensus first* and then
this node's policy (``chain/policy.py``):

1. ``check_transaction`` (the same context-free rules a block applies), then
   ``check_standard`` (no coinbase, standard size, no dust) and duplicate checks.
2. Inputs are looked up in a view made of the chain tip's coins plus the outputs of
   transactions already in the pool. Any input found nowhere makes the transaction an
   *orphan*: not invalid, just early (its parent may be on its way), so it waits in a
   small, bounded :class:`OrphanPool` and is retried when a parent arrives.
3. ``check_tx_inputs`` with spend height = tip height + 1 (the height of the block that
   could first include it), exactly as block connection does, so a transaction means the
   same thing in both. Then fee-rate floors, replacement rules, package limits, and last
   ``check_tx_signatures``: the most expensive check runs only for transactions that
   would otherwise be kept, so junk cannot make us burn CPU.
4. Only then does anything change; and if the pool turns out to be too full for the new
   transaction, every change is rolled back. A rejected transaction changes nothing.

**Packages.** Transactions in the pool form a graph (a child spends a parent's output).
Each entry caches the fee and size of its ancestor set and of its descendant set (each
including itself). Miners take a transaction together with its unconfirmed ancestors, so
the *ancestor* fee rate orders the block template (``chain/template.py``), which is what
makes child-pays-for-parent work. Evicting a transaction evicts its descendants too, so
the *descendant* fee rate (or the entry's own, when higher) orders eviction. Bounded chains
(25 ancestors or descendants, 101 kB) keep every graph walk small.

**Size cap.** The pool holds at most ``max_mempool_bytes`` of encoded transactions. When
a new one overflows it, the lowest-scoring packages are evicted (newest first among
equals) until it fits; if the newcomer itself, or one of its ancestors, would be evicted,
it is refused with ``mempool-full`` instead. Each eviction raises a *rolling floor* to the
evicted package's rate plus the incremental relay fee, so the next transaction must beat
what was just thrown out (Bitcoin Core's ``rollingMinimumFeeRate``). The simple version
here: the floor holds until a block arrives, then halves every ``rolling_fee_halflife``
seconds (faster while the pool is under half or a quarter full) in whole steps, and
drops to zero once below half the incremental fee. Time enters only as ``now``.

**Replacement (full RBF, no signalling).** A transaction that spends an outpoint already
spent in the pool replaces the spenders if it pays a strictly higher fee rate than each
direct conflict, more absolute fee than everything it evicts (conflicts and their
descendants) plus the incremental relay fee for its own bytes, evicts at most 100
transactions, and spends no output of a transaction it replaces. Otherwise anyone could
make the network relay unbounded traffic for a single fee.

**Chain events.** :meth:`remove_for_block` drops a connected block's transactions, every
transaction that double-spends them (with descendants) and orphans they conflict with.
:meth:`readd_disconnected` puts the transactions of disconnected blocks back after a
reorganisation, in block order, then drops pool entries whose inputs vanished or whose
coinbase inputs are no longer mature at the new tip.

The pool talks to the chain only through :class:`ChainTip` (a height and ``get_coin``), so
the LevelDB chainstate and an in-memory coin set serve equally. Iteration never depends
on set order (Python randomises hashing of bytes): anything ordered is ordered by arrival
sequence. No clock reads, no floats, no randomness.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chain.block import Block
from chain.checks import check_transaction
from chain.coins import Coin
from chain.contextual import check_tx_inputs, check_tx_signatures
from chain.errors import MissingInputs, Reject, RuleError
from chain.hashing import tagged_hash
from chain.jobs import TAG_JOB
from chain.lottery import check_job_submit
from chain.params import ChainParams
from chain.policy import (
    DEFAULT_POLICY,
    FeeRate,
    PolicyConfig,
    PolicyError,
    check_standard,
    fee_for,
    pays,
)
from chain.transaction import OutPoint, Transaction, TxKind


def submitted_job_id(tx: Transaction) -> bytes | None:
    """The lottery job a (shape-checked) job-submit admits, or None for other kinds."""
    if tx.kind != TxKind.JOB_SUBMIT:
        return None
    return tagged_hash(TAG_JOB, tx.payload[0])


class ChainTip(Protocol):
    """All the mempool needs of the chain: the tip's height, its unspent coins, and the
    lottery jobs admitted so far (a job-submit for one of them could never confirm)."""

    @property
    def height(self) -> int: ...

    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...

    def known_job_ids(self) -> Container[bytes]: ...


@dataclass(eq=False)
class MempoolEntry:
    """One pooled transaction, its fee, and cached aggregates over its package.

    ``parents``/``children`` hold txids of in-pool transactions only. Ancestor and
    descendant aggregates include the entry itself.
    """

    tx: Transaction
    fee: int
    size: int
    time: int  # ``now`` when it entered the pool (for expiry)
    sequence: int  # arrival order: the tie-breaker everywhere
    parents: set[bytes] = field(default_factory=set)
    children: set[bytes] = field(default_factory=set)
    ancestor_count: int = 1
    ancestor_size: int = 0
    ancestor_fee: int = 0
    descendant_count: int = 1
    descendant_size: int = 0
    descendant_fee: int = 0

    @property
    def txid(self) -> bytes:
        return self.tx.txid

    @property
    def fee_rate(self) -> FeeRate:
        return FeeRate(self.fee, self.size)

    @property
    def ancestor_rate(self) -> FeeRate:
        """What a miner earns per byte by including this entry with its ancestors."""
        return FeeRate(self.ancestor_fee, self.ancestor_size)

    @property
    def descendant_score(self) -> FeeRate:
        """Eviction order: the better of its own rate and its descendant package's, so a
        high-paying parent is not thrown out because of a cheap child (as Core does)."""
        own, package = self.fee_rate, FeeRate(self.descendant_fee, self.descendant_size)
        return own if own > package else package


@dataclass(frozen=True)
class AcceptResult:
    """What :meth:`Mempool.accept` did with a transaction that was not rejected.

    ``accepted`` lists what entered the pool, in order: the transaction itself (unless it
    became an orphan), then any orphans it made valid. That is what to relay.
    """

    txid: bytes
    orphan: bool  # kept in the orphan pool, waiting for ``missing_parents``
    missing_parents: tuple[bytes, ...]
    accepted: tuple[Transaction, ...]
    replaced: tuple[Transaction, ...]  # evicted by replacement (RBF)
    evicted: tuple[Transaction, ...]  # evicted to respect the size cap


@dataclass(frozen=True)
class BlockRemoval:
    """What :meth:`Mempool.remove_for_block` removed, and what it let in."""

    confirmed: tuple[Transaction, ...]  # pool transactions the block includes
    conflicts: tuple[Transaction, ...]  # double-spends of the block and their descendants
    orphans_removed: tuple[Transaction, ...]  # orphans in, conflicting with, or expired
    resolved: tuple[Transaction, ...]  # orphans accepted now that their parents confirmed
    evicted: tuple[Transaction, ...]  # replaced or evicted for room by those orphans


@dataclass(frozen=True)
class ReaddResult:
    """What :meth:`Mempool.readd_disconnected` did after a reorganisation."""

    readded: tuple[Transaction, ...]
    dropped: tuple[tuple[Transaction, RuleError], ...]  # no longer valid (or already known)
    invalidated: tuple[Transaction, ...]  # pool entries whose inputs vanished or are immature
    evicted: tuple[Transaction, ...]  # evicted to respect the size cap afterwards
    resolved: tuple[Transaction, ...]  # orphans whose parents came back


@dataclass
class _Changes:
    replaced: list[Transaction] = field(default_factory=list)
    evicted: list[Transaction] = field(default_factory=list)


class _MissingParents(Exception):
    """Internal: inputs found neither in the chain nor in the pool."""

    def __init__(self, parents: tuple[bytes, ...]) -> None:
        super().__init__(f"missing parents {[p.hex()[:16] for p in parents]}")
        self.parents = parents


@dataclass(eq=False)
class Orphan:
    tx: Transaction
    missing: tuple[bytes, ...]  # parent txids still unknown when last tried
    sequence: int
    expires: int  # removed once ``now >= expires``


class OrphanPool:
    """Transactions whose parents we have not seen, bounded in count, bytes, size and age.

    A peer can fabricate orphans for free (their inputs cannot be checked), so they are
    never relayed, never trusted, and kept only in a small FIFO: when full, the oldest
    goes. Deterministic eviction is enough here because every orphan costs its sender
    nothing anyway; bounding memory is the point.
    """

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self._orphans: dict[bytes, Orphan] = {}  # wtxid -> orphan, oldest first
        self._by_parent: dict[bytes, dict[bytes, None]] = {}  # missing txid -> wtxids
        self._by_outpoint: dict[OutPoint, dict[bytes, None]] = {}  # spent outpoint -> wtxids
        self._bytes = 0
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._orphans)

    def __contains__(self, wtxid: object) -> bool:
        return wtxid in self._orphans

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def get(self, wtxid: bytes) -> Orphan | None:
        return self._orphans.get(wtxid)

    def transactions(self) -> list[Transaction]:
        """Oldest first."""
        return [o.tx for o in self._orphans.values()]

    def waiting_for(self, parent: bytes) -> list[bytes]:
        """Wtxids of orphans missing ``parent``, oldest first."""
        return list(self._by_parent.get(parent, ()))

    def add(self, tx: Transaction, missing: tuple[bytes, ...], now: int) -> list[Transaction]:
        """Keep ``tx`` until ``now + orphan_expiry``; returns the orphans dropped for room.

        A transaction larger than ``max_orphan_tx_size`` is refused outright: with its
        parents unknown we cannot even tell whether it pays a fee.
        """
        size = tx.size
        if size > self.config.max_orphan_tx_size:
            raise PolicyError(
                Reject.POLICY_ORPHAN_TOO_LARGE, f"{size} bytes > {self.config.max_orphan_tx_size}"
            )
        wtxid = tx.wtxid
        if wtxid in self._orphans:
            return []
        dropped = self.expire(now)
        while self._orphans and (
            len(self._orphans) >= self.config.max_orphans
            or self._bytes + size > self.config.max_orphan_bytes
        ):
            oldest = next(iter(self._orphans))
            removed = self.remove(oldest)
            assert removed is not None
            dropped.append(removed.tx)
        if self.config.max_orphans == 0:
            return dropped
        self._sequence += 1
        self._orphans[wtxid] = Orphan(tx, missing, self._sequence, now + self.config.orphan_expiry)
        self._bytes += size
        for parent in missing:
            self._by_parent.setdefault(parent, {})[wtxid] = None
        for txin in tx.inputs:
            self._by_outpoint.setdefault(txin.prevout, {})[wtxid] = None
        return dropped

    def set_missing(self, wtxid: bytes, missing: tuple[bytes, ...]) -> None:
        """Re-index an orphan that was retried and still lacks ``missing``."""
        orphan = self._orphans[wtxid]
        self._unindex_parents(wtxid, orphan.missing)
        orphan.missing = missing
        for parent in missing:
            self._by_parent.setdefault(parent, {})[wtxid] = None

    def remove(self, wtxid: bytes) -> Orphan | None:
        orphan = self._orphans.pop(wtxid, None)
        if orphan is None:
            return None
        self._bytes -= orphan.tx.size
        self._unindex_parents(wtxid, orphan.missing)
        for txin in orphan.tx.inputs:
            spenders = self._by_outpoint[txin.prevout]
            del spenders[wtxid]
            if not spenders:
                del self._by_outpoint[txin.prevout]
        return orphan

    def _unindex_parents(self, wtxid: bytes, parents: tuple[bytes, ...]) -> None:
        for parent in parents:
            waiting = self._by_parent[parent]
            del waiting[wtxid]
            if not waiting:
                del self._by_parent[parent]

    def expire(self, now: int) -> list[Transaction]:
        """Drop orphans whose parent did not come in time (oldest first)."""
        old = [w for w, o in self._orphans.items() if now >= o.expires]
        return [o.tx for w in old if (o := self.remove(w)) is not None]

    def remove_for_block(self, block: Block) -> list[Transaction]:
        """Drop orphans the block includes or double-spends: they can never be valid now."""
        doomed: dict[bytes, None] = {}
        txids = {tx.txid for tx in block.transactions}
        for wtxid, orphan in self._orphans.items():
            if orphan.tx.txid in txids:
                doomed[wtxid] = None
        for tx in block.transactions:
            for txin in tx.inputs:
                for wtxid in self._by_outpoint.get(txin.prevout, ()):
                    doomed[wtxid] = None
        ordered = sorted(doomed, key=lambda w: self._orphans[w].sequence)
        return [o.tx for w in ordered if (o := self.remove(w)) is not None]

    def check(self) -> None:
        """Recompute the indexes from scratch and compare (for tests and debugging)."""
        if self._bytes != sum(o.tx.size for o in self._orphans.values()):
            raise AssertionError("orphan byte count drifted")
        if (
            len(self._orphans) > self.config.max_orphans
            or self._bytes > self.config.max_orphan_bytes
        ):
            raise AssertionError("orphan pool over its bounds")
        by_parent: dict[bytes, set[bytes]] = {}
        by_outpoint: dict[OutPoint, set[bytes]] = {}
        for wtxid, orphan in self._orphans.items():
            for parent in orphan.missing:
                by_parent.setdefault(parent, set()).add(wtxid)
            for txin in orphan.tx.inputs:
                by_outpoint.setdefault(txin.prevout, set()).add(wtxid)
        if by_parent != {k: set(v) for k, v in self._by_parent.items()}:
            raise AssertionError("orphan parent index drifted")
        if by_outpoint != {k: set(v) for k, v in self._by_outpoint.items()}:
            raise AssertionError("orphan outpoint index drifted")


class _PoolView:
    """Chain coins plus pool outputs: the view a new transaction's inputs are checked in.
    Pool outputs get height tip + 1 and are never coinbase; outpoints already spent in the
    pool stay visible, because conflicts are judged by the replacement rules instead."""

    def __init__(self, pool: Mempool) -> None:
        self.pool = pool

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        entry = self.pool._entries.get(outpoint.txid)
        if entry is None:
            return self.pool.tip.get_coin(outpoint)
        if outpoint.vout >= len(entry.tx.outputs):
            return None
        out = entry.tx.outputs[outpoint.vout]
        return Coin(out.amount, out.pubkey, self.pool.tip.height + 1, False)


class Mempool:
    """Unconfirmed transactions over a :class:`ChainTip`; see the module docstring."""

    def __init__(
        self, tip: ChainTip, params: ChainParams, config: PolicyConfig = DEFAULT_POLICY
    ) -> None:
        self.tip = tip
        self.params = params
        self.config = config
        self.orphans = OrphanPool(config)
        self._entries: dict[bytes, MempoolEntry] = {}  # txid -> entry
        self._wtxids: dict[bytes, bytes] = {}  # wtxid -> txid
        self._jobs: dict[bytes, bytes] = {}  # lottery job id -> txid of its pooled submit
        self._spenders: dict[OutPoint, bytes] = {}  # outpoint -> txid of the pool tx spending it
        self._bytes = 0
        self._sequence = 0
        # Lazy min-heap of (descendant score, -sequence, txid); stale items are skipped.
        self._evict_heap: list[tuple[FeeRate, int, bytes]] = []
        self._rolling_floor = 0  # units per 1,000 bytes
        self._rolling_since = 0  # when the floor was raised, or when decay began
        self._block_since_bump = False

    # -- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, txid: object) -> bool:
        return txid in self._entries

    @property
    def total_bytes(self) -> int:
        """Encoded bytes of all pooled transactions: what the size cap limits."""
        return self._bytes

    def get(self, txid: bytes) -> MempoolEntry | None:
        return self._entries.get(txid)

    def get_by_wtxid(self, wtxid: bytes) -> MempoolEntry | None:
        txid = self._wtxids.get(wtxid)
        return None if txid is None else self._entries[txid]

    def entries(self) -> list[MempoolEntry]:
        """Every entry, in arrival order. Entries are live: read them, never change them."""
        return sorted(self._entries.values(), key=lambda e: e.sequence)

    def spender(self, outpoint: OutPoint) -> bytes | None:
        """Txid of the pool transaction spending ``outpoint``, if any."""
        return self._spenders.get(outpoint)

    def min_fee(self, now: int) -> int:
        """The dynamic floor (units per 1,000 bytes) a new transaction must pay on top of the
        static minimum relay fee: 0 unless the pool has recently evicted for room."""
        floor = self._floor_at(now)
        return max(floor, self.config.incremental_relay_fee) if floor else 0

    def _floor_at(self, now: int) -> int:
        floor = self._rolling_floor
        if floor == 0 or not self._block_since_bump:
            return floor
        halflife = self.config.rolling_fee_halflife
        if self._bytes < self.config.max_mempool_bytes // 4:
            halflife //= 4
        elif self._bytes < self.config.max_mempool_bytes // 2:
            halflife //= 2
        halvings = max(0, now - self._rolling_since) // max(1, halflife)
        floor >>= min(halvings, 256)
        return 0 if floor * 2 < self.config.incremental_relay_fee else floor

    # -- accepting -----------------------------------------------------------------------
    def accept(self, tx: Transaction, now: int) -> AcceptResult:
        """Validate ``tx`` against consensus and policy and add it to the pool, or keep it
        as an orphan when parents are missing. Raises ``RuleError`` (``InvalidTransaction``
        for consensus, ``PolicyError`` for policy) and then nothing has changed."""
        changes = _Changes()
        try:
            self._accept_one(tx, now, bypass_limits=False, changes=changes)
        except _MissingParents as missing:
            self.orphans.add(tx, missing.parents, now)
            return AcceptResult(tx.txid, True, missing.parents, (), (), ())
        resolved = self._resolve_orphans([tx.txid], now, changes)
        return AcceptResult(
            tx.txid,
            False,
            (),
            (tx, *resolved),
            tuple(changes.replaced),
            tuple(changes.evicted),
        )

    def _accept_one(
        self, tx: Transaction, now: int, *, bypass_limits: bool, changes: _Changes
    ) -> None:
        """The whole admission of one transaction. ``bypass_limits`` (re-adding after a
        reorg) skips the fee floors and the size cap, as Core's ``bypass_limits`` does:
        those transactions were good enough for a block once, and the cap is enforced once
        the whole batch is back."""
        config = self.config
        check_transaction(tx)
        check_standard(tx, config)
        txid = tx.txid
        job_id = submitted_job_id(tx)
        if job_id is not None:
            # Consensus rules of §3.7 first; then one pooled submit per job, and none for
            # a job already admitted, so a template never carries a duplicate.
            check_job_submit(tx, self.params.magic, self.params.lottery)
            if job_id in self.tip.known_job_ids():
                raise PolicyError(Reject.POLICY_JOB_DUPLICATE, f"job {job_id.hex()[:16]} admitted")
            other = self._jobs.get(job_id)
            if other is not None and other != txid:
                raise PolicyError(Reject.POLICY_JOB_DUPLICATE, f"job {job_id.hex()[:16]} is pooled")
        held = self._entries.get(txid)
        if held is not None:
            if held.tx.wtxid == tx.wtxid:
                raise PolicyError(Reject.POLICY_ALREADY_IN_MEMPOOL, txid.hex())
            raise PolicyError(
                Reject.POLICY_SAME_TXID_IN_MEMPOOL, f"{txid.hex()} is pooled with other signatures"
            )

        # Inputs: from a pool parent, from the chain, or missing (an orphan).
        pool_parents: dict[bytes, None] = {}
        missing: list[OutPoint] = []
        for txin in tx.inputs:
            prevout = txin.prevout
            parent = self._entries.get(prevout.txid)
            if parent is not None:
                if prevout.vout >= len(parent.tx.outputs):
                    raise MissingInputs(
                        Reject.TX_INPUTS_MISSING,
                        f"{prevout.txid.hex()[:16]}:{prevout.vout}: pooled parent has "
                        f"{len(parent.tx.outputs)} outputs",
                    )
                pool_parents[prevout.txid] = None
            elif self.tip.get_coin(prevout) is None:
                missing.append(prevout)
        if missing:
            for n in range(len(tx.outputs)):
                if self.tip.get_coin(OutPoint(txid, n)) is not None:
                    raise PolicyError(Reject.POLICY_ALREADY_KNOWN, f"{txid.hex()} is confirmed")
            raise _MissingParents(tuple(dict.fromkeys(p.txid for p in missing)))

        fee, spent = check_tx_inputs(tx, _PoolView(self), self.tip.height + 1, self.params)
        size = tx.size
        rate = FeeRate(fee, size)
        if not bypass_limits:
            if not pays(fee, size, config.min_relay_fee):
                raise PolicyError(
                    Reject.POLICY_MIN_RELAY_FEE,
                    f"fee {fee} < {fee_for(config.min_relay_fee, size)} for {size} bytes",
                )
            floor = self.min_fee(now)
            if floor and not pays(fee, size, floor):
                raise PolicyError(
                    Reject.POLICY_MEMPOOL_MIN_FEE,
                    f"fee {fee} < {fee_for(floor, size)} ({floor}/kB while the pool is full)",
                )

        ancestors = self._closure(pool_parents, up=True)
        conflicts = sorted(
            {self._spenders[i.prevout] for i in tx.inputs if i.prevout in self._spenders},
            key=self._seq,
        )
        doomed: set[bytes] = set()
        if conflicts:
            doomed = self._check_replacement(fee, size, conflicts, ancestors)
        self._check_chain_limits(size, ancestors, doomed)
        check_tx_signatures(tx, spent, self.params)

        # Commit; roll everything back if the size cap throws the newcomer out again.
        saved = (self._rolling_floor, self._rolling_since, self._block_since_bump, self._sequence)
        replaced = self._remove(doomed)
        self._sequence += 1
        self._add_entry(MempoolEntry(tx, fee, size, now, self._sequence))
        trimmed = [] if bypass_limits else self._trim(now)
        if txid not in self._entries:
            for entry in trimmed + replaced:
                if entry.txid != txid:
                    self._add_entry(entry)
            self._rolling_floor, self._rolling_since, self._block_since_bump, self._sequence = saved
            raise PolicyError(
                Reject.POLICY_MEMPOOL_FULL,
                f"fee rate {rate.per_kb()}/kB is too low to displace what the full pool holds",
            )
        changes.replaced += [e.tx for e in replaced]
        changes.evicted += [e.tx for e in trimmed]

    def _check_replacement(
        self, fee: int, size: int, conflicts: list[bytes], ancestors: set[bytes]
    ) -> set[bytes]:
        """Full-RBF rules; returns every txid the replacement would evict."""
        config = self.config
        for txid in conflicts:
            if txid in ancestors:  # also covers spending a descendant of a conflict
                raise PolicyError(
                    Reject.POLICY_RBF_SPENDS_CONFLICT,
                    f"spends an output of {txid.hex()[:16]}, which it would replace",
                )
        doomed = self._closure(conflicts, up=False, limit=config.max_replacements)
        if len(doomed) > config.max_replacements:
            raise PolicyError(
                Reject.POLICY_RBF_TOO_MANY,
                f"would evict more than {config.max_replacements} transactions",
            )
        rate = FeeRate(fee, size)
        for txid in conflicts:
            old = self._entries[txid]
            if rate <= old.fee_rate:
                raise PolicyError(
                    Reject.POLICY_RBF_INSUFFICIENT_FEERATE,
                    f"rate {fee}/{size} does not beat {old.fee}/{old.size} of {txid.hex()[:16]}",
                )
        evicted_fee = sum(self._entries[t].fee for t in doomed)
        if fee <= evicted_fee:
            raise PolicyError(
                Reject.POLICY_RBF_INSUFFICIENT_FEE,
                f"fee {fee} does not exceed {evicted_fee} paid by the {len(doomed)} it replaces",
            )
        extra = fee_for(config.incremental_relay_fee, size)
        if fee - evicted_fee < extra:
            raise PolicyError(
                Reject.POLICY_RBF_INSUFFICIENT_FEE,
                f"fee {fee} must exceed {evicted_fee} by {extra} (incremental fee of {size} bytes)",
            )
        return doomed

    def _check_chain_limits(self, size: int, ancestors: set[bytes], doomed: set[bytes]) -> None:
        """Bound every package the newcomer joins, counting what a replacement removes."""
        config = self.config
        count = len(ancestors) + 1
        total = size + sum(self._entries[a].size for a in ancestors)
        if count > config.max_ancestors or total > config.max_ancestor_size:
            raise PolicyError(
                Reject.POLICY_CHAIN_TOO_LONG,
                f"{count} ancestors / {total} bytes > {config.max_ancestors} / "
                f"{config.max_ancestor_size}",
            )
        for txid in sorted(ancestors, key=self._seq):
            entry = self._entries[txid]
            d_count, d_size = entry.descendant_count, entry.descendant_size
            if doomed:
                gone = self._closure([txid], up=False) & doomed
                d_count -= len(gone)
                d_size -= sum(self._entries[g].size for g in gone)
            if d_count + 1 > config.max_descendants or d_size + size > config.max_descendant_size:
                raise PolicyError(
                    Reject.POLICY_CHAIN_TOO_LONG,
                    f"ancestor {txid.hex()[:16]} would have {d_count + 1} descendants / "
                    f"{d_size + size} bytes",
                )

    def _resolve_orphans(
        self, parents: Iterable[bytes], now: int, changes: _Changes
    ) -> list[Transaction]:
        """Retry orphans waiting for ``parents``, and for whatever those let in, breadth
        first. Each orphan leaves the pool when accepted or rejected; one still missing
        another parent stays and is re-indexed, so the work is bounded by the orphan pool."""
        queue = deque(parents)
        accepted: list[Transaction] = []
        while queue:
            parent = queue.popleft()
            for wtxid in self.orphans.waiting_for(parent):
                orphan = self.orphans.get(wtxid)
                if orphan is None:
                    continue
                try:
                    self._accept_one(orphan.tx, now, bypass_limits=False, changes=changes)
                except _MissingParents as missing:
                    self.orphans.set_missing(wtxid, missing.parents)
                    continue
                except RuleError:
                    self.orphans.remove(wtxid)
                    continue
                self.orphans.remove(wtxid)
                accepted.append(orphan.tx)
                queue.append(orphan.tx.txid)
        return accepted

    # -- chain events --------------------------------------------------------------------
    def remove_for_block(self, block: Block, now: int) -> BlockRemoval:
        """The chain connected ``block`` (the tip now includes it): drop what it confirmed,
        everything that double-spends it with descendants, and orphans it rules out; then
        retry orphans whose parents it confirmed."""
        txs = [tx for tx in block.transactions if not tx.is_coinbase]
        confirmed = self._remove({tx.txid for tx in txs if tx.txid in self._entries})
        roots = {
            spender
            for tx in txs
            for txin in tx.inputs
            if (spender := self._spenders.get(txin.prevout)) is not None
        }
        block_jobs = {j for tx in txs if (j := submitted_job_id(tx)) is not None}
        roots |= {t for j, t in self._jobs.items() if j in block_jobs}
        conflicts = self._remove(self._closure(roots, up=False))
        orphans = self.orphans.remove_for_block(block) + self.orphans.expire(now)
        if self._rolling_floor and not self._block_since_bump:
            self._block_since_bump = True  # the floor starts to decay from here
            self._rolling_since = now
        changes = _Changes()
        resolved = self._resolve_orphans([tx.txid for tx in txs], now, changes)
        return BlockRemoval(
            tuple(e.tx for e in confirmed),
            tuple(e.tx for e in conflicts),
            tuple(orphans),
            tuple(resolved),
            (*changes.replaced, *changes.evicted),
        )

    def readd_disconnected(self, txs: Sequence[Transaction], now: int) -> ReaddResult:
        """After a reorganisation: offer again the transactions of disconnected blocks.

        Call once the tip is the new one (after ``remove_for_block`` for each newly
        connected block), with the transactions of the disconnected blocks in chain order,
        oldest block first, so parents come before children. Coinbases are skipped; a
        transaction that fails is dropped, never orphaned (its inputs are not coming).
        Then pool entries that spent outputs of a block that is gone, or a coinbase that is
        no longer mature, are removed with their descendants, and the size cap applies.
        """
        changes = _Changes()
        readded: list[Transaction] = []
        dropped: list[tuple[Transaction, RuleError]] = []
        for tx in txs:
            if tx.is_coinbase:
                continue
            try:
                self._accept_one(tx, now, bypass_limits=True, changes=changes)
            except _MissingParents:
                dropped.append((tx, MissingInputs(Reject.TX_INPUTS_MISSING, "inputs are gone")))
            except RuleError as exc:
                dropped.append((tx, exc))
            else:
                readded.append(tx)
        invalidated = self._remove(self._closure(self._unspendable(), up=False))
        evicted = self._trim(now)
        resolved = self._resolve_orphans([tx.txid for tx in readded], now, changes)
        return ReaddResult(
            tuple(readded),
            tuple(dropped),
            tuple(e.tx for e in invalidated),
            tuple(e.tx for e in evicted) + tuple(changes.evicted),
            tuple(resolved),
        )

    def expire(self, now: int) -> list[Transaction]:
        """Drop entries older than ``mempool_expiry`` (with descendants) and stale orphans.
        Returns the pool transactions removed."""
        cutoff = now - self.config.mempool_expiry
        old = [t for t, e in self._entries.items() if e.time < cutoff]
        removed = self._remove(self._closure(old, up=False))
        self.orphans.expire(now)
        return [e.tx for e in removed]

    def _unspendable(self) -> list[bytes]:
        """Entries with an input that is neither a pool output nor a chain coin mature at
        the next height (after a reorg: a vanished coin or a coinbase made young again)."""
        height = self.tip.height + 1
        maturity = self.params.coinbase_maturity
        bad = []
        for txid, entry in self._entries.items():
            for txin in entry.tx.inputs:
                prevout = txin.prevout
                if prevout.txid in self._entries:
                    continue
                coin = self.tip.get_coin(prevout)
                if coin is None or (coin.is_coinbase and height - coin.height < maturity):
                    bad.append(txid)
                    break
        return bad

    # -- the graph -----------------------------------------------------------------------
    def _seq(self, txid: bytes) -> int:
        return self._entries[txid].sequence

    def _closure(self, start: Iterable[bytes], *, up: bool, limit: int | None = None) -> set[bytes]:
        """``start`` and all its in-pool ancestors (``up``) or descendants. With ``limit``
        the walk stops once it has found more than ``limit``."""
        seen = set(start)
        stack = list(seen)
        while stack:
            entry = self._entries[stack.pop()]
            for nxt in entry.parents if up else entry.children:
                if nxt not in seen:
                    seen.add(nxt)
                    if limit is not None and len(seen) > limit:
                        return seen
                    stack.append(nxt)
        return seen

    def _refresh(self, txids: Iterable[bytes]) -> None:
        """Recompute package aggregates of ``txids`` and queue their new eviction keys."""
        for txid in sorted(txids, key=self._seq):
            entry = self._entries[txid]
            up = [self._entries[t] for t in self._closure([txid], up=True)]
            down = [self._entries[t] for t in self._closure([txid], up=False)]
            entry.ancestor_count = len(up)
            entry.ancestor_size = sum(e.size for e in up)
            entry.ancestor_fee = sum(e.fee for e in up)
            entry.descendant_count = len(down)
            entry.descendant_size = sum(e.size for e in down)
            entry.descendant_fee = sum(e.fee for e in down)
            heapq.heappush(self._evict_heap, (entry.descendant_score, -entry.sequence, txid))
        if len(self._evict_heap) > 2 * len(self._entries) + 64:
            self._evict_heap = [
                (e.descendant_score, -e.sequence, t) for t, e in self._entries.items()
            ]
            heapq.heapify(self._evict_heap)

    def _add_entry(self, entry: MempoolEntry) -> None:
        """Link ``entry`` both ways: to pool parents it spends and to pool children that
        already spend it (possible only when re-adding after a reorg or a rollback)."""
        txid = entry.txid
        entry.parents, entry.children = set(), set()
        self._entries[txid] = entry
        self._wtxids[entry.tx.wtxid] = txid
        self._bytes += entry.size
        job_id = submitted_job_id(entry.tx)
        if job_id is not None:
            self._jobs[job_id] = txid
        for txin in entry.tx.inputs:
            self._spenders[txin.prevout] = txid
            parent = self._entries.get(txin.prevout.txid)
            if parent is not None:
                entry.parents.add(parent.txid)
                parent.children.add(txid)
        for n in range(len(entry.tx.outputs)):
            child = self._spenders.get(OutPoint(txid, n))
            if child is not None:
                entry.children.add(child)
                self._entries[child].parents.add(txid)
        self._refresh(self._closure([txid], up=True) | self._closure([txid], up=False))

    def _remove(self, txids: set[bytes]) -> list[MempoolEntry]:
        """Remove exactly ``txids`` (callers add descendants when they must go too) and
        refresh the packages around them. Returns the entries in arrival order."""
        if not txids:
            return []
        around = (self._closure(txids, up=True) | self._closure(txids, up=False)) - txids
        removed = sorted((self._entries[t] for t in txids), key=lambda e: e.sequence)
        for entry in removed:
            txid = entry.txid
            del self._entries[txid]
            del self._wtxids[entry.tx.wtxid]
            self._bytes -= entry.size
            job_id = submitted_job_id(entry.tx)
            if job_id is not None and self._jobs.get(job_id) == txid:
                del self._jobs[job_id]
            for txin in entry.tx.inputs:
                if self._spenders.get(txin.prevout) == txid:
                    del self._spenders[txin.prevout]
            for parent in entry.parents:
                if parent in self._entries:
                    self._entries[parent].children.discard(txid)
            for child in entry.children:
                if child in self._entries:
                    self._entries[child].parents.discard(txid)
        self._refresh(around)
        return removed

    def _pop_cheapest(self) -> bytes:
        while True:
            score, neg_sequence, txid = heapq.heappop(self._evict_heap)
            entry = self._entries.get(txid)
            if (
                entry is not None
                and entry.sequence == -neg_sequence
                and entry.descendant_score == score
            ):
                return txid

    def _trim(self, now: int) -> list[MempoolEntry]:
        """Evict the lowest-scoring packages until the pool fits its cap, raising the rolling
        floor to each evicted package's rate plus the incremental relay fee."""
        removed: list[MempoolEntry] = []
        while self._bytes > self.config.max_mempool_bytes and self._entries:
            txid = self._pop_cheapest()
            entry = self._entries[txid]
            evicted_rate = FeeRate(entry.descendant_fee, entry.descendant_size).per_kb()
            removed += self._remove(self._closure([txid], up=False))
            floor = evicted_rate + self.config.incremental_relay_fee
            self._rolling_floor = max(self._floor_at(now), floor)
            self._rolling_since = now
            self._block_since_bump = False
        return sorted(removed, key=lambda e: e.sequence)

    # -- self-check ------------------------------------------------------------------------
    def check(self) -> None:
        """Recompute every index and aggregate from the transactions and compare; raise
        ``AssertionError`` on any drift (Core's ``CTxMemPool::check``; tests call it)."""
        entries = self._entries
        if self._bytes != sum(e.size for e in entries.values()):
            raise AssertionError("byte count drifted")
        if self._wtxids != {e.tx.wtxid: t for t, e in entries.items()}:
            raise AssertionError("wtxid index drifted")
        spenders: dict[OutPoint, bytes] = {}
        for txid, entry in entries.items():
            for txin in entry.tx.inputs:
                if txin.prevout in spenders:
                    raise AssertionError(f"{txid.hex()} double-spends {txin.prevout}")
                spenders[txin.prevout] = txid
        if spenders != self._spenders:
            raise AssertionError("spender index drifted")
        for txid, entry in entries.items():
            parents = {i.prevout.txid for i in entry.tx.inputs if i.prevout.txid in entries}
            children = {
                s
                for n in range(len(entry.tx.outputs))
                if (s := spenders.get(OutPoint(txid, n))) is not None
            }
            if entry.parents != parents or entry.children != children:
                raise AssertionError(f"links of {txid.hex()} drifted")
            for txin in entry.tx.inputs:
                if txin.prevout.txid not in entries and self.tip.get_coin(txin.prevout) is None:
                    raise AssertionError(f"{txid.hex()} spends a coin the tip does not have")
            up = [entries[t] for t in self._closure([txid], up=True)]
            down = [entries[t] for t in self._closure([txid], up=False)]
            expected = (
                len(up),
                sum(e.size for e in up),
                sum(e.fee for e in up),
                len(down),
                sum(e.size for e in down),
                sum(e.fee for e in down),
            )
            actual = (
                entry.ancestor_count,
                entry.ancestor_size,
                entry.ancestor_fee,
                entry.descendant_count,
                entry.descendant_size,
                entry.descendant_fee,
            )
            if expected != actual:
                raise AssertionError(f"package aggregates of {txid.hex()} drifted")
        live = {(e.descendant_score, -e.sequence, t) for t, e in entries.items()}
        if not live <= set(self._evict_heap):
            raise AssertionError("an entry has no current eviction key")
        self.orphans.check()
