"""Headers-first sync: learn a better chain's headers, check them, then fetch its blocks.

Whenever a connected peer claims more chain work than our tip (in its hello, or through
an announcement), :class:`HeaderSync` runs a *round* against that peer (specs/p2p.md §4):

1. **Headers.** Ask the peer for up to 2000 headers after a *block locator*: hashes of
   our chain from the tip back to genesis, the last ten one apart, then twice as far apart
   each step (:func:`locator_heights`), so ~40 hashes cover any chain and the peer finds
   our fork point with its first hash on its own chain. Each reply must link to a block we
   know, each header to the one before it with consecutive heights, and each header must
   pass ``chain.checks.check_header`` (version, target range, ticket, producer signature)
   — all before a single block body is fetched, so a peer cannot make us download blocks
   of a chain that is wrong on its face. Header fetching runs ahead of block fetching by
   up to :data:`LOOKAHEAD` headers and continues until the peer has no more.
2. **Blocks.** The blocks of those headers are fetched by request/response in batches of
   :data:`BATCH` from up to :data:`MAX_SYNC_PEERS` peers in parallel, two requests per
   peer in flight, never more than :data:`WINDOW` blocks (or :data:`WINDOW_BYTES` bytes)
   ahead of the next block to submit. A peer that does not have a block drops out of the
   round; the others take over its share.
3. **Submit.** Blocks go to ``NodeCore.submit_blocks`` strictly in chain order, in runs
   of up to :data:`SUBMIT_RUN` downloaded blocks per trip to the worker thread, so each
   one's parent is known when it arrives. An invalid block ends the round and costs the
   peer that gave us its header chain its connection (honest nodes serve headers only of
   their active chain, which is valid); a block "too new" for our clock ends the round
   without blame, to be tried again later.

Rounds repeat until no peer claims more work than we have. A peer whose round ends with
its claim unproven (it ran out of headers below the work it claimed) has its claim
lowered to ours, so a peer cannot keep us syncing by lying. Nothing is persisted: a node
killed mid-sync restarts with its durable chainstate and simply runs a new round from
its tip.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from chain.block import Block, BlockHeader
from chain.chainstate import BlockStatus
from chain.checks import check_header
from chain.difficulty import block_work
from chain.errors import BlockTooNew, InvalidBlock, UnknownParent
from chain.params import ChainParams
from node.p2p import messages as m
from node.p2p.errors import PeerUnavailable
from node.p2p.limits import Penalty

if TYPE_CHECKING:
    from node.p2p.peers import Peer
    from node.p2p.service import P2PService

log = logging.getLogger("fc.p2p.sync")

LOOKAHEAD = 4000  # validated headers waiting for their blocks, at most
WINDOW = 512  # blocks requested or received ahead of the next one to submit
WINDOW_BYTES = 64 * 1024 * 1024  # received blocks waiting for submission, in bytes
BATCH = 16  # blocks per GET_BLOCKS request
SUBMIT_RUN = 16  # downloaded blocks handed to NodeCore in one trip (holds its lock ~50 ms)
MAX_SYNC_PEERS = 8  # peers fetching blocks in one round
WORKERS_PER_PEER = 2  # requests in flight per peer
RECRUIT_INTERVAL = 0.25  # how often a round looks for more peers to download from
RETRY_AFTER = 5.0  # seconds before a peer whose round failed is chosen again
TOO_NEW_RETRY = 60.0


def locator_heights(tip: int) -> list[int]:
    """Heights of a block locator for a chain whose tip is at ``tip``: the ten newest,
    then exponentially sparser, always ending at genesis (0)."""
    heights = []
    step = 1
    height = tip
    while height > 0:
        heights.append(height)
        if len(heights) >= 10:
            step *= 2
        height -= step
    heights.append(0)
    return heights


@dataclass(frozen=True)
class SyncState:
    """Where sync stands, for the RPC and ``fc``."""

    running: bool  # a round is fetching headers or blocks now
    peer: str | None  # the peer whose chain the round follows
    height: int  # our tip
    header_height: int  # the best header we have checked (our tip when idle)
    best_peer_height: int  # the best tip any connected peer has shown us
    blocks_in_flight: int  # requested and not yet received
    blocks_waiting: int  # received and not yet submitted


class SyncAborted(Exception):
    """A round ended early; ``retry_after`` says when its peer may be tried again."""

    def __init__(self, reason: str, retry_after: float = RETRY_AFTER) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class BadHeaders(Exception):
    """A headers reply that breaks linkage or a context-free header rule."""


def check_headers(
    headers: list[BlockHeader], parent_hash: bytes, parent_height: int, params: ChainParams
) -> list[bytes]:
    """Check that ``headers`` extend ``parent_hash`` one by one and each passes
    ``check_header``; return their hashes. Raises :class:`BadHeaders`."""
    hashes = []
    previous, height = parent_hash, parent_height
    for n, header in enumerate(headers):
        if header.prev_hash != previous:
            raise BadHeaders(f"header {n} does not link to the header before it")
        if header.height != height + 1:
            raise BadHeaders(f"header {n} has height {header.height}, expected {height + 1}")
        try:
            check_header(header, params)
        except InvalidBlock as exc:
            raise BadHeaders(f"header {n}: {exc}") from None
        previous = header.hash()
        height += 1
        hashes.append(previous)
    return hashes


class HeaderSync:
    """Runs sync rounds for as long as some peer has more work than we do."""

    def __init__(self, service: P2PService) -> None:
        self.service = service
        self._wake = trio.Event()
        self._round: _Round | None = None
        self._retry_at: dict[str, float] = {}

    def wake(self) -> None:
        """Something changed (a peer came, went or showed a better tip): look again, and
        let a running round recruit a newly connected peer at once."""
        self._wake.set()
        if self._round is not None:
            self._round.peers_changed()

    @property
    def running(self) -> bool:
        return self._round is not None

    def state(self) -> SyncState:
        cs = self.service.core.chainstate
        peers = self.service.connected_peers()
        current = self._round
        return SyncState(
            running=current is not None,
            peer=current.peer.peer_id if current else None,
            height=cs.height,
            header_height=max(cs.height, current.tip_height if current else 0),
            best_peer_height=max((p.best_height for p in peers), default=0),
            blocks_in_flight=len(current.requested) if current else 0,
            blocks_waiting=len(current.received) if current else 0,
        )

    def _choose(self) -> tuple[Peer | None, float]:
        """The peer with the most work above ours, or None and how long to wait."""
        tip_work = self.service.core.chainstate.tip.chain_work
        now = time.monotonic()
        best: Peer | None = None
        wait = float("inf")
        index = self.service.core.chainstate.index
        for peer in self.service.connected_peers():
            if peer.unknown_tip is not None and peer.unknown_tip in index:
                peer.unknown_tip = None
            if peer.best_work <= tip_work and peer.unknown_tip is None:
                continue
            retry = self._retry_at.get(peer.peer_id, 0.0)
            if retry > now:
                wait = min(wait, retry - now)
                continue
            if best is None or peer.best_work > best.best_work:
                best = peer
        return best, wait

    async def run(self) -> None:
        while True:
            peer, wait = self._choose()
            if peer is None:
                with trio.move_on_after(wait):
                    await self._wake.wait()
                self._wake = trio.Event()
                continue
            self._wake = trio.Event()
            current = self._round = _Round(self.service, peer)
            announced = peer.unknown_tip
            started = time.monotonic()
            try:
                await current.run()
            except SyncAborted as exc:
                log.info("sync from %s stopped: %s", peer.peer_id, exc)
                self._retry_at[peer.peer_id] = time.monotonic() + exc.retry_after
            else:
                tip = self.service.core.chainstate.tip
                log.info(
                    "sync from %s done: %d blocks in %.1f s, height %d",
                    peer.peer_id,
                    current.submitted,
                    time.monotonic() - started,
                    tip.height,
                )
                if peer.best_work > tip.chain_work:
                    # It ran out of headers below the work it claimed: the claim was hollow.
                    peer.best_work = tip.chain_work
                if peer.unknown_tip == announced:
                    peer.unknown_tip = None  # the round ended without it: a hollow announcement
            finally:
                self._round = None
            # Forget retry marks of peers that left, so the map stays as small as our peer set.
            connected = {p.peer_id for p in self.service.connected_peers()}
            for pid in [p for p in self._retry_at if p not in connected]:
                del self._retry_at[pid]


class _Round:
    """One round: the chain of ``peer`` from our tip (or the fork point) to its end."""

    def __init__(self, service: P2PService, peer: Peer) -> None:
        self.service = service
        self.core = service.core
        self.peer = peer
        tip = self.core.chainstate.tip
        # The pending chain: checked headers whose blocks are not submitted yet, in order.
        self.headers: list[BlockHeader] = []
        self.hashes: list[bytes] = []
        self.next = 0  # index in ``hashes`` of the next block to submit
        # The end of the chain we have headers for (our tip until the first reply).
        self.tip_hash, self.tip_height, self.tip_work = tip.hash, tip.height, tip.chain_work
        self.requested: dict[bytes, str] = {}  # block hash -> peer asked
        self.received: dict[bytes, Block] = {}
        self.received_bytes = 0
        self.exhausted = False  # the peer has no headers beyond ``tip_hash``
        self.submitted = 0
        self.workers = 0
        self._changed = trio.Event()
        self._peers_event = trio.Event()  # set when a peer connects during the round
        self._failure: SyncAborted | None = None
        self._scope: trio.CancelScope | None = None

    # -- coordination -----------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait(self) -> None:
        await self._changed.wait()

    def _fail(self, reason: str, retry_after: float = RETRY_AFTER) -> None:
        if self._failure is None:
            self._failure = SyncAborted(reason, retry_after)
        if self._scope is not None:
            self._scope.cancel()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            nursery.start_soon(self._fetch_headers)
            nursery.start_soon(self._recruit, nursery)
            await self._submit_all()
            nursery.cancel_scope.cancel()
        if self._failure is not None:
            raise self._failure

    async def _recruit(self, nursery: trio.Nursery) -> None:
        """Start block downloads from the round's peer and from every other peer that
        claims to be ahead of us, including peers that connect while the round runs."""
        recruited: set[str] = set()
        while True:
            for peer in [self.peer, *self.service.connected_peers()]:
                if peer.peer_id in recruited or len(recruited) >= MAX_SYNC_PEERS:
                    continue
                if peer is not self.peer and peer.best_height <= self.core.chainstate.height:
                    continue
                recruited.add(peer.peer_id)
                for _ in range(WORKERS_PER_PEER):
                    self.workers += 1
                    nursery.start_soon(self._download, peer)
            with trio.move_on_after(RECRUIT_INTERVAL):  # or sooner, when a peer connects
                await self._peers_event.wait()
            self._peers_event = trio.Event()

    def peers_changed(self) -> None:
        self._peers_event.set()

    # -- headers -------------------------------------------------------------------------
    def _locator(self) -> tuple[bytes, ...]:
        """A locator for the end of the pending chain (our tip before the first reply)."""
        base = self.tip_height - len(self.hashes) + 1  # height of hashes[0]
        cursor = self.headers[0].prev_hash if self.hashes else self.tip_hash
        cursor_height = base - 1
        locator = []
        for height in locator_heights(self.tip_height)[: m.MAX_LOCATOR]:
            if height >= base:
                locator.append(self.hashes[height - base])
                continue
            found = self._ancestor(cursor, cursor_height, height)
            if found is None:
                break
            cursor, cursor_height = found, height
            locator.append(found)
        return tuple(locator)

    def _ancestor(self, block_hash: bytes, height: int, target: int) -> bytes | None:
        """The ancestor at ``target`` of the known block ``block_hash`` at ``height``:
        walk back through the block index until the active chain, then index it."""
        cs = self.core.chainstate
        while height > target:
            if cs.is_active(block_hash):
                return cs.block_hash_at(target)
            entry = cs.index.get(block_hash)
            if entry is None:
                return None
            block_hash, height = entry.prev_hash, height - 1
        return block_hash

    async def _fetch_headers(self) -> None:
        while not self.exhausted:
            while len(self.hashes) - self.next >= LOOKAHEAD:
                await self._wait()
            try:
                headers = await self.service.request_headers(self.peer, self._locator())
            except PeerUnavailable as exc:
                self._fail(f"headers: {exc}")
                return
            await self._add_headers(headers)
            if len(headers) < m.MAX_HEADERS:
                self.exhausted = True
            self._notify()

    async def _add_headers(self, headers: list[BlockHeader]) -> None:
        if not headers:
            return
        cs = self.core.chainstate
        parent_hash = headers[0].prev_hash
        if parent_hash == self.tip_hash:
            parent_height, parent_work = self.tip_height, self.tip_work
        else:
            parent = cs.index.get(parent_hash)
            if parent is None:
                self.service.penalize(
                    self.peer.peer_id, Penalty.DISCONNECTED_HEADERS, "first header's parent unknown"
                )
                self._fail("headers do not connect to our chain")
                return
            if parent.failed:
                self.service.penalize(
                    self.peer.peer_id, Penalty.INVALID_HEADER, "headers build on an invalid block"
                )
                self._fail("the peer's chain builds on a block we know is invalid")
                return
            if self.hashes[self.next :]:
                # The peer answered from another fork point than our pending chain's end:
                # its chain moved. Start a fresh round from our tip.
                self._fail("the peer's chain changed during the round", 0.0)
                return
            # Everything pending is submitted: continue from wherever the peer forks.
            self.headers.clear()
            self.hashes.clear()
            self.next = 0
            parent_height, parent_work = parent.height, parent.chain_work
        try:
            hashes = await trio.to_thread.run_sync(
                check_headers, headers, parent_hash, parent_height, self.service.params
            )
        except BadHeaders as exc:
            self.service.penalize(self.peer.peer_id, Penalty.INVALID_HEADER, str(exc))
            self._fail(f"invalid headers: {exc}")
            return
        work = parent_work
        for header, block_hash in zip(headers, hashes, strict=True):
            known = cs.index.get(block_hash)
            if known is not None and known.failed:
                self.service.penalize(
                    self.peer.peer_id, Penalty.INVALID_HEADER, "header of a block known invalid"
                )
                self._fail("the peer's chain contains a block we know is invalid")
                return
            work += block_work(header.target)
        self.headers.extend(headers)
        self.hashes.extend(hashes)
        self.tip_hash, self.tip_height, self.tip_work = hashes[-1], headers[-1].height, work
        self.peer.claim(self.tip_hash, self.tip_height, work)

    # -- blocks ---------------------------------------------------------------------------
    def _have(self, block_hash: bytes) -> bool:
        entry = self.core.chainstate.index.get(block_hash)
        return entry is not None and bool(entry.status & BlockStatus.HAVE_DATA)

    def _take_batch(self) -> list[bytes]:
        if self.received_bytes >= WINDOW_BYTES:
            return []
        batch = []
        end = min(len(self.hashes), self.next + WINDOW)
        for block_hash in self.hashes[self.next : end]:
            if block_hash in self.requested or block_hash in self.received:
                continue
            if self._have(block_hash):
                continue
            batch.append(block_hash)
            if len(batch) == BATCH:
                break
        return batch

    async def _download(self, peer: Peer) -> None:
        try:
            while True:
                batch = self._take_batch()
                if not batch:
                    if self.exhausted and self.next >= len(self.hashes):
                        return
                    await self._wait()
                    continue
                for block_hash in batch:
                    self.requested[block_hash] = peer.peer_id
                try:
                    blocks = await self.service.request_blocks(peer, batch)
                except PeerUnavailable as exc:
                    log.info("sync: %s dropped out: %s", peer.peer_id, exc)
                    return
                finally:
                    for block_hash in batch:
                        self.requested.pop(block_hash, None)
                    self._notify()
                missing = 0
                for block in blocks:
                    if block is None:
                        missing += 1
                    elif block.hash not in self.received:
                        self.received[block.hash] = block
                        self.received_bytes += block.size
                if missing:
                    log.info("sync: %s lacks %d blocks of this chain", peer.peer_id, missing)
                    return
        finally:
            self.workers -= 1
            if self.workers == 0 and not (self.exhausted and self.next >= len(self.hashes)):
                self._fail("no peer serves the blocks of this chain")

    async def _submit_all(self) -> None:
        cs = self.core.chainstate
        while True:
            if self.next >= len(self.hashes):
                if self.exhausted:
                    return
                await self._wait()
                continue
            block_hash = self.hashes[self.next]
            if self._have(block_hash):  # stored already (an announcement was quicker)
                if cs.index[block_hash].failed:
                    self.service.penalize(
                        self.peer.peer_id, Penalty.INVALID_BLOCK, "chain with an invalid block"
                    )
                    self._fail("the chain contains an invalid block")
                    return
                if self.received.pop(block_hash, None) is not None:
                    self.received_bytes = sum(b.size for b in self.received.values())
                self._advance()
                continue
            # Leave them in ``received`` until submitted, so no worker fetches them again.
            run = self._ready_run()
            if not run:
                await self._wait()
                continue
            outcomes = await self.core.submit_blocks(run)
            for block, outcome in zip(run, outcomes, strict=False):
                del self.received[block.hash]
                self.received_bytes -= block.size
                if outcome.error is None:
                    self.submitted += 1
                    self.service.stats.blocks_synced += 1
                    self._advance()
            error = outcomes[-1].error
            if error is not None:
                block = run[len(outcomes) - 1]
                height = block.header.height
                if isinstance(error, BlockTooNew):
                    self._fail(f"block {height} is too new for our clock", TOO_NEW_RETRY)
                elif isinstance(error, UnknownParent):
                    self._fail("parent unknown while submitting in order", 0.0)
                else:
                    self.service.penalize(
                        self.peer.peer_id, Penalty.INVALID_BLOCK, f"height {height}: {error}"
                    )
                    self._fail(f"invalid block at height {height}: {error}")
                return

    def _ready_run(self) -> list[Block]:
        """The downloaded blocks from the next one to submit on, up to the first gap or
        one already stored, at most ``SUBMIT_RUN``."""
        run = []
        for block_hash in self.hashes[self.next : self.next + SUBMIT_RUN]:
            block = self.received.get(block_hash)
            if block is None or (run and self._have(block_hash)):
                break
            run.append(block)
        return run

    def _advance(self) -> None:
        self.next += 1
        if self.next >= 2048:  # drop what is submitted, keep indices small
            del self.headers[: self.next]
            del self.hashes[: self.next]
            self.next = 0
        self._notify()
