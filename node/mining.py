"""The miner: ``fcd --mine`` draws for the next block on the tip (specs/pob.md §2).

One task in the daemon's nursery (:meth:`Miner.run`) repeats a short pipeline:

1. **Template.** Under the core's lock, so the tip, its lottery jobs and the mempool are
   read at one instant (the core changes them together in a worker thread), take the
   tip's :class:`~chain.contextual.ParentInfo`, ``jobs_for_child()`` and the best mempool
   transactions with a coinbase paying ``pay_to`` (``chain.template.block_contents``),
   and the unsigned header at ``max(now, median_time_past + 1)``
   (``chain.producer.unsigned_header``).
2. **Draws.** A batch of ``batch`` counters goes through ``chain.producer.search_work``
   in a worker thread (``trio.to_thread.run_sync``), so the event loop keeps serving
   peers and RPC while the model runs. Counters continue from the last batch, so no
   draw of a template is computed twice; a new template starts again at 0, since its
   seed differs (the seed covers the parent, the Merkle root and the time).
3. **Staleness.** Between batches (a batch is short: well under a second on the tiny
   regtest model, a few seconds on SmolLM2 on a CPU) the miner drains its subscription
   to the core's events: a block connected or disconnected, or transactions accepted,
   make the template stale and it is rebuilt before the next batch. The tip is also
   compared directly, so an event lost to a full channel cannot leave us drawing on an
   old parent; and a template older than :data:`TEMPLATE_MAX_AGE` is refreshed for its
   time.
4. **A win.** The header is signed with the miner key (``chain.producer.sign_header``)
   and the block handed to ``core.submit_block`` at once; the core validates it like any
   block (re-executing the draw) and publishes ``BlockConnected``, on which the p2p relay
   announces it (``node.p2p.relay``). The next template is then built on it.
5. **Stop.** Cancellation (SIGINT/SIGTERM cancel the nursery) reaches the loop at its
   next checkpoint; trio never abandons a worker thread, so a batch in flight finishes
   first and nothing is left running.

The miner signs with a key of its own kept in ``DATADIR/miner.key`` (32 random bytes,
mode 0600, made on first use like ``p2p.key``); the header's worker key is its x-only
public key, and the coinbase pays ``--pay-to`` or, by default, that same key.

``--mine-threads N`` is applied with ``torch.set_num_threads``, which is process-wide:
the same number of threads then also serves the core's re-execution of draws when it
validates blocks. It is set from the miner's worker thread before each batch (OpenMP
keeps its thread count per calling thread, and trio reuses worker threads).

The miner keeps counters (:class:`MiningInfo`) that ``GET /mining/info`` and ``fc mining
info`` show: draws, the draw rate over the last :data:`RATE_WINDOW` seconds, blocks found
(the last :data:`FOUND_KEPT` listed), the template's height and target, and the expected
seconds to a block at that rate (``block_work(target) / draws_per_second``).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import trio

from chain.block import Block, BlockHeader
from chain.contextual import ParentInfo, next_target
from chain.difficulty import block_work
from chain.lottery import LotteryJob, Sampler
from chain.params import ChainParams
from chain.producer import search_work, sign_header, unsigned_header
from chain.schnorr import pubkey_of
from chain.template import block_contents
from chain.transaction import Transaction
from node.core import NodeCore, NodeEvent
from node.files import read_or_create_secret

log = logging.getLogger("fcd.mining")

MINER_KEY_FILE = "miner.key"
MINER_KEY_SIZE = 32
RATE_WINDOW = 60.0  # seconds of batches the draw rate is measured over
FOUND_KEPT = 100  # found blocks listed (the count goes on beyond)
TEMPLATE_MAX_AGE = 60.0  # seconds before a template is rebuilt anyway, for a fresh time
ERROR_BACKOFF = 5.0  # seconds to wait after an unexpected error before trying again


class MinerKeyError(Exception):
    """The miner key file exists but cannot be used; the message is one line."""


# -- the miner key --------------------------------------------------------------------
def load_or_create_miner_key(path: Path) -> bytes:
    """The 32-byte secret kept at ``path``, made (mode 0600) if the file does not exist."""
    try:
        secret = read_or_create_secret(path, MINER_KEY_SIZE)
    except OSError as exc:
        raise MinerKeyError(f"cannot read miner key {path}: {exc.strerror}") from None
    if len(secret) != MINER_KEY_SIZE:
        raise MinerKeyError(
            f"miner key {path} holds {len(secret)} bytes, expected {MINER_KEY_SIZE}; "
            "move it away to make a new one"
        )
    try:
        pubkey_of(secret)
    except ValueError:
        raise MinerKeyError(f"miner key {path} is not a valid secret key") from None
    return secret


# -- torch threads ------------------------------------------------------------------------
def use_torch_threads(count: int) -> None:
    """Make torch use ``count`` threads. Process-wide (``torch.set_num_threads``), but
    OpenMP also keeps a count per calling thread, so call it from the thread that draws."""
    import torch  # only a node that mines sets this; importing torch takes a second

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


# -- what the miner works on and reports -----------------------------------------------------
class Template(NamedTuple):
    """A block being drawn for: everything but the winning counter, tokens and signature."""

    parent: ParentInfo
    unsigned: BlockHeader  # counter 0, no tokens, no signature
    transactions: tuple[Transaction, ...]  # the coinbase first
    jobs: tuple[LotteryJob, ...]  # the lottery jobs admitted up to the parent
    fees: int
    built_at: float  # monotonic

    @property
    def height(self) -> int:
        return self.unsigned.height


class FoundBlock(NamedTuple):
    height: int
    hash: bytes
    time: float  # unix time it was found


@dataclass(frozen=True)
class MiningInfo:
    """What ``GET /mining/info`` answers (``node.rpc.schemas.MiningInfo``)."""

    mining: bool
    device: str | None
    threads: int
    batch: int
    draws: int
    draws_per_second: float
    blocks_found: int
    found: tuple[FoundBlock, ...]  # newest last, at most FOUND_KEPT
    started_at: float | None
    height: int  # of the block being drawn for (the tip's child when not mining)
    target: int
    network_draws_per_block: int  # block_work(target): expected draws per block

    @property
    def expected_seconds_per_block(self) -> float | None:
        """Seconds to a block at our draw rate; None while we have no rate."""
        if self.draws_per_second <= 0:
            return None
        return self.network_draws_per_block / self.draws_per_second


def idle_info(core: NodeCore) -> MiningInfo:
    """Mining counters of a node that does not mine: zeros, and the tip's next block."""
    tip = core.chainstate.tip
    target = next_target(core.params, tip.header.time, tip.height)
    return MiningInfo(
        mining=False,
        device=None,
        threads=0,
        batch=0,
        draws=0,
        draws_per_second=0.0,
        blocks_found=0,
        found=(),
        started_at=None,
        height=tip.height + 1,
        target=target,
        network_draws_per_block=block_work(target),
    )


