"""What we know about each connected peer, and the counters the node exports.

A :class:`Peer` exists from the moment a connection's handshake succeeds until the
connection closes. It holds the peer's claimed best tip (from its hello, raised by its
announcements and by the headers it serves), its traffic counters, its ban score and one
token bucket per rate-limited message type. :class:`PeerInfo` is the frozen snapshot the
RPC layer shows; :class:`P2PStats` holds the node-wide counters for ``/metrics``.

**Work failures ban at once.** A header only *claims* work: its draw's shape and hash are
checked on arrival (``bad-work-shape``, ``bad-work-pow``, cheap), but whether its tokens
are really the model's draw (``bad-work``) is known only when its block connects and the
draw is re-executed, one model pass in NodeCore's worker thread. No honest peer sends a
header or block failing any of the three (it announces and serves only blocks it has
connected), and each costs us work, so a peer that does is banned on the spot
(``P2PService.discourage``), whatever its score, and the headers it gave us are dropped:
:data:`WORK_REJECTS` lists the codes. A peer identity thus costs us at most one model
pass that fails.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import trio

from chain.errors import Reject
from node.p2p.limits import Rate, TokenBucket

# Reject codes of a draw that is not the model's (specs/pob.md §3): the sender is banned
# at once (specs/p2p.md §5.4), not scored.
WORK_REJECTS = frozenset({Reject.BAD_WORK, Reject.BAD_WORK_POW, Reject.BAD_WORK_SHAPE})

# Per-peer rate limits on what a peer may send us (specs/p2p.md §5.1).
RATES: dict[str, Rate] = {
    "getheaders": Rate(20, 40),  # requests
    "getblocks": Rate(2000, 4000),  # blocks asked for
    "announce": Rate(10, 30),  # block announcements (gossip messages)
    "txbatch": Rate(10, 30),  # transaction batches (gossip messages)
    "tx": Rate(2000, 6000),  # transactions inside those batches
}


@dataclass(frozen=True)
class PeerInfo:
    """A snapshot of one connected peer, for ``fc peers`` and the RPC."""

    peer_id: str
    addr: str
    inbound: bool
    best_height: int
    best_hash: str
    version: int
    user_agent: str
    connected_since: float  # unix time
    bytes_in: int
    bytes_out: int
    messages_in: int
    messages_out: int
    ban_score: int


class Peer:
    """A connected, handshaken peer."""

    def __init__(
        self,
        peer_id: str,
        addr: str,
        inbound: bool,
        version: int,
        user_agent: str,
        best_hash: bytes,
        best_height: int,
        best_work: int,
    ) -> None:
        self.peer_id = peer_id
        self.addr = addr
        self.inbound = inbound
        self.version = version
        self.user_agent = user_agent
        self.best_hash = best_hash
        self.best_height = best_height
        self.best_work = best_work  # claimed; lowered when the peer cannot back it up
        # A block it announced whose parent we did not know: sync asks it for the chain.
        self.unknown_tip: bytes | None = None
        self.connected_since = time.time()
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0
        self.ban_score = 0
        self.buckets: dict[str, TokenBucket] = {name: rate.bucket() for name, rate in RATES.items()}
        self.closed = trio.Event()
        self.conn: object = None  # the libp2p connection it handshook on
        # Block requests to this peer run one at a time per slot; see sync.py.
        self.request_slots = trio.Semaphore(2)

    def claim(self, block_hash: bytes, height: int, work: int) -> None:
        """The peer showed us a tip; remember it if it is better than what it had."""
        if work > self.best_work or (work == self.best_work and height > self.best_height):
            self.best_hash, self.best_height, self.best_work = block_hash, height, work

    def info(self) -> PeerInfo:
        return PeerInfo(
            peer_id=self.peer_id,
            addr=self.addr,
            inbound=self.inbound,
            best_height=self.best_height,
            best_hash=self.best_hash.hex(),
            version=self.version,
            user_agent=self.user_agent,
            connected_since=self.connected_since,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            ban_score=self.ban_score,
        )


def _counter() -> defaultdict[str, int]:
    return defaultdict(int)


@dataclass
class P2PStats:
    """Node-wide counters for ``/metrics``. Keys of the dicts are message type names
    (``messages.NAMES`` plus ``announce`` and ``txbatch`` for gossip) or reasons."""

    messages_in: defaultdict[str, int] = field(default_factory=_counter)
    messages_out: defaultdict[str, int] = field(default_factory=_counter)
    bytes_in: defaultdict[str, int] = field(default_factory=_counter)
    bytes_out: defaultdict[str, int] = field(default_factory=_counter)
    invalid_messages: defaultdict[str, int] = field(default_factory=_counter)  # by penalty label
    disconnects: defaultdict[str, int] = field(default_factory=_counter)  # by reason
    discouragements: int = 0
    work_bans: defaultdict[str, int] = field(default_factory=_counter)  # by reject code
    handshake_failures: defaultdict[str, int] = field(default_factory=_counter)
    dropped: defaultdict[str, int] = field(default_factory=_counter)  # full queues, by queue
    blocks_synced: int = 0  # blocks submitted by headers-first sync
    blocks_relayed_in: int = 0  # blocks fetched after an announcement
    txs_relayed_in: int = 0
    txs_relayed_out: int = 0

    def count_in(self, kind: str, size: int) -> None:
        self.messages_in[kind] += 1
        self.bytes_in[kind] += size

    def count_out(self, kind: str, size: int) -> None:
        self.messages_out[kind] += 1
        self.bytes_out[kind] += size
