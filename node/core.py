"""The node's validation core: one chainstate, one mempool, events out.

Everything that changes the ledger goes through :class:`NodeCore`: blocks and
transactions from peers, from RPC, and from the regtest ``generate`` command. It owns
the only ``Chainstate`` (a LevelDB directory opens once per process) and the mempool,
and serialises every change behind one ``trio.Lock``. The work itself (signature checks,
LevelDB batches) runs in a worker thread through ``trio.to_thread.run_sync`` so the
event loop keeps serving peers and RPC while a block validates (measured: inline work
over ~5 ms stalls the loop).

Validation re-executes each block's winning draw (specs/pob.md) with the ``lottery`` the
core is given: its ``verify`` is the chainstate's work verifier, its ``sample`` draws
the blocks ``generate`` makes. Both run in the worker thread, never on the loop.

The network and RPC learn about validation only through :class:`NodeEvent`s published to
bounded subscriber channels, as Bitcoin Core's validation interface does. A subscriber
that falls behind loses events (counted in ``events_dropped``) rather than growing our
memory; relay is best-effort and sync repairs anything missed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import trio

from chain.block import Block
from chain.chainstate import Chainstate, ChainUpdate
from chain.errors import RuleError
from chain.lottery import DrawTask
from chain.mempool import AcceptResult, Mempool
from chain.params import ChainParams
from chain.policy import DEFAULT_POLICY, PolicyConfig
from chain.template import create_block
from chain.transaction import Transaction

T = TypeVar("T")
EVENT_BUFFER = 1024  # events a subscriber may lag behind before it loses some


class Lottery(Protocol):
    """The model side of the block lottery (``workloads.lottery.ExactLottery``)."""

    def sample(self, tasks: Sequence[DrawTask]) -> list[bytes]: ...

    def verify(self, task: DrawTask, tokens: bytes) -> bool: ...


@dataclass(frozen=True)
class BlockConnected:
    block: Block


@dataclass(frozen=True)
class BlockDisconnected:
    block: Block


@dataclass(frozen=True)
class TransactionsAccepted:
    transactions: tuple[Transaction, ...]


NodeEvent = BlockConnected | BlockDisconnected | TransactionsAccepted


@dataclass
class CoreStats:
    """Counters for ``/metrics``."""

    blocks_accepted: int = 0
    blocks_rejected: int = 0
    txs_accepted: int = 0
    txs_rejected: int = 0
    events_dropped: int = 0
    validation_seconds: float = 0.0
    rejects: dict[str, int] = field(default_factory=dict)

    def count_reject(self, code: str) -> None:
        self.rejects[code] = self.rejects.get(code, 0) + 1


@dataclass(frozen=True)
class BlockOutcome:
    """What submitting one block did: the tip change, and the block's own error if any."""

    update: ChainUpdate
    error: RuleError | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


