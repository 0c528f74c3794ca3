"""Headers-first sync: learn a better chain's headers, check them, then fetch its blocks.

Whenever a connected peer claims more chain work than our tip (in its hello, or through
an announcement), :class:`HeaderSync` runs a *round* against that peer (specs/p2p.md §4):

1. **Headers.** Ask the peer for up to 2000 headers after a *block locator*: hashes of
   our chain from the tip back to genesis, the last ten one apart, then twice as far apart
   each step (:func:`locator_heights`), so ~40 hashes cover any chain and the peer finds
   our fork point with its first hash on its own chain. Each reply must link to a block we
   know, each header to the one before it with consecutive heights, and each header must
   pass ``chain.checks.check_header`` (version, target range, the draw's shape and hash,
   producer signature) — all before a single block body is fetched, so a peer cannot make us download blocks
   of a chain that is wrong on its face, nor make us run the model for a header whose
   draw fails its cheap checks (``bad-work-shape``, ``bad-work-pow``). Header fetching
   runs ahead of block fetching by up to :data:`LOOKAHEAD` headers and continues until
   the peer has no more.
2. **Blocks.** The blocks of those headers are fetched by request/response in batches of
   :data:`BATCH` from up to :data:`MAX_SYNC_PEERS` peers in parallel, two requests per
   peer in flight, never more than :data:`WINDOW` blocks (or :data:`WINDOW_BYTES` bytes)
   ahead of the next block to submit. A peer that does not have a block drops out of the
   round; the others take over its share. Blocks are fetched only for a pending chain
   whose headers claim more work than our tip (or whose headers fill the lookahead), so
   a peer that merely *says* it has more work makes us fetch nothing.
3. **Submit.** Blocks go to ``NodeCore.submit_blocks`` strictly in chain order, in runs
   of downloaded blocks sized to hold NodeCore's lock about :data:`SUBMIT_SECONDS` (at
   most :data:`SUBMIT_RUN`), so each one's parent is known when it arrives. An invalid
   block ends the round and bans the peer that gave us its header chain (honest nodes
   serve headers only of their active chain, which they have validated); a block "too
   new" for our clock ends the round without blame, to be tried again later.

**Claimed work.** A header's draw is only *claimed* until its block connects: checking
that its tokens are the model's draw (``bad-work``) is one model pass, which NodeCore
runs in its worker thread (``NodeCore.submit_blocks`` → ``trio.to_thread.run_sync`` →
``Chainstate.accept_block`` → ``_check_work``), never on the event loop. The three steps
above run as concurrent tasks, so while a run of blocks is being re-executed in that
thread the event loop goes on fetching headers (up to :data:`LOOKAHEAD` ahead) and blocks
(up to :data:`WINDOW` / :data:`WINDOW_BYTES` ahead): download and validation overlap,
with bounded buffers. We hold at most :data:`MAX_UNVERIFIED_HEADERS` checked but
unverified headers of any one peer (of all peers together, in fact): only one round runs
at a time, a round follows one peer's headers, and relay keeps no header chains (one
claimed tip and one unknown announced hash per peer, relay.py).

**Assume-valid.** When the network names an assume-valid block (``params.assume_valid``)
that we have neither stored nor noted, a round first *scans* its peer's headers for it,
before any block is fetched: the headers are checked and linked as in step 1 but only
their hashes are kept (at most :data:`MAX_ASSUME_VALID_SCAN`), and if the block is among
them the chainstate is told it and its ancestors (``Chainstate.note_assumed_valid``):
their draws are not re-executed. Without the scan the lookahead would show the block only
once sync is within a few thousand blocks of it, and everything below would be
re-executed. A peer whose headers lack it is not scanned again. The round's own headers
note it too, should it appear there.

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
from chain.errors import BlockTooNew, InvalidBlock, Reject, RuleError, UnknownParent
from chain.params import ChainParams
from node.p2p import messages as m
from node.p2p.errors import PeerUnavailable
from node.p2p.limits import Penalty
from node.p2p.peers import WORK_REJECTS

if TYPE_CHECKING:
    from node.p2p.peers import Peer
    from node.p2p.service import P2PService

log = logging.getLogger("fc.p2p.sync")

LOOKAHEAD = 4000  # checked headers waiting for their blocks before we ask for more
# Checked headers of one peer whose blocks have not connected yet (their draws are only
# claimed), at most: the lookahead plus one full reply. One round runs at a time.
MAX_UNVERIFIED_HEADERS = LOOKAHEAD + m.MAX_HEADERS
# Header hashes held while scanning a peer's headers for the assume-valid block (~75 MB
# at most as Python objects; ~9.5 years of mainnet blocks).
MAX_ASSUME_VALID_SCAN = 1_000_000
WINDOW = 512  # blocks requested or received ahead of the next one to submit
WINDOW_BYTES = 64 * 1024 * 1024  # received blocks waiting for submission, in bytes
BATCH = 16  # blocks per GET_BLOCKS request
SUBMIT_RUN = 16  # downloaded blocks handed to NodeCore in one trip, at most
# A run holds NodeCore's lock (relay, RPC and the mempool wait) while its draws are
# re-executed: runs are sized from the measured time per block to take about this long.
SUBMIT_SECONDS = 0.25
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
    """A headers reply that breaks linkage or a context-free header rule; ``code`` is the
    rule's reject code (None for linkage)."""

    def __init__(self, reason: str, code: Reject | None = None) -> None:
        super().__init__(reason)
        self.code = code


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
            raise BadHeaders(f"header {n}: {exc}", exc.code) from None
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
        self.seconds_per_block = 0.0  # measured submit time per block (0: not yet known)
        self.lacks_assume_valid: set[str] = set()  # peers whose headers were scanned in vain

    def wake(self) -> None:
        """Something changed (a peer came, went or showed a better tip): look again, and
        let a running round recruit a newly connected peer at once."""
        self._wake.set()
        if self._round is not None:
            self._round.peers_changed()

    def drop_peer(self, peer_id: str) -> None:
        """``peer_id`` was banned: a round following its headers ends now, and its pending
        headers (claimed work we never verified) go with it."""
        if self._round is not None and self._round.peer.peer_id == peer_id:
            self._round._fail(f"{peer_id} was banned", 0.0)
        self._retry_at.pop(peer_id, None)
        self.lacks_assume_valid.discard(peer_id)

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
            self.lacks_assume_valid &= connected


