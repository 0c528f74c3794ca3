"""Optional lookups the chainstate does not need: transactions by id, coins by address.

Validation only ever asks "is this outpoint unspent?", so the chainstate keeps coins by
outpoint and nothing else. People ask other questions: where is transaction X, what
did address A receive and spend, which coins can A spend now. :class:`ChainIndexes`
answers them from records of its own, kept in the node's one LevelDB database under
the prefix ``x`` (a directory opens once per process, so the index cannot have a
database of its own)::

    B                                         -> hash of the last block indexed
    t + txid                                  -> block hash, position in block (u32)
    h + key + height + position + dir + n     -> txid, amount (u64)      history
    U + key + txid + vout                     -> amount (u64), height (u32), coinbase (u8)
    u + block hash                            -> undo: [[key, value before or nil], ...]

Keys are 32-byte x-only public keys (what an address encodes); integers are big-endian,
so a key's history iterates in chain order and reads newest first in reverse. ``dir``
is ``r`` for an output the key received (``n`` = output index) and ``s`` for one it
spent (``n`` = input index of the spending transaction).

**Consistency.** The index is derived data: it follows the chainstate's active chain
and is never consulted by validation. Every change is one ``WriteBatch`` that carries
the marker ``B`` with it, so after a kill at any instant the marker names exactly the
block the rest of the records describe. Catching up walks back from the marker to the
active chain (disconnecting with the index's own undo records, because the chainstate
deletes its undo data when it disconnects a block) and then forward along the active
chain to its tip. Spent coins come from the chainstate's undo record of the block being
indexed. The same walk serves at start (after a kill, a reorg may have happened that
the index never saw), after every chain event, and before every query, so an answer
always matches some state the chainstate was in.

**Threads.** The chainstate changes in the core's worker thread while we read it. We
never take the core's lock; instead every step checks what it read (the block at a
height still links to the one before it, its undo record still exists) and starts over
when the chain moved underneath, which a reorg makes rare and a retry makes harmless.
Batches run in a worker thread (``trio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from itertools import islice
from typing import Any

import trio

from chain.block import Block
from chain.chainstate import P_UNDO as CHAIN_UNDO
from chain.contextual import decode_undo
from chain.encoding import pack, unpack_canonical
from chain.transaction import HASH_SIZE, OutPoint
from node.core import BlockConnected, BlockDisconnected, NodeCore

log = logging.getLogger("fc.indexes")

INDEX_PREFIX = b"x"
K_MARKER = b"B"
P_TX = b"t"
P_HISTORY = b"h"
P_COINS = b"U"
P_UNDO = b"u"
RECEIVED = b"r"
SPENT = b"s"

MAX_BLOCKS_PER_BATCH = 200  # bounds the memory of one catch-up step
MAX_CHANGES_PER_BATCH = 200_000
MAX_UNDO_SIZE = 64_000_000


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


@dataclass(frozen=True)
class TxLocation:
    block_hash: bytes
    position: int


@dataclass(frozen=True)
class HistoryEntry:
    height: int
    position: int  # of the transaction in its block
    txid: bytes
    direction: str  # "received" or "spent"
    index: int  # output index received, or input index that spent
    amount: int


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]  # newest first
    cursor: bytes | None  # pass back to continue after the last entry; None at the end


@dataclass(frozen=True)
class AddressCoin:
    outpoint: OutPoint
    amount: int
    height: int
    coinbase: bool


class _Overlay:
    """Pending writes of one batch over the database, remembering what each key held
    before the block being applied touched it (its undo)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.changes: dict[bytes, bytes | None] = {}
        self.undo: list[list[Any]] = []
        self._touched: set[bytes] = set()

    def get(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        value = self.db.get(key)
        return None if value is None else bytes(value)

    def start_block(self) -> None:
        self.undo = []
        self._touched = set()

    def set(self, key: bytes, value: bytes | None) -> None:
        if key not in self._touched:
            self._touched.add(key)
            self.undo.append([key, self.get(key)])
        self.changes[key] = value


class IndexCorrupt(Exception):
    """The index's records contradict the chainstate; it is rebuilt from genesis."""


class ChainIndexes:
    def __init__(self, core: NodeCore) -> None:
        self.core = core
        self.db = core.chainstate.db.prefixed_db(INDEX_PREFIX)
        marker = self.db.get(K_MARKER)
        self._best: bytes | None = None if marker is None else bytes(marker)
        self._thread_lock = threading.Lock()  # one writer, whichever thread asks
        self._trio_lock = trio.Lock()  # one worker thread at a time from the loop
        if self._best is not None and self._best not in core.chainstate.index:
            # The chainstate no longer knows our marker (its records were replaced):
            # nothing here can be trusted, start over.
            self._wipe()

    # -- reading --------------------------------------------------------------------
    @property
    def best_block(self) -> bytes | None:
        """Hash of the last block indexed (None before the first catch-up)."""
        return self._best

    @property
    def height(self) -> int:
        best = self._best
        if best is None:
            return -1
        entry = self.core.chainstate.index.get(best)
        return -1 if entry is None else entry.height

    @property
    def synced(self) -> bool:
        return self._best == self.core.chainstate.tip.hash

    def tx_location(self, txid: bytes) -> TxLocation | None:
        value = self.db.get(P_TX + txid)
        if value is None:
            return None
        return TxLocation(bytes(value[:HASH_SIZE]), int.from_bytes(value[HASH_SIZE:], "big"))

    def history(self, pubkey: bytes, limit: int, cursor: bytes | None = None) -> HistoryPage:
        """Up to ``limit`` entries for ``pubkey``, newest first, after ``cursor``."""
        prefix = P_HISTORY + pubkey
        stop = prefix + cursor if cursor is not None else _prefix_end(prefix)
        entries: list[HistoryEntry] = []
        last_key = b""
        for key, value in self.db.iterator(start=prefix, stop=stop, reverse=True):
            if len(entries) == limit:
                return HistoryPage(entries, last_key[len(prefix) :])
            rest = key[len(prefix) :]
            entries.append(
                HistoryEntry(
                    height=int.from_bytes(rest[0:4], "big"),
                    position=int.from_bytes(rest[4:8], "big"),
                    direction="received" if rest[8:9] == RECEIVED else "spent",
                    index=int.from_bytes(rest[9:13], "big"),
                    txid=bytes(value[:HASH_SIZE]),
                    amount=int.from_bytes(value[HASH_SIZE:], "big"),
                )
            )
            last_key = bytes(key)
        return HistoryPage(entries, None)

    def coins(self, pubkey: bytes, limit: int) -> tuple[list[AddressCoin], bool]:
        """Up to ``limit`` unspent coins of ``pubkey`` (outpoint order), and whether
        more exist."""
        prefix = P_COINS + pubkey
        found: list[AddressCoin] = []
        for key, value in self.db.iterator(prefix=prefix):
            if len(found) == limit:
                return found, True
            rest = key[len(prefix) :]
            found.append(
                AddressCoin(
                    outpoint=OutPoint(
                        bytes(rest[:HASH_SIZE]), int.from_bytes(rest[HASH_SIZE:], "big")
                    ),
                    amount=int.from_bytes(value[0:8], "big"),
                    height=int.from_bytes(value[8:12], "big"),
                    coinbase=value[12:13] == b"\x01",
                )
            )
        return found, False

    # -- following the chain --------------------------------------------------------------
    async def catch_up(self) -> None:
        """Bring the index to the chainstate's tip (in a worker thread)."""
        if self.synced:
            return
        async with self._trio_lock:
            await trio.to_thread.run_sync(self.sync)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Catch up, then follow the core's block events until the core closes.

        An event only says "the chain moved": each one (and whatever queued behind it)
        triggers one catch-up, which reads the truth from the chainstate. Events the
        core dropped for a slow subscriber therefore cost nothing but a delay.
        """
        events = self.core.subscribe()
        async with events:
            await self.catch_up()
            task_status.started()
            async for event in events:
                moved = isinstance(event, BlockConnected | BlockDisconnected)
                while True:  # one catch-up covers everything already queued
                    try:
                        queued = events.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    moved = moved or isinstance(queued, BlockConnected | BlockDisconnected)
                if moved:
                    await self.catch_up()

    def sync(self) -> None:
        """Bring the index to the chainstate's tip; blocking, safe from any thread.

        Returns early when a step makes no progress: the chain is moving under us (a
        reorganisation between its disconnects and connects), and the event that ends
        the move will trigger the next catch-up.
        """
        with self._thread_lock:
            rebuilt = False
            while self._best != self.core.chainstate.tip.hash:
                before = self._best
                try:
                    self._step()
                except IndexCorrupt:
                    if rebuilt:  # again, from scratch: the chainstate itself is damaged
                        raise
                    log.exception("address/transaction index damaged; rebuilding it")
                    self._wipe()
                    rebuilt = True
                    continue
                if self._best == before:
                    return

    def _step(self) -> None:
        """Write one batch that moves the marker towards the chainstate's tip."""
        chain = self.core.chainstate
        overlay = _Overlay(self.db)
        best = self._best
        # Back to the active chain, with our own undo records.
        while best is not None and not chain.is_active(best):
            best = self._disconnect(overlay, best)
        # Forward along the active chain.
        height = -1 if best is None else chain.index[best].height
        blocks = 0
        while blocks < MAX_BLOCKS_PER_BATCH and len(overlay.changes) < MAX_CHANGES_PER_BATCH:
            block_hash = chain.block_hash_at(height + 1)
            if block_hash is None:
                break
            block = chain.get_block(block_hash)
            undo = chain.db.get(CHAIN_UNDO + block_hash)
            if (
                block is None
                or undo is None
                or (best is not None and block.header.prev_hash != best)
            ):
                break  # the chain moved while we read it: write what we have, look again
            self._connect(overlay, block, bytes(undo))
            best = block_hash
            height += 1
            blocks += 1
        if best != self._best:
            self._write(overlay, best)

    def _connect(self, overlay: _Overlay, block: Block, undo_bytes: bytes) -> None:
        overlay.start_block()
        height = block.header.height
        spent = dict(decode_undo(undo_bytes).spent)
        for position, tx in enumerate(block.transactions):
            txid = tx.txid
            overlay.set(P_TX + txid, block.hash + _u32(position))
            where = _u32(height) + _u32(position)
            for n, txin in enumerate(tx.inputs):
                coin = spent.get(txin.prevout)
                if coin is None:
                    raise IndexCorrupt(f"undo of {block.hash.hex()} lacks {txin.prevout}")
                overlay.set(
                    P_HISTORY + coin.pubkey + where + SPENT + _u32(n), txid + _u64(coin.amount)
                )
                overlay.set(P_COINS + coin.pubkey + txin.prevout.key(), None)
            for n, out in enumerate(tx.outputs):
                overlay.set(
                    P_HISTORY + out.pubkey + where + RECEIVED + _u32(n), txid + _u64(out.amount)
                )
                flag = b"\x01" if tx.is_coinbase else b"\x00"
                overlay.set(
                    P_COINS + out.pubkey + OutPoint(txid, n).key(),
                    _u64(out.amount) + _u32(height) + flag,
                )
        overlay.changes[P_UNDO + block.hash] = pack(overlay.undo)

    def _disconnect(self, overlay: _Overlay, block_hash: bytes) -> bytes:
        """Undo the records of ``block_hash``; returns its parent's hash."""
        raw = overlay.get(P_UNDO + block_hash)
        if raw is None:
            raise IndexCorrupt(f"no index undo record for {block_hash.hex()}")
        for key, before in reversed(unpack_canonical(raw, MAX_UNDO_SIZE)):
            overlay.changes[bytes(key)] = None if before is None else bytes(before)
        overlay.changes[P_UNDO + block_hash] = None
        return self.core.chainstate.index[block_hash].prev_hash

    def _write(self, overlay: _Overlay, best: bytes | None) -> None:
        # Not synced to disk: the marker travels in the same batch, so whatever prefix
        # of the log survives a crash is a consistent index, and the chainstate's own
        # synced batches flush ours before them anyway.
        with self.db.write_batch(transaction=True) as batch:
            for key, value in overlay.changes.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            if best is None:
                batch.delete(K_MARKER)
            else:
                batch.put(K_MARKER, best)
        self._best = best

    def _wipe(self) -> None:
        """Delete every index record (marker first, so a kill midway leaves an index
        that simply starts from genesis again)."""
        self.db.delete(K_MARKER, sync=True)
        self._best = None
        while True:
            keys = list(islice(self.db.iterator(include_value=False), MAX_CHANGES_PER_BATCH))
            if not keys:
                return
            with self.db.write_batch(transaction=True) as batch:
                for key in keys:
                    batch.delete(key)


def _prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix``."""
    return prefix + b"\xff" * (1 + 4 + 4 + 1 + 4)
