"""Gossip: block announcements and transaction batches over gossipsub.

Two topics per network (specs/p2p.md §6)::

    /fc/<network>/blocks/1   one block header: "I have connected this block"
    /fc/<network>/txs/1      a batch of transactions "I have accepted into my mempool"

Gossip carries only small things (py-libp2p's gossipsub drops data silently past 1 MiB or
10 messages a second per peer and topic). A block travels as its *header*; whoever
wants the body fetches it by request/response from the peer that announced it. Many
transactions travel in one batch message, capped in bytes and count.

**Announce what you have, not what you heard.** Our gossipsub router never forwards
other peers' messages (:class:`_AnnounceOnly`), and replays to a newly subscribed peer
only its newest :data:`REPLAY_ON_JOIN` messages of a topic. A node announces a block
only once it has connected it and relays a transaction only once its own mempool
accepted it, by watching ``NodeCore``'s events; a peer that receives our announcement
can therefore always fetch the body from us, and invalid data stops at the first honest
node. Seen caches and the chainstate's own "already have it" answers end the flood.

**Validators gate, workers validate.** The topic validators are synchronous and cheap:
the sender must be a handshaken peer, within its per-peer rate, and the payload must
decode (and an announced header must pass ``check_header``); anything else costs the
sender ban score. Accepted payloads go into bounded queues; workers fetch bodies and
submit blocks and transactions to ``NodeCore``, which does the expensive checks in its
worker thread. A full queue drops (and counts) rather than grows.

**Orphans.** A block whose parent we do not know is kept, at most
:data:`MAX_ORPHAN_BLOCKS` of them and :data:`MAX_ORPHANS_PER_PEER` from one peer (oldest
evicted first), while headers-first sync fetches the parent chain from the announcing
peer; it is submitted as soon as its parent connects.

**Claimed work.** An announced header's draw is checked for shape and hash only (cheap);
re-executing it (``bad-work``) is a model pass, done when the block connects, in
NodeCore's worker thread. So a block is fetched and submitted only if it would become our
tip (its parent's work plus its own beats our tip's), and a sender whose header or block
fails any draw check is banned at once (``P2PService.discourage``), its orphans dropped.
What relay keeps per peer of what it announced is bounded: one claimed tip and one
unknown announced hash (``Peer``), and at most :data:`MAX_ORPHANS_PER_PEER` orphans; it
keeps no header chains (those are sync's, bounded by ``sync.MAX_UNVERIFIED_HEADERS``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerstore import env_to_send_in_RPC
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from chain.block import Block, BlockHeader
from chain.checks import check_header
from chain.difficulty import block_work
from chain.errors import (
    BlockTooNew,
    InvalidBlock,
    InvalidTransaction,
    Reject,
    RuleError,
    UnknownParent,
)
from chain.policy import PolicyError
from chain.transaction import Transaction
from node.core import BlockConnected, BlockDisconnected, TransactionsAccepted
from node.p2p import messages as m
from node.p2p.errors import PeerUnavailable
from node.p2p.limits import Penalty, SeenCache
from node.p2p.peers import WORK_REJECTS

if TYPE_CHECKING:
    from node.p2p.peers import Peer
    from node.p2p.service import P2PService

log = logging.getLogger("fc.p2p.relay")

ANNOUNCE_INTERVAL = 0.1  # at most ten block announcements a second (gossipsub's default cap)
TX_FLUSH_INTERVAL = 0.1  # one transaction batch per tick at most
TX_PER_TICK = 150  # transactions per tick: 1500/s, under the receivers' 2000/s limit
ANNOUNCE_QUEUE = 256  # announcements waiting for a worker
TX_BATCH_QUEUE = 64  # transaction batches waiting for a worker
RELAY_QUEUE = 20_000  # accepted transactions waiting to be relayed
MAX_ORPHAN_BLOCKS = 16
MAX_ORPHANS_PER_PEER = 4  # so that one peer cannot evict everyone else's orphans
FETCH_CONCURRENCY = 4  # announced blocks fetched at once
KNOWN_TXS = 100_000  # wtxids we have received or relayed (LRU)
# Our newest messages per topic replayed to a peer that subscribes (py-libp2p replays its
# whole cache window): well inside every receiver's burst (specs/p2p.md §5.1).
REPLAY_ON_JOIN = 10

# Transaction rejects that no honest relayer can cause: context-free rules and signatures.
# Everything else (spent or missing inputs, immature coinbases, fees, policy) may be a
# matter of timing or of our own policy, and costs the sender nothing.
PUNISHABLE_TX_REJECTS = frozenset(
    {
        Reject.TX_OVERSIZE,
        Reject.TX_VERSION,
        Reject.TX_KIND_UNKNOWN,
        Reject.TX_VIN_EMPTY,
        Reject.TX_VOUT_EMPTY,
        Reject.TX_VOUT_NEGATIVE,
        Reject.TX_VOUT_TOOLARGE,
        Reject.TX_TXOUTTOTAL_TOOLARGE,
        Reject.TX_INPUTS_DUPLICATE,
        Reject.TX_PAYLOAD,
        Reject.CB_HAS_INPUTS,
        Reject.CB_PAYLOAD,
        Reject.TX_SIG_INVALID,
    }
)


def blocks_topic(network: str) -> str:
    return f"/fc/{network}/blocks/1"


def txs_topic(network: str) -> str:
    return f"/fc/{network}/txs/1"


class _AnnounceOnly(GossipSub):
    """Gossipsub that sends only what this node publishes and never forwards what it
    receives: each node re-announces what it has itself validated (see the module doc)."""

    async def publish(self, msg_forwarder: ID, pubsub_msg: rpc_pb2.Message) -> None:
        if self.pubsub is not None and msg_forwarder == self.pubsub.my_id:
            await super().publish(msg_forwarder, pubsub_msg)

    async def send_recent_messages(self, peer_id: ID, topic: str) -> None:
        """Replay our newest :data:`REPLAY_ON_JOIN` messages of ``topic`` to a peer that
        subscribes to it. py-libp2p 0.8 replays the whole message-cache window (three
        heartbeats; more messages when heartbeats lag under load), which can pass the
        receiver's burst for the topic (specs/p2p.md §5.1) and get an honest node
        discouraged the moment a peer joins."""
        pubsub = self.pubsub
        stream = pubsub.peers.get(peer_id) if pubsub is not None else None
        if pubsub is None or stream is None:
            return
        newest: list[bytes] = []
        for entries in self.mcache.history[: self.mcache.window_size]:  # newest first
            for entry in reversed(entries):
                if topic in entry.topics and len(newest) < REPLAY_ON_JOIN:
                    newest.append(entry.mid)
        for mid in reversed(newest):  # oldest of them first
            msg = self.mcache.get(mid)
            if msg is None:
                continue
            rpc = rpc_pb2.RPC(publish=[msg])
            rpc.senderRecord, _ = env_to_send_in_RPC(pubsub.host)
            try:
                await pubsub.write_msg(stream, rpc)
            except Exception as exc:
                log.debug("replay to %s failed: %s", peer_id, exc)
                return


class Relay:
    def __init__(self, service: P2PService) -> None:
        self.service = service
        self.core = service.core
        self.params = service.params
        self.blocks_topic = blocks_topic(service.network)
        self.txs_topic = txs_topic(service.network)
        self.pubsub: Pubsub | None = None
        self._subscriptions: list[Any] = []
        self._announcements_in, self._announcements_out = trio.open_memory_channel[
            tuple[str, BlockHeader]
        ](ANNOUNCE_QUEUE)
        self._batches_in, self._batches_out = trio.open_memory_channel[
            tuple[str, list[Transaction]]
        ](TX_BATCH_QUEUE)
        self._to_relay: OrderedDict[bytes, Transaction] = OrderedDict()  # wtxid -> tx
        self._known_txs: SeenCache[bytes] = SeenCache(KNOWN_TXS)
        self._relayed: SeenCache[bytes] = SeenCache(KNOWN_TXS)
        self._fetching: set[bytes] = set()
        self._orphans: OrderedDict[bytes, tuple[Block, str]] = OrderedDict()
        self._announce_wanted = trio.Event()
        self._relay_wanted = trio.Event()
        self._last_announced: bytes | None = None
        self._events = self.core.subscribe()

    # -- setup ---------------------------------------------------------------------------
    @asynccontextmanager
    async def attached(self, host: IHost) -> AsyncIterator[None]:
        """Run gossipsub on ``host`` with our topics and validators for the block's span."""
        router = _AnnounceOnly(
            protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_interval=1,  # the default (120 s) leaves late peers out of the mesh
            # Our own publishing stays under ten a second per topic (ANNOUNCE_INTERVAL,
            # TX_FLUSH_INTERVAL); this cap only keeps gossipsub from silently eating a burst.
            max_messages_per_topic_per_second=50.0,
        )
        pubsub = Pubsub(
            host,
            router,
            max_inbound_rpc_size=m.MAX_TX_BATCH_BYTES + 64 * 1024,
            allowed_topics={self.blocks_topic, self.txs_topic},
        )
        async with background_trio_service(pubsub), background_trio_service(router):
            pubsub.set_topic_validator(self.blocks_topic, self._check_announcement, False)
            pubsub.set_topic_validator(self.txs_topic, self._check_tx_batch, False)
            self._subscriptions = [
                await pubsub.subscribe(self.blocks_topic),
                await pubsub.subscribe(self.txs_topic),
            ]
            self.pubsub = pubsub
            try:
                yield
            finally:
                self.pubsub = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._consume_events)
            nursery.start_soon(self._pump_announcements)
            nursery.start_soon(self._pump_tx_batches)
            nursery.start_soon(self._process_announcements)
            nursery.start_soon(self._process_tx_batches)
            nursery.start_soon(self._announce_loop)
            nursery.start_soon(self._relay_loop)

    # -- validators (synchronous, cheap) ---------------------------------------------------
    def _sender(self, forwarder: ID, msg: rpc_pb2.Message, bucket: str) -> Peer | None:
        """The handshaken peer that sent ``msg`` itself, within its rate; else None."""
        peer = self.service.peer(forwarder.to_string())
        if peer is None:
            self.service.stats.dropped["gossip-before-handshake"] += 1
            return None
        if msg.from_id != forwarder.to_bytes():
            # Nobody forwards in our network; a copy of someone else's message is noise.
            self.service.stats.dropped["gossip-forwarded"] += 1
            return None
        if not peer.buckets[bucket].take():
            self.service.penalize(peer.peer_id, Penalty.RATE_EXCEEDED, bucket)
            return None
        peer.messages_in += 1
        peer.bytes_in += len(msg.data)
        self.service.stats.count_in(bucket, len(msg.data))
        return peer

    def _is_own(self, forwarder: ID) -> bool:
        return self.pubsub is not None and forwarder == self.pubsub.my_id

    def _check_announcement(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        if self._is_own(forwarder):
            return True
        peer = self._sender(forwarder, msg, "announce")
        if peer is None:
            return False
        try:
            header = m.decode_announcement(msg.data)
        except RuleError as exc:
            self.service.penalize(peer.peer_id, Penalty.MALFORMED_GOSSIP, f"announcement: {exc}")
            return False
        try:
            check_header(header, self.params)
        except InvalidBlock as exc:
            if exc.code in WORK_REJECTS:
                self.service.stats.work_bans[exc.code.value] += 1
                self.service.discourage(peer.peer_id, Penalty.INVALID_HEADER, f"announced: {exc}")
            else:
                self.service.penalize(peer.peer_id, Penalty.INVALID_HEADER, f"announced: {exc}")
            return False
        return True

    def _check_tx_batch(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        if self._is_own(forwarder):
            return True
        peer = self._sender(forwarder, msg, "txbatch")
        if peer is None:
            return False
        try:
            txs = m.decode_tx_batch(msg.data)
        except RuleError as exc:
            self.service.penalize(peer.peer_id, Penalty.MALFORMED_GOSSIP, f"tx batch: {exc}")
            return False
        if not peer.buckets["tx"].take(len(txs)):
            self.service.penalize(peer.peer_id, Penalty.RATE_EXCEEDED, f"{len(txs)} transactions")
            return False
        return True

    # -- from gossipsub to our queues -------------------------------------------------------
    async def _messages(self, index: int) -> AsyncIterator[tuple[str, bytes]]:
        """``(sender, data)`` of validated messages of another peer on one topic."""
        subscription = self._subscriptions[index]
        own = self.service.peer_id
        while True:
            msg = await subscription.get()
            sender = ID(msg.from_id).to_string()
            if sender != own:
                yield sender, msg.data

    async def _pump_announcements(self) -> None:
        async for sender, data in self._messages(0):
            try:
                self._announcements_in.send_nowait((sender, m.decode_announcement(data)))
            except trio.WouldBlock:
                self.service.stats.dropped["announcements"] += 1

    async def _pump_tx_batches(self) -> None:
        async for sender, data in self._messages(1):
            try:
                self._batches_in.send_nowait((sender, m.decode_tx_batch(data)))
            except trio.WouldBlock:
                self.service.stats.dropped["tx-batches"] += 1

    # -- workers ---------------------------------------------------------------------------
    async def _process_announcements(self) -> None:
        limiter = trio.CapacityLimiter(FETCH_CONCURRENCY)
        async with trio.open_nursery() as nursery:
            async for sender, header in self._announcements_out:
                peer = self.service.peer(sender)
                if peer is None:
                    continue
                block_hash = header.hash()
                cs = self.core.chainstate
                known = cs.index.get(block_hash)
                if known is not None:
                    if known.failed:
                        self.service.penalize(
                            sender, Penalty.INVALID_BLOCK, "announced a block known invalid"
                        )
                    else:
                        peer.claim(block_hash, known.height, known.chain_work)
                    continue
                parent = cs.index.get(header.prev_hash)
                if parent is not None and parent.failed:
                    self.service.penalize(
                        sender, Penalty.INVALID_BLOCK, "announced a child of an invalid block"
                    )
                    continue
                if parent is not None:
                    work = parent.chain_work + block_work(header.target)
                    peer.claim(block_hash, header.height, work)
                    if work <= cs.tip.chain_work:
                        # It would not become our tip, so it would be stored unverified:
                        # fetch nothing (if its branch grows past us, sync fetches it).
                        continue
                else:
                    # We cannot weigh it yet: sync will ask this peer for the chain between.
                    peer.unknown_tip = block_hash
                    self.service.sync.wake()
                if block_hash in self._fetching or block_hash in self._orphans:
                    continue
                if parent is None and self.service.sync.running:
                    continue  # the running round will fetch it with its ancestors
                self._fetching.add(block_hash)
                await limiter.acquire_on_behalf_of(block_hash)
                nursery.start_soon(self._fetch_announced, peer, block_hash, limiter)

    async def _fetch_announced(
        self, peer: Peer, block_hash: bytes, limiter: trio.CapacityLimiter
    ) -> None:
        try:
            blocks = await self.service.request_blocks(peer, [block_hash])
        except PeerUnavailable as exc:
            log.debug("fetch of announced %s failed: %s", block_hash.hex()[:16], exc)
            return
        finally:
            self._fetching.discard(block_hash)
            limiter.release_on_behalf_of(block_hash)
        block = blocks[0]
        if block is None:
            return  # it announced, then lost it (a reorg); sync will sort it out
        if self.service.is_banned(peer.peer_id):
            return  # banned meanwhile: what it gave us goes with it
        if block_hash not in self.core.chainstate.index:  # sync may have been quicker
            self.service.stats.blocks_relayed_in += 1
            await self.submit_block(block, peer.peer_id)

    async def submit_block(self, block: Block, source: str) -> None:
        """Submit a block that ``source`` gave us; keep it as an orphan if its parent is
        missing, and submit any orphans it is the parent of."""
        pending = [(block, source)]
        while pending:
            block, source = pending.pop()
            if self.service.is_banned(source):
                continue  # e.g. an orphan of a peer banned meanwhile
            if not self._would_be_tip(block):
                self.service.stats.dropped["low-work-blocks"] += 1
                continue
            error = (await self.core.submit_block(block)).error
            if error is None:
                pending.extend(self._children_of(block.hash))
            elif isinstance(error, UnknownParent):
                self._keep_orphan(block, source)
                self.service.sync.wake()
            elif isinstance(error, BlockTooNew):
                log.info("block %s from %s is too new for our clock", block.hash.hex()[:16], source)
            elif error.code in WORK_REJECTS:
                self.service.stats.work_bans[error.code.value] += 1
                self.service.discourage(source, Penalty.INVALID_BLOCK, str(error))
            else:
                self.service.penalize(source, Penalty.INVALID_BLOCK, str(error))

    def _would_be_tip(self, block: Block) -> bool:
        """Whether ``block`` would beat our tip (True when we cannot weigh it yet: its
        parent is unknown, so it can only become an orphan). A block that would not is
        not submitted: it would be stored without its draw ever being checked."""
        cs = self.core.chainstate
        parent = cs.index.get(block.header.prev_hash)
        if parent is None:
            return True
        return parent.chain_work + block_work(block.header.target) > cs.tip.chain_work

    def drop_peer(self, peer_id: str) -> None:
        """``peer_id`` was banned: forget the orphan blocks it gave us."""
        for block_hash in [h for h, (_, src) in self._orphans.items() if src == peer_id]:
            del self._orphans[block_hash]

    def _keep_orphan(self, block: Block, source: str) -> None:
        mine = [h for h, (_, src) in self._orphans.items() if src == source]
        if block.hash not in self._orphans and len(mine) >= MAX_ORPHANS_PER_PEER:
            del self._orphans[mine[0]]
            self.service.stats.dropped["orphan-blocks"] += 1
        self._orphans[block.hash] = (block, source)
        while len(self._orphans) > MAX_ORPHAN_BLOCKS:
            self._orphans.popitem(last=False)
            self.service.stats.dropped["orphan-blocks"] += 1

    def _children_of(self, parent_hash: bytes) -> list[tuple[Block, str]]:
        children = [h for h, (b, _) in self._orphans.items() if b.header.prev_hash == parent_hash]
        return [self._orphans.pop(h) for h in children]

    async def _process_tx_batches(self) -> None:
        async for sender, txs in self._batches_out:
            for tx in txs:
                if not self._known_txs.add(tx.wtxid):
                    continue
                try:
                    await self.core.submit_transaction(tx)
                except PolicyError:
                    continue
                except InvalidTransaction as exc:
                    if exc.code in PUNISHABLE_TX_REJECTS:
                        self.service.penalize(sender, Penalty.INVALID_TX, str(exc))
                        break  # the rest of this batch comes from the same liar
                    continue
                except RuleError:
                    continue
                self.service.stats.txs_relayed_in += 1

    # -- what we announce ----------------------------------------------------------------------
    async def _consume_events(self) -> None:
        async for event in self._events:
            if isinstance(event, BlockConnected):
                self._announce_wanted.set()
                for tx in event.block.transactions[1:]:
                    self._to_relay.pop(tx.wtxid, None)
                children = self._children_of(event.block.hash)
                if children:
                    self.service._spawn(self._submit_orphans, children)
            elif isinstance(event, BlockDisconnected):
                # Its transactions are back in our mempool (if still valid): tell peers,
                # whose mempools may never have seen them.
                self._queue_relay(event.block.transactions[1:], again=True)
            elif isinstance(event, TransactionsAccepted):
                self._queue_relay(event.transactions)

    async def _submit_orphans(self, orphans: list[tuple[Block, str]]) -> None:
        for block, source in orphans:
            await self.submit_block(block, source)

    def _queue_relay(self, txs: tuple[Transaction, ...], again: bool = False) -> None:
        for tx in txs:
            if again:
                self._relayed.discard(tx.wtxid)
            elif tx.wtxid in self._relayed:
                continue
            self._to_relay[tx.wtxid] = tx
            if len(self._to_relay) > RELAY_QUEUE:
                self._to_relay.popitem(last=False)
                self.service.stats.dropped["tx-relay"] += 1
        if self._to_relay:
            self._relay_wanted.set()

    async def _announce_loop(self) -> None:
        """Announce our tip when it changes, at most every ANNOUNCE_INTERVAL."""
        while True:
            await self._announce_wanted.wait()
            self._announce_wanted = trio.Event()
            tip = self.core.chainstate.tip
            if tip.hash != self._last_announced and self.pubsub is not None:
                data = tip.header.encode()
                await self.pubsub.publish(self.blocks_topic, data)
                self._last_announced = tip.hash
                self.service.stats.count_out("announce", len(data))
            await trio.sleep(ANNOUNCE_INTERVAL)

    async def _relay_loop(self) -> None:
        """Publish accepted transactions in batches, one batch per tick at most."""
        while True:
            await self._relay_wanted.wait()
            self._relay_wanted = trio.Event()
            while self._to_relay:
                batch: list[Transaction] = []
                size = 16
                while self._to_relay and len(batch) < TX_PER_TICK:
                    wtxid, tx = next(iter(self._to_relay.items()))
                    if size + tx.size > m.MAX_TX_BATCH_BYTES:
                        break
                    del self._to_relay[wtxid]
                    if tx.txid not in self.core.mempool or wtxid in self._relayed:
                        continue  # confirmed, replaced or evicted meanwhile
                    batch.append(tx)
                    size += tx.size
                if batch and self.pubsub is not None:
                    data = m.encode_tx_batch(batch)
                    await self.pubsub.publish(self.txs_topic, data)
                    for tx in batch:
                        self._relayed.add(tx.wtxid)
                        self._known_txs.add(tx.wtxid)
                    self.service.stats.count_out("txbatch", len(data))
                    self.service.stats.txs_relayed_out += len(batch)
                await trio.sleep(TX_FLUSH_INTERVAL)