class NodeCore:
    def __init__(
        self,
        datadir: Path,
        params: ChainParams,
        policy: PolicyConfig = DEFAULT_POLICY,
        clock: Callable[[], float] = time.time,
        *,
        lottery: Lottery,
    ) -> None:
        self.params = params
        self.clock = clock
        self.lottery = lottery
        self.chainstate = Chainstate(datadir / "chainstate", params, lottery.verify)
        self.mempool = Mempool(self.chainstate, params, policy)
        self.stats = CoreStats()
        self._lock = trio.Lock()
        self._subscribers: list[trio.MemorySendChannel[NodeEvent]] = []
        self._pending: list[NodeEvent] = []
        self.chainstate.listeners.append(self._on_chain_update)

    def now(self) -> int:
        return int(self.clock())

    def close(self) -> None:
        for channel in self._subscribers:
            channel.close()
        self.chainstate.close()

    # -- events ------------------------------------------------------------------
    def subscribe(self, buffer: int = EVENT_BUFFER) -> trio.MemoryReceiveChannel[NodeEvent]:
        send, receive = trio.open_memory_channel[NodeEvent](buffer)
        self._subscribers.append(send)
        return receive

    def _publish(self, events: list[NodeEvent]) -> None:
        for event in events:
            for channel in list(self._subscribers):
                try:
                    channel.send_nowait(event)
                except trio.WouldBlock:
                    self.stats.events_dropped += 1
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._subscribers.remove(channel)

    def _on_chain_update(self, update: ChainUpdate) -> None:
        """Runs inside ``accept_block`` (worker thread, lock held): keep the mempool in step."""
        now = self.now()
        for block in update.disconnected:
            self._pending.append(BlockDisconnected(block))
        for block in update.connected:
            self.mempool.remove_for_block(block, now)
            self._pending.append(BlockConnected(block))
        if update.disconnected:
            readd = [tx for block in update.disconnected for tx in block.transactions[1:]]
            self.mempool.readd_disconnected(readd, now)

    # -- changing the ledger ---------------------------------------------------------
    async def submit_block(self, block: Block) -> BlockOutcome:
        """Validate ``block`` and move the tip; errors are returned, not raised."""
        (outcome,) = await self.submit_blocks([block])
        return outcome

    async def submit_blocks(self, blocks: list[Block]) -> list[BlockOutcome]:
        """Submit consecutive blocks in one trip to the worker thread (sync hands over
        runs of downloaded blocks: one thread hop and lock per block cost as much as a
        fifth of validating it). Stops after the first block with an error; the outcomes
        returned are those of the blocks tried, in order."""
        async with self._lock:
            started = time.perf_counter()
            outcomes = await trio.to_thread.run_sync(self._accept_blocks_locked, blocks)
            self.stats.validation_seconds += time.perf_counter() - started
            events, self._pending = self._pending, []
        for outcome in outcomes:
            if outcome.error is None:
                self.stats.blocks_accepted += 1
            else:
                self.stats.blocks_rejected += 1
                self.stats.count_reject(outcome.error.code.value)
        self._publish(events)
        return outcomes

    def _accept_blocks_locked(self, blocks: list[Block]) -> list[BlockOutcome]:
        outcomes = []
        for block in blocks:
            outcome = self._accept_block_locked(block)
            outcomes.append(outcome)
            if outcome.error is not None:
                break
        return outcomes

    def _accept_block_locked(self, block: Block) -> BlockOutcome:
        try:
            return BlockOutcome(self.chainstate.accept_block(block, self.now()))
        except RuleError as exc:
            return BlockOutcome(ChainUpdate([], []), exc)

    async def read_consistent(self, read: Callable[[], T]) -> T:
        """Run ``read`` in a worker thread with the core's lock held, so it sees the tip,
        the lottery jobs and the mempool of one moment (the miner's template needs all
        three to agree). ``read`` must not change anything."""
        async with self._lock:
            return await trio.to_thread.run_sync(read)

    def note_assumed_valid(self, header_hashes: list[bytes]) -> int:
        """Sync found the assume-valid block among checked, linked headers: their draws
        will not be re-executed (``Chainstate.note_assumed_valid``). A set update that the
        validation thread only reads, so it needs no lock."""
        return self.chainstate.note_assumed_valid(header_hashes)

    async def submit_transaction(self, tx: Transaction) -> AcceptResult:
        """Offer ``tx`` to the mempool; raises ``RuleError`` when it is refused."""
        async with self._lock:
            try:
                result = await trio.to_thread.run_sync(self.mempool.accept, tx, self.now())
            except RuleError as exc:
                self.stats.txs_rejected += 1
                self.stats.count_reject(exc.code.value)
                raise
        self.stats.txs_accepted += len(result.accepted)
        if result.accepted:
            self._publish([TransactionsAccepted(tuple(result.accepted))])
        return result

    async def generate(
        self, count: int, producer_secret: bytes, pay_to: bytes | None = None
    ) -> list[bytes]:
        """Produce ``count`` blocks on top of our tip with mempool transactions (regtest)."""
        hashes = []
        for _ in range(count):
            async with self._lock:
                parent = self.chainstate.parent_info(self.chainstate.tip.hash)
                # Strictly after the parent, and after the median time past, even if
                # many blocks are made within one second.
                when = max(self.now(), parent.median_time_past + 1)
                template = await trio.to_thread.run_sync(
                    functools.partial(
                        create_block,
                        self.params,
                        parent,
                        producer_secret,
                        self.mempool,
                        when,
                        sampler=self.lottery.sample,
                        jobs=self.chainstate.jobs_for_child(),
                        pay_to=pay_to,
                    )
                )
            outcome = await self.submit_block(template.block)
            if outcome.error is not None:
                raise outcome.error
            hashes.append(template.block.hash)
        return hashes
