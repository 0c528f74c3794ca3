"""The chainstate: coins, block index, blocks and undo data in one LevelDB database.

Key layout (one ``plyvel.DB`` per node; prefixes keep the kinds apart)::

    b"c" + txid + vout:u32be  -> coin            the UTXO set, in outpoint order
    b"i" + block hash         -> index entry     [header, chain work, status]
    b"b" + block hash         -> block bytes     every block we accepted, to serve and reindex
    b"u" + block hash         -> undo record     coins the block spent (connected blocks only)
    b"j" + job id             -> lottery job     [spec, prompts, height] admitted on the active chain
    b"T"                      -> best block hash the tip the coin set corresponds to
    b"N"                      -> network name    refuse to open another network's data

Crash safety (specs/consensus.md §6). Every state change is *one* ``WriteBatch``
written with ``sync=True``: storing a block with its index entry; connecting a block
(coin changes, undo record, tip marker); disconnecting one (coin changes, undo removal,
tip marker); or, for a block that extends a tip no other block beats, storing and
connecting it together. LevelDB appends a batch to its log as one checksummed record and replays
only whole records after a crash, so a kill at any instant leaves the database exactly
before or exactly after a batch. The tip marker travels in the same batch as the coins
it describes; it can never point at a block whose coin changes are missing. (Bitcoin
Core needs a separate "head blocks" marker because its coin cache flushes in several
batches; we never split a block's changes, so there is no in-between state to detect.)

Best chain. Every block with data and no failed ancestor is a candidate; the tip follows
the candidate with the most cumulative work (first seen wins ties). A reorganisation
disconnects to the fork point and connects forward; a block that fails to connect is
marked failed, with its descendants, and the search continues, possibly back to the
chain we came from. The candidates are kept in a set pruned whenever the tip settles, so
choosing costs the number of live rivals, not the size of the index.

Work. Connecting a block first re-executes its winning draw through the ``verifier``
given at construction (``chain.contextual.check_block_work``): the chainstate knows which
lottery jobs are active, the verifier knows how to run the model. Blocks whose hashes
were noted as ancestors of the network's assume-valid block skip that one check.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any, NamedTuple

import plyvel

from chain.block import Block, BlockHeader, decode_block, header_from_wire
from chain.checks import check_block
from chain.coins import Coin, CoinsOverlay, decode_coin, utxo_set_hash
from chain.contextual import (
    ParentInfo,
    Undo,
    check_block_work,
    check_header_contextual,
    connect_block,
    decode_undo,
    disconnect_block,
    median_time_past,
)
from chain.difficulty import block_work
from chain.encoding import expect_bytes, expect_int, expect_list, pack, unpack_canonical
from chain.errors import InvalidBlock, Reject, RuleError, UnknownParent
from chain.hashing import tagged_hash
from chain.jobs import TAG_JOB, decode_job_spec
from chain.lottery import LotteryJob, WorkVerifier
from chain.params import MEDIAN_TIME_SPAN, ChainParams
from chain.transaction import OutPoint, TxKind

P_COIN = b"c"
P_INDEX = b"i"
P_BLOCK = b"b"
P_UNDO = b"u"
P_JOB = b"j"
K_TIP = b"T"
K_NETWORK = b"N"


class BlockStatus(IntFlag):
    HAVE_DATA = 1  # the full block is stored under b"b"
    FAILED = 2  # the block broke a rule when connected
    FAILED_PARENT = 4  # an ancestor failed


@dataclass
class IndexEntry:
    """What we know about one block, kept in memory for every block and persisted."""

    hash: bytes
    header: BlockHeader
    chain_work: int  # cumulative work from genesis up to and including this block
    status: BlockStatus
    sequence: int = field(default=0, compare=False)  # arrival order, breaks work ties

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def prev_hash(self) -> bytes:
        return self.header.prev_hash

    @property
    def failed(self) -> bool:
        return bool(self.status & (BlockStatus.FAILED | BlockStatus.FAILED_PARENT))

    def encode(self) -> bytes:
        return pack([self.header.to_wire(), self.chain_work.to_bytes(40, "big"), int(self.status)])


def decode_index_entry(block_hash: bytes, data: bytes) -> IndexEntry:
    f = expect_list(unpack_canonical(data, 4096), "index", length=3)
    header = header_from_wire(f[0])
    work = int.from_bytes(expect_bytes(f[1], "index.work", length=40), "big")
    status = BlockStatus(expect_int(f[2], "index.status", 0, 7))
    return IndexEntry(block_hash, header, work, status)


def encode_job(job: LotteryJob) -> bytes:
    return pack([job.spec.encoded, list(job.prompts or ()), job.confirmed_height])


def decode_job(job_id: bytes, data: bytes, delay: int) -> LotteryJob:
    f = expect_list(unpack_canonical(data, 1_000_000), "job", length=3)
    spec = decode_job_spec(expect_bytes(f[0], "job.spec"))
    prompts = tuple(str(p) for p in expect_list(f[1], "job.prompts"))
    height = expect_int(f[2], "job.height", 0, 2**32 - 1)
    return LotteryJob(job_id, spec, prompts, height, height + delay)


class ChainUpdate(NamedTuple):
    """What one call changed on the active chain, oldest first in each list.
    The mempool and the network learn about validation only through these."""

    disconnected: list[Block]
    connected: list[Block]


class ChainstateError(Exception):
    """The data directory is unusable (another network, damaged records)."""


class Chainstate:
    def __init__(
        self, path: str | os.PathLike[str], params: ChainParams, verifier: WorkVerifier
    ) -> None:
        self.params = params
        self.verifier = verifier
        self.db = plyvel.DB(os.fspath(path), create_if_missing=True)
        self.index: dict[bytes, IndexEntry] = {}
        # Lottery jobs admitted on the active chain by id (the standing job is not stored).
        self.lottery_jobs: dict[bytes, LotteryJob] = {}
        # Hashes of the assume-valid block and its ancestors, once their headers are known.
        self.assumed_valid: set[bytes] = set()
        self.active: list[bytes] = []  # active chain: hash by height
        # Blocks that may beat the tip: every block with data and no failed ancestor whose
        # (work, arrival) is at least the tip's when the tip last settled. Kept so that
        # choosing the best chain does not scan the whole index for every block.
        self._candidates: set[bytes] = set()
        self._sequence = 0
        self._received: Block | None = None  # the block accept_block is activating
        self.listeners: list[Callable[[ChainUpdate], None]] = []
        try:
            network = self.db.get(K_NETWORK)
            if network is None:
                self._initialise()
            elif network != params.name.encode():
                raise ChainstateError(
                    f"data directory belongs to {network.decode()!r}, not {params.name!r}"
                )
            self._load()
            # A kill between storing a block and connecting it (or in the middle of a
            # reorg) leaves a better candidate unconnected: finish that work now.
            self.activate_best_chain()
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        if not self.db.closed:
            self.db.close()

    # -- opening ----------------------------------------------------------------
    def _initialise(self) -> None:
        """A fresh database: store and connect genesis in one batch."""
        genesis = self.params.genesis
        entry = IndexEntry(
            genesis.hash, genesis.header, block_work(genesis.header.target), BlockStatus.HAVE_DATA
        )
        overlay = CoinsOverlay(self)
        overlay.add_outputs(genesis.transactions[0], 0)
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(P_BLOCK + genesis.hash, genesis.encoded)
            batch.put(P_INDEX + genesis.hash, entry.encode())
            self._write_coins(batch, overlay)
            batch.put(P_UNDO + genesis.hash, Undo([]).encode())
            batch.put(K_TIP, genesis.hash)
            batch.put(K_NETWORK, self.params.name.encode())

    def _load(self) -> None:
        delay = self.params.lottery.activation_delay
        for key, value in self.db.iterator(prefix=P_JOB):
            try:
                self.lottery_jobs[key[1:]] = decode_job(key[1:], value, delay)
            except (RuleError, ValueError) as exc:
                raise ChainstateError(
                    f"damaged lottery job record {key[1:].hex()}: {exc}"
                ) from None
        for key, value in self.db.iterator(prefix=P_INDEX):
            block_hash = key[1:]
            try:
                entry = decode_index_entry(block_hash, value)
            except RuleError as exc:
                raise ChainstateError(
                    f"damaged block index record {block_hash.hex()}: {exc}"
                ) from None
            self.index[block_hash] = entry
        tip = self.db.get(K_TIP)
        if tip is None or tip not in self.index:
            raise ChainstateError("tip marker missing or unknown: the database is damaged")
        chain = []
        cursor: bytes | None = tip
        while cursor is not None:
            chain.append(cursor)
            entry = self.index[cursor]
            cursor = entry.prev_hash if entry.height > 0 else None
        self.active = chain[::-1]
        if self.active[0] != self.params.genesis_hash:
            raise ChainstateError("active chain does not start at this network's genesis")
        # Arrival order is not persisted. The active chain counts as seen first, so a
        # restart never trades the tip for a rival of equal work; the other blocks follow
        # in height order, a stable stand-in.
        active = set(self.active)
        for entry in sorted(
            self.index.values(), key=lambda e: (e.hash not in active, e.height, e.hash)
        ):
            entry.sequence = self._next_sequence()
        self._reset_candidates()

    def _reset_candidates(self) -> None:
        self._candidates = {
            e.hash for e in self.index.values() if e.status & BlockStatus.HAVE_DATA and not e.failed
        }

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    # -- reading -----------------------------------------------------------------
    @property
    def tip(self) -> IndexEntry:
        return self.index[self.active[-1]]

    @property
    def height(self) -> int:
        return len(self.active) - 1

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        data = self.db.get(P_COIN + outpoint.key())
        return None if data is None else decode_coin(data)

    def get_block(self, block_hash: bytes) -> Block | None:
        data = self.db.get(P_BLOCK + block_hash)
        return None if data is None else decode_block(data)

    def get_block_bytes(self, block_hash: bytes) -> bytes | None:
        data = self.db.get(P_BLOCK + block_hash)
        return None if data is None else bytes(data)

    def block_hash_at(self, height: int) -> bytes | None:
        return self.active[height] if 0 <= height < len(self.active) else None

    def is_active(self, block_hash: bytes) -> bool:
        entry = self.index.get(block_hash)
        return entry is not None and self.block_hash_at(entry.height) == block_hash

    def parent_info(self, block_hash: bytes) -> ParentInfo:
        """Height, time and median time past of a known block, as its children need them."""
        entry = self.index[block_hash]
        times = []
        cursor = entry
        for _ in range(MEDIAN_TIME_SPAN):
            times.append(cursor.header.time)
            if cursor.height == 0:
                break
            cursor = self.index[cursor.prev_hash]
        return ParentInfo(entry.hash, entry.height, entry.header.time, median_time_past(times))

    def jobs_for_child(self) -> list[LotteryJob]:
        """Every lottery job admitted up to the tip, the standing one first: what a block
        on the tip draws from once ``chain.lottery.active_jobs`` filters them by height."""
        return [self.params.lottery.standing_job, *self.lottery_jobs.values()]

    def note_assumed_valid(self, header_hashes: list[bytes]) -> int:
        """Given the hashes of a checked, linked header chain in order, remember the
        assume-valid block and the ancestors among them: their draws are not
        re-executed. Returns how many hashes were added."""
        target = self.params.assume_valid
        if target is None or target not in header_hashes:
            return 0
        end = header_hashes.index(target) + 1
        before = len(self.assumed_valid)
        self.assumed_valid.update(header_hashes[:end])
        return len(self.assumed_valid) - before

    def _check_work(self, block: Block) -> None:
        if block.hash in self.assumed_valid:
            return
        check_block_work(block, self.params, self.jobs_for_child(), self.verifier)

    def _connect(self, block: Block) -> Any:
        """The checks and coin changes of connecting ``block`` on the tip (nothing written)."""
        self._check_work(block)
        return connect_block(block, _ReadOnce(self), self.params, known_jobs=self._known_job_ids())

    def known_job_ids(self) -> set[bytes]:
        """Ids of every lottery job admitted up to the tip, the standing one included."""
        return self._known_job_ids()

    def _known_job_ids(self) -> set[bytes]:
        return {self.params.lottery.standing_job.job_id, *self.lottery_jobs}

    def _write_jobs(self, batch: Any, jobs: list[LotteryJob]) -> None:
        for job in jobs:
            batch.put(P_JOB + job.job_id, encode_job(job))

    def iter_coins(self) -> Iterator[tuple[bytes, bytes]]:
        """``(outpoint key, coin bytes)`` in key order."""
        for key, value in self.db.iterator(prefix=P_COIN):
            yield key[1:], value

    def utxo_commitment(self) -> bytes:
        """The UTXO-set hash (``chain.coins.utxo_set_hash``) of the coins at our tip."""
        return utxo_set_hash(self.iter_coins())

    def utxo_stats(self) -> tuple[int, int]:
        """Number of coins and their total amount."""
        count = total = 0
        for _, value in self.iter_coins():
            count += 1
            total += decode_coin(value).amount
        return count, total

    # -- accepting blocks -------------------------------------------------------------
    def accept_block(self, block: Block, now: int) -> ChainUpdate:
        """Validate and store ``block``, then move the tip to the most-work chain.

        Raises ``InvalidBlock`` (the block is bad), ``BlockTooNew`` (retry later) or
        ``UnknownParent`` (fetch the parent first). A block rejected before it is stored
        leaves the database untouched. A block that is stored but fails to connect is
        marked failed, and the exception for it is raised after the tip has settled.
        A block already known to be invalid, or one whose ancestor fails while it is
        being connected, raises too: a caller must never take an invalid block for news.
        """
        known = self.index.get(block.hash)
        if known is not None:
            if known.status & BlockStatus.FAILED:
                raise InvalidBlock(Reject.BLK_KNOWN_INVALID, "block was marked invalid before")
            if known.failed:
                raise InvalidBlock(Reject.PREV_INVALID, "builds on a block that failed validation")
            return ChainUpdate([], [])
        check_block(block, self.params)
        parent = self.index.get(block.header.prev_hash)
        if parent is None:
            raise UnknownParent(
                Reject.PREV_UNKNOWN, f"parent {block.header.prev_hash.hex()[:16]} unknown"
            )
        if parent.failed:
            raise InvalidBlock(Reject.PREV_INVALID, "builds on a block that failed validation")
        check_header_contextual(block.header, self.parent_info(parent.hash), self.params, now)
        entry = IndexEntry(
            block.hash,
            block.header,
            parent.chain_work + block_work(block.header.target),
            BlockStatus.HAVE_DATA,
            self._next_sequence(),
        )
        if parent.hash == self.tip.hash and self._candidates == {parent.hash}:
            return self._extend_settled_tip(block, entry)
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(P_BLOCK + block.hash, block.encoded)
            batch.put(P_INDEX + block.hash, entry.encode())
        self.index[block.hash] = entry
        self._candidates.add(block.hash)
        self._received = block  # connect it from memory rather than decode it again
        try:
            update, failures = self._activate_best_chain()
        finally:
            self._received = None
        self._notify(update)
        for failed_hash, error in failures:
            if failed_hash == block.hash:
                raise error
        if entry.failed:  # an ancestor on its branch failed to connect
            raise InvalidBlock(Reject.PREV_INVALID, "builds on a block that failed validation")
        return update

    def _extend_settled_tip(self, block: Block, entry: IndexEntry) -> ChainUpdate:
        """The common case of sync and relay: ``block`` builds on a tip that no other
        candidate beats, so it becomes the new tip if it connects. Storing and connecting
        it then go in *one* batch (one fsync instead of two); a block that fails to connect
        is stored marked failed, exactly as the general path would leave it."""
        try:
            result = self._connect(block)
        except InvalidBlock:
            entry.status |= BlockStatus.FAILED
            with self.db.write_batch(transaction=True, sync=True) as batch:
                batch.put(P_BLOCK + block.hash, block.encoded)
                batch.put(P_INDEX + block.hash, entry.encode())
            self.index[block.hash] = entry
            raise
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(P_BLOCK + block.hash, block.encoded)
            batch.put(P_INDEX + block.hash, entry.encode())
            self._write_coins(batch, result.overlay)
            self._write_jobs(batch, result.jobs)
            batch.put(P_UNDO + block.hash, result.undo.encode())
            batch.put(K_TIP, block.hash)
        self.index[block.hash] = entry
        self.lottery_jobs.update((j.job_id, j) for j in result.jobs)
        self.active.append(block.hash)
        self._candidates = {block.hash}
        update = ChainUpdate([], [block])
        self._notify(update)
        return update

    def activate_best_chain(self) -> ChainUpdate:
        """Move the tip to the most-work valid candidate (used after restart or reindex)."""
        update, _ = self._activate_best_chain()
        self._notify(update)
        return update

    def _notify(self, update: ChainUpdate) -> None:
        if update.connected or update.disconnected:
            for listener in self.listeners:
                listener(update)

    def _best_candidate(self) -> IndexEntry:
        """The valid block with the most work (the first seen among equals), dropping from
        the candidate set the blocks that can no longer win: failed ones, and those below a
        tip that has settled (the tip only moves to more work, or back to a settled tip)."""
        best = self.tip
        for block_hash in list(self._candidates):
            entry = self.index[block_hash]
            if entry.failed:
                self._candidates.discard(block_hash)
            elif (entry.chain_work, -entry.sequence) > (best.chain_work, -best.sequence):
                best = entry
        if best.hash == self.tip.hash:
            self._candidates = {
                h
                for h in self._candidates
                if (self.index[h].chain_work, -self.index[h].sequence)
                >= (best.chain_work, -best.sequence)
            }
            self._candidates.add(best.hash)
        return best

    def _fork_point(self, entry: IndexEntry) -> IndexEntry:
        while not self.is_active(entry.hash):
            entry = self.index[entry.prev_hash]
        return entry

    def _activate_best_chain(self) -> tuple[ChainUpdate, list[tuple[bytes, InvalidBlock]]]:
        disconnected: list[Block] = []
        connected: list[Block] = []
        failures: list[tuple[bytes, InvalidBlock]] = []
        while True:
            best = self._best_candidate()
            if best.hash == self.tip.hash:
                break
            fork = self._fork_point(best)
            while self.tip.hash != fork.hash:
                disconnected.append(self._disconnect_tip())
            path = []
            cursor = best
            while cursor.hash != fork.hash:
                path.append(cursor)
                cursor = self.index[cursor.prev_hash]
            for entry in reversed(path):
                try:
                    connected.append(self._connect_tip(entry))
                except InvalidBlock as exc:
                    self._mark_failed(entry)
                    failures.append((entry.hash, exc))
                    break
        # A block disconnected and connected again in the same call did not change.
        connected_hashes = {b.hash for b in connected}
        disconnected_hashes = {b.hash for b in disconnected}
        return (
            ChainUpdate(
                [b for b in reversed(disconnected) if b.hash not in connected_hashes],
                [b for b in connected if b.hash not in disconnected_hashes],
            ),
            failures,
        )

    def _connect_tip(self, entry: IndexEntry) -> Block:
        block = self._received
        if block is None or block.hash != entry.hash:
            block = self.get_block(entry.hash)
        if block is None:
            raise ChainstateError(f"block {entry.hash.hex()} has no data")
        result = self._connect(block)
        with self.db.write_batch(transaction=True, sync=True) as batch:
            self._write_coins(batch, result.overlay)
            self._write_jobs(batch, result.jobs)
            batch.put(P_UNDO + entry.hash, result.undo.encode())
            batch.put(K_TIP, entry.hash)
        self.lottery_jobs.update((j.job_id, j) for j in result.jobs)
        self.active.append(entry.hash)
        return block

    def _disconnect_tip(self) -> Block:
        entry = self.tip
        if entry.height == 0:
            raise ChainstateError("cannot disconnect genesis")
        block = self.get_block(entry.hash)
        undo_bytes = self.db.get(P_UNDO + entry.hash)
        if block is None or undo_bytes is None:
            raise ChainstateError(f"block or undo data of {entry.hash.hex()} missing")
        overlay = disconnect_block(block, decode_undo(undo_bytes), self)
        # A job-submit only ever adds its job: undoing it removes the job again.
        job_ids = [
            tagged_hash(TAG_JOB, tx.payload[0])
            for tx in block.transactions
            if tx.kind == TxKind.JOB_SUBMIT
        ]
        with self.db.write_batch(transaction=True, sync=True) as batch:
            self._write_coins(batch, overlay)
            for job_id in job_ids:
                batch.delete(P_JOB + job_id)
            batch.delete(P_UNDO + entry.hash)
            batch.put(K_TIP, entry.prev_hash)
        for job_id in job_ids:
            self.lottery_jobs.pop(job_id, None)
        self.active.pop()
        return block

    def _mark_failed(self, failed: IndexEntry) -> None:
        """Mark ``failed`` and every block descending from it, in one batch."""
        failed.status |= BlockStatus.FAILED
        changed = [failed]
        for entry in sorted(self.index.values(), key=lambda e: e.height):
            if entry.height > failed.height and not entry.failed:
                parent = self.index.get(entry.prev_hash)
                if parent is not None and parent.failed:
                    entry.status |= BlockStatus.FAILED_PARENT
                    changed.append(entry)
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for entry in changed:
                batch.put(P_INDEX + entry.hash, entry.encode())

    @staticmethod
    def _write_coins(batch: Any, overlay: CoinsOverlay) -> None:
        for outpoint, coin in overlay.items():
            key = P_COIN + outpoint.key()
            if coin is None:
                batch.delete(key)
            else:
                batch.put(key, coin.encode())

    # -- maintenance ---------------------------------------------------------------
    def reindex(self) -> ChainUpdate:
        """Rebuild the coin set from the stored blocks: wipe coins and undo data, go back
        to genesis, clear failure marks, and connect the most-work chain again."""
        genesis = self.params.genesis
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for prefix in (P_COIN, P_UNDO, P_JOB):
                for key in self.db.iterator(prefix=prefix, include_value=False):
                    batch.delete(key)
            overlay = CoinsOverlay(_EmptyView())
            overlay.add_outputs(genesis.transactions[0], 0)
            self._write_coins(batch, overlay)
            batch.put(P_UNDO + genesis.hash, Undo([]).encode())
            batch.put(K_TIP, genesis.hash)
            for entry in self.index.values():
                if entry.failed:
                    entry.status &= ~(BlockStatus.FAILED | BlockStatus.FAILED_PARENT)
                    batch.put(P_INDEX + entry.hash, entry.encode())
        self.active = [genesis.hash]
        self.lottery_jobs.clear()
        self._reset_candidates()
        return self.activate_best_chain()


class _ReadOnce:
    """Remembers the coins read while one block connects: validation looks a coin up
    and then spends it, and the second look should not cost another database read."""

    def __init__(self, base: Chainstate) -> None:
        self.base = base
        self.seen: dict[OutPoint, Coin | None] = {}

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        try:
            return self.seen[outpoint]
        except KeyError:
            coin = self.seen[outpoint] = self.base.get_coin(outpoint)
            return coin


class _EmptyView:
    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return None