@dataclass
class MinerStats:
    draws: int = 0
    blocks_found: int = 0
    blocks_refused: int = 0  # our own block refused by validation: a bug, logged
    templates: int = 0
    errors: int = 0  # unexpected exceptions survived (logged)
    found: deque[FoundBlock] = field(default_factory=lambda: deque(maxlen=FOUND_KEPT))
    # (start, end, draws) of recent batches, monotonic seconds, for the draw rate
    batches: deque[tuple[float, float, int]] = field(default_factory=deque)

    def count_batch(self, start: float, end: float, draws: int) -> None:
        self.draws += draws
        self.batches.append((start, end, draws))
        self._forget_before(end - RATE_WINDOW)

    def _forget_before(self, horizon: float) -> None:
        while self.batches and self.batches[0][1] < horizon:
            self.batches.popleft()

    def draws_per_second(self, now: float) -> float:
        """Draws over wall time from the first recent batch's start to ``now``: template
        building and block submission count as time spent, as they are."""
        self._forget_before(now - RATE_WINDOW)
        if not self.batches:
            return 0.0
        span = now - self.batches[0][0]
        return sum(b[2] for b in self.batches) / span if span > 0 else 0.0


# -- the miner ---------------------------------------------------------------------------------
class Miner:
    """Draws for blocks on ``core``'s tip with ``sampler`` and submits the ones it wins.

    It needs only the core's public face (``params``, ``chainstate``, ``mempool``,
    ``now``, ``subscribe``, ``submit_block``) plus its lock for reading a template, and a
    :data:`~chain.lottery.Sampler`; the daemon passes ``core.lottery.sample``.
    ``prepare_thread`` runs in the worker thread before each batch (the daemon passes
    :func:`use_torch_threads`); ``device`` and ``threads`` are only reported.
    """

    def __init__(
        self,
        core: NodeCore,
        sampler: Sampler,
        secret: bytes,
        *,
        pay_to: bytes | None = None,
        batch: int = 8,
        device: str = "cpu",
        threads: int = 1,
        prepare_thread: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch < 1:
            raise ValueError("a batch is at least one draw")
        self.core = core
        self.params: ChainParams = core.params
        self.sampler = sampler
        self.secret = secret
        self.worker_key = pubkey_of(secret)
        self.pay_to = pay_to if pay_to is not None else self.worker_key
        self.batch = batch
        self.device = device
        self.threads = threads
        self.prepare_thread = prepare_thread
        self.clock = clock
        self.stats = MinerStats()
        self.template: Template | None = None
        self.running = False
        self.started_at: float | None = None  # unix time
        self._next_counter = 0

    # -- reporting -------------------------------------------------------------------
    def info(self) -> MiningInfo:
        template = self.template
        if template is None:
            idle = idle_info(self.core)
            height, target = idle.height, idle.target
        else:
            height, target = template.height, template.unsigned.target
        return MiningInfo(
            mining=self.running,
            device=self.device,
            threads=self.threads,
            batch=self.batch,
            draws=self.stats.draws,
            draws_per_second=self.stats.draws_per_second(self.clock()),
            blocks_found=self.stats.blocks_found,
            found=tuple(self.stats.found),
            started_at=self.started_at,
            height=height,
            target=target,
            network_draws_per_block=block_work(target),
        )

    # -- the loop ----------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Mine until cancelled. Started with ``nursery.start``: subscribed to the core's
        events before it reports started, so no change after that goes unseen."""
        events = self.core.subscribe()
        self.running = True
        self.started_at = time.time()
        log.info(
            "mining on %s: batches of %d, paying %s",
            self.params.name,
            self.batch,
            self.pay_to.hex(),
        )
        task_status.started()
        try:
            while True:
                try:
                    await self._step(events)
                except trio.EndOfChannel:
                    return  # the core closed: the node is stopping
                except Exception:  # keep the node up; mining resumes after a pause
                    self.stats.errors += 1
                    self.template = None
                    log.exception("mining: unexpected error; retrying in %.0f s", ERROR_BACKOFF)
                    await trio.sleep(ERROR_BACKOFF)
        finally:
            self.running = False
            events.close()
            log.info(
                "mining stopped: %d draws, %d blocks found",
                self.stats.draws,
                self.stats.blocks_found,
            )

    async def _step(self, events: trio.MemoryReceiveChannel[NodeEvent]) -> None:
        """One batch: refresh the template if it is stale, draw, submit a win."""
        if self._stale(events):
            await self._rebuild()
        template = self.template
        assert template is not None
        counters = range(self._next_counter, self._next_counter + self.batch)
        self._next_counter += self.batch
        started = self.clock()
        won = await trio.to_thread.run_sync(self._draw, template, counters)
        self.stats.count_batch(started, self.clock(), len(counters))
        if won is not None:
            await self._submit(template, won)

    def _stale(self, events: trio.MemoryReceiveChannel[NodeEvent]) -> bool:
        """Whether the template must be rebuilt; drains every event waiting."""
        changed = False
        while True:
            try:
                events.receive_nowait()
            except trio.WouldBlock:
                break  # EndOfChannel (the core closed) goes up to run()
            changed = True  # a block in or out, or transactions accepted: all change it
        template = self.template
        return (
            changed
            or template is None
            or template.parent.hash != self.core.chainstate.tip.hash
            or self.clock() - template.built_at > TEMPLATE_MAX_AGE
        )

    async def _rebuild(self) -> None:
        old = self.template
        # The tip, its jobs and the mempool change together inside the core's lock, in
        # a worker thread; read them under the same lock (as NodeCore.generate does) so
        # the template never mixes a new tip with the old mempool.
        template = await self.core.read_consistent(self._build_template)
        self.template = template
        self.stats.templates += 1
        if old is None or template.unsigned != old.unsigned:
            self._next_counter = 0  # another seed: counter 0 is a new draw
        if old is None or template.parent.hash != old.parent.hash:
            log.debug(
                "mining block %d on %s (%d transactions)",
                template.height,
                template.parent.hash.hex(),
                len(template.transactions),
            )

    def _build_template(self) -> Template:
        """In a worker thread, with the core's lock held (``NodeCore.read_consistent``)."""
        core = self.core
        chain = core.chainstate
        parent = chain.parent_info(chain.tip.hash)
        jobs = tuple(chain.jobs_for_child())
        contents = block_contents(self.params, parent, core.mempool, self.pay_to)
        # Strictly after the median time past, even when blocks come faster than 1/s.
        when = max(core.now(), parent.median_time_past + 1)
        unsigned = unsigned_header(
            self.params, parent, self.worker_key, contents.transactions, when
        )
        return Template(parent, unsigned, contents.transactions, jobs, contents.fees, self.clock())

    def _draw(self, template: Template, counters: range) -> BlockHeader | None:
        """In a worker thread: one batch of draws; the winning header (unsigned) or None."""
        if self.prepare_thread is not None:
            self.prepare_thread()
        return search_work(self.params, template.unsigned, template.jobs, self.sampler, counters)

    async def _submit(self, template: Template, won: BlockHeader) -> None:
        block = Block(sign_header(won, self.secret, self.params), template.transactions)
        outcome = await self.core.submit_block(block)
        self.template = None  # built on next round, on our block (or whatever won)
        if outcome.error is not None:
            self.stats.blocks_refused += 1
            log.error(
                "mined block %d %s was refused: %s",
                won.height,
                block.hash.hex(),
                outcome.error,
            )
            return
        self.stats.blocks_found += 1
        self.stats.found.append(FoundBlock(won.height, block.hash, time.time()))
        log.info(
            "mined block %d %s (counter %d, %d transactions, %d fees)",
            won.height,
            block.hash.hex(),
            won.work.counter,
            len(template.transactions) - 1,
            template.fees,
        )


def miner_for(
    core: NodeCore,
    datadir: Path,
    *,
    pay_to: bytes | None,
    batch: int,
    device: str,
    threads: int,
) -> Miner:
    """The daemon's miner: the core's lottery sampler, the key in ``datadir/miner.key``,
    torch set to ``threads`` threads in the drawing thread. Raises :class:`MinerKeyError`."""
    secret = load_or_create_miner_key(datadir / MINER_KEY_FILE)
    return Miner(
        core,
        core.lottery.sample,
        secret,
        pay_to=pay_to,
        batch=batch,
        device=device,
        threads=threads,
        prepare_thread=functools.partial(use_torch_threads, threads),
    )