class _Round:
    """One round: the chain of ``peer`` from our tip (or the fork point) to its end."""

    def __init__(self, service: P2PService, peer: Peer) -> None:
        self.service = service
        self.sync = service.sync
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
        # Or a second: our tip may move without the round (relay), which can make the
        # pending chain no longer worth fetching (``_done``).
        with trio.move_on_after(1.0):
            await self._changed.wait()

    def _fail(self, reason: str, retry_after: float = RETRY_AFTER) -> None:
        if self._failure is None:
            self._failure = SyncAborted(reason, retry_after)
        if self._scope is not None:
            self._scope.cancel()

    async def run(self) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            await self._scan_for_assume_valid()
        if self._failure is not None:
            raise self._failure
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

    @property
    def pending(self) -> int:
        """Checked headers whose blocks are not submitted yet."""
        return len(self.hashes) - self.next

    async def _scan_for_assume_valid(self) -> None:
        """Before fetching any block: if the network's assume-valid block is unknown to
        us, walk the peer's headers (checked and linked, hashes kept) until it turns up,
        the peer has no more, or MAX_ASSUME_VALID_SCAN; then note it and its ancestors."""
        cs = self.core.chainstate
        target = self.service.params.assume_valid
        if (
            target is None
            or target in cs.assumed_valid
            or target in cs.index
            or self.peer.peer_id in self.sync.lacks_assume_valid
        ):
            return
        hashes: list[bytes] = []
        locator = self._locator()
        parent_hash, parent_height = b"", 0
        while len(hashes) < MAX_ASSUME_VALID_SCAN:
            try:
                headers = await self.service.request_headers(self.peer, locator)
            except PeerUnavailable as exc:
                self._fail(f"headers: {exc}")
                return
            if not headers:
                break
            if not hashes:
                parent = cs.index.get(headers[0].prev_hash)
                if parent is None or parent.failed:
                    return  # the round itself judges (and penalises) that
                parent_hash, parent_height = parent.hash, parent.height
            elif headers[0].prev_hash != parent_hash:
                return  # its chain moved under the scan: no blame, sync as usual
            try:
                new = await trio.to_thread.run_sync(
                    check_headers, headers, parent_hash, parent_height, self.service.params
                )
            except BadHeaders as exc:
                self._reject_headers(exc)
                return
            hashes.extend(new)
            if target in new:
                added = self.core.note_assumed_valid(hashes)
                log.info(
                    "sync: assume-valid block %s is at height %d of %s's chain; "
                    "%d draws below it will not be re-executed",
                    target.hex()[:16],
                    headers[new.index(target)].height,
                    self.peer.peer_id,
                    added,
                )
                return
            if len(headers) < m.MAX_HEADERS:
                break
            parent_hash, parent_height = new[-1], headers[-1].height
            locator = (parent_hash,)
        log.info("sync: %s's headers do not lead to the assume-valid block", self.peer.peer_id)
        self.sync.lacks_assume_valid.add(self.peer.peer_id)

    def _reject_headers(self, exc: BadHeaders) -> None:
        """A headers reply failed a check: end the round; a failing draw bans the peer."""
        self._fail(f"invalid headers: {exc}")
        if exc.code in WORK_REJECTS:
            self.service.stats.work_bans[exc.code.value] += 1
            self.service.discourage(self.peer.peer_id, Penalty.INVALID_HEADER, str(exc))
        else:
            self.service.penalize(self.peer.peer_id, Penalty.INVALID_HEADER, str(exc))

    async def _fetch_headers(self) -> None:
        while not self.exhausted:
            while self.pending >= LOOKAHEAD:
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
        if self.pending + len(headers) > MAX_UNVERIFIED_HEADERS:  # a reply is ≤ MAX_HEADERS
            self._fail(f"{len(headers)} headers would pass the unverified-header bound")
            return
        try:
            hashes = await trio.to_thread.run_sync(
                check_headers, headers, parent_hash, parent_height, self.service.params
            )
        except BadHeaders as exc:
            self._reject_headers(exc)
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
        assume_valid = self.service.params.assume_valid
        if assume_valid is not None and assume_valid in hashes:
            # The pending chain links to a block we know, header by header: the
            # assume-valid block's ancestors among it are exactly what precedes it.
            # (Usually the scan noted it already; then this adds nothing.)
            added = self.core.note_assumed_valid(list(self.hashes))
            log.info(
                "sync: assume-valid block %s found at height %d; %d draws will not be re-executed",
                assume_valid.hex()[:16],
                headers[hashes.index(assume_valid)].height,
                added,
            )

    # -- blocks ---------------------------------------------------------------------------
    def _have(self, block_hash: bytes) -> bool:
        entry = self.core.chainstate.index.get(block_hash)
        return entry is not None and bool(entry.status & BlockStatus.HAVE_DATA)

    def _worth_fetching(self) -> bool:
        """Whether to fetch blocks now: only when the pending chain's headers claim more
        work than our tip, or fill the lookahead while the peer has more (a fork deeper
        than the lookahead must have blocks submitted before its headers can show the
        work). A peer that only *says* it has more work (its hello, an announcement)
        thus makes us fetch nothing, and one whose headers run out below our work makes
        us fetch nothing more."""
        if self.tip_work > self.core.chainstate.tip.chain_work:
            return True
        return self.pending >= LOOKAHEAD and not self.exhausted

    def _done(self) -> bool:
        """The peer has no more headers and nothing pending is worth fetching."""
        return self.exhausted and (self.next >= len(self.hashes) or not self._worth_fetching())

    def _take_batch(self) -> list[bytes]:
        if self.received_bytes >= WINDOW_BYTES or not self._worth_fetching():
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
                    if self._done():
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
            if self.workers == 0 and not self._done():
                self._fail("no peer serves the blocks of this chain")
            self._notify()

    async def _submit_all(self) -> None:
        cs = self.core.chainstate
        while True:
            if self._done():
                return
            if self.next >= len(self.hashes):
                await self._wait()
                continue
            block_hash = self.hashes[self.next]
            if self._have(block_hash):  # stored already (an announcement was quicker)
                if cs.index[block_hash].failed:
                    self._fail("the chain contains an invalid block")
                    self.service.discourage(
                        self.peer.peer_id, Penalty.INVALID_BLOCK, "chain with an invalid block"
                    )
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
            started = time.perf_counter()
            outcomes = await self.core.submit_blocks(run)
            self._measure(time.perf_counter() - started, len(outcomes))
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
                    self._fail(f"invalid block at height {height}: {error}")
                    self._blame(error, height)
                return

    def _blame(self, error: RuleError, height: int) -> None:
        """A block of the round's chain is invalid: ban the peer whose headers led us to
        it. Its pending headers are dropped with the round. (Whoever served the body is
        not blamed: an honest node may store, and serve, a side-chain block it never
        connected, so never verified.)"""
        detail = f"height {height}: {error}"
        if error.code in WORK_REJECTS:
            self.service.stats.work_bans[error.code.value] += 1
            log.warning("sync: %s gave us a block whose draw fails: %s", self.peer.peer_id, detail)
        self.service.discourage(self.peer.peer_id, Penalty.INVALID_BLOCK, detail)

    def _measure(self, seconds: float, blocks: int) -> None:
        """Keep a moving average of the time one block takes to submit."""
        if blocks:
            per_block = seconds / blocks
            previous = self.sync.seconds_per_block
            self.sync.seconds_per_block = (
                per_block if previous == 0.0 else 0.7 * previous + 0.3 * per_block
            )

    def _run_length(self) -> int:
        """Blocks per trip to NodeCore: about SUBMIT_SECONDS of validation, 1..SUBMIT_RUN.
        The first trip of a node is one block, to measure."""
        per_block = self.sync.seconds_per_block
        if per_block == 0.0:
            return 1
        return max(1, min(SUBMIT_RUN, int(SUBMIT_SECONDS / per_block)))

    def _ready_run(self) -> list[Block]:
        """The downloaded blocks from the next one to submit on, up to the first gap or
        one already stored, at most ``_run_length()``."""
        run: list[Block] = []
        for block_hash in self.hashes[self.next : self.next + self._run_length()]:
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
