"""The node's peer-to-peer service: a libp2p host, our protocols, and the peers on it.

:class:`P2PService` is what the daemon starts next to the RPC server. It owns

* the **host**: py-libp2p over TCP, with Noise as the only security protocol and yamux
  as the only stream muxer (``new_host`` would otherwise also accept plaintext peers and
  mplex), and the Ed25519 identity from the data directory (``identity.py``);
* the **handshake** (``/fc/handshake/1``): every new connection exchanges a
  :class:`~node.p2p.messages.Hello` (network, genesis, protocol version, best tip, user
  agent) before anything else; a mismatch is refused with a logged reason and the
  connection closed. The handshake's protocol id is the one id without the network in it,
  so that a node can tell a peer of another network exactly why it is refused;
* **request/response** (``/fc/<network>/sync/1``): headers by block locator and blocks
  by hash, served from the chainstate and fetched by ``sync.py`` and ``relay.py``;
* **peers**: who is connected, their claimed tips, traffic counters, ban scores, and the
  discouragement list (peers refused for a while after misbehaving);
* the **reconnect loops** for the configured ``connect`` addresses.

Headers-first sync lives in ``sync.py``, gossip (block announcements and transaction
batches over gossipsub) in ``relay.py``; both reach peers through this service.

Nothing a peer sends can take the node down: every stream handler catches everything
(an exception escaping a py-libp2p stream handler kills the whole connection's stream
loop), every read has a size cap checked before the body and a deadline, every queue is
bounded, and every message type a peer can send has a per-peer rate limit. Offences add
to the peer's ban score (``limits.Penalty``); at 100 the peer is disconnected and
refused for ``discourage_seconds``. A header or block whose draw fails (``bad-work``,
``bad-work-pow``, ``bad-work-shape``: ``peers.WORK_REJECTS``) bans its sender at once
(:meth:`P2PService.discourage`). A discouraged peer leaves the peer table at once, and
what it told us goes with it: the sync round following its headers and its orphan
blocks. specs/p2p.md is the normative description.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import multiaddr  # type: ignore[import-untyped]
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer import muxer_multistream
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from chain.block import Block, BlockHeader, decode_block
from chain.errors import RuleError
from node.core import NodeCore
from node.p2p import messages as m
from node.p2p.errors import P2PError, PeerUnavailable
from node.p2p.framing import FrameError, FrameReader, FrameWriter, StreamClosed
from node.p2p.identity import load_or_create_identity
from node.p2p.inbound import release_inbound_slots_on_close
from node.p2p.limits import BAN_THRESHOLD, Penalty
from node.p2p.peers import P2PStats, Peer, PeerInfo
from node.p2p.relay import Relay
from node.p2p.sync import HeaderSync, SyncState

log = logging.getLogger("fc.p2p")

USER_AGENT = "fcd/0.1"
HANDSHAKE_PROTOCOL = TProtocol("/fc/handshake/1")
MAX_BANNED = 10_000  # peers on the refusal list at most
MAX_EARLY_STREAMS = 2  # a listener's request streams that may wait for our handshake
FRAME_WRITE_TIMEOUT = 20.0  # seconds one yamux frame may take to reach the socket
T = TypeVar("T")


def sync_protocol(network: str) -> TProtocol:
    return TProtocol(f"/fc/{network}/sync/1")


@dataclass(frozen=True, kw_only=True)
class P2PConfig:
    """Settings of the p2p service; specs/p2p.md §5 explains each limit."""

    key_path: Path  # Ed25519 identity; created if missing (mode 0600), reused on restart
    listen_host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (see ``P2PService.listen_addrs``)
    connect: tuple[str, ...] = ()  # multiaddrs to dial, and to dial again when they drop
    max_peers: int = 32
    discourage_seconds: int = 3600  # how long a peer that reached the ban score is refused
    handshake_timeout: float = 10.0  # a connection must finish its handshake within this
    request_timeout: float = 30.0  # a request must be answered within this
    idle_timeout: float = 120.0  # a request stream with no request for this long is closed
    reconnect_min: float = 0.5  # backoff of the reconnect loop, doubling up to reconnect_max
    reconnect_max: float = 30.0
    user_agent: str = USER_AGENT


def make_host(key_pair: KeyPair, max_peers: int) -> IHost:
    """A py-libp2p host speaking TCP with Noise as the only security protocol and yamux
    as the only muxer (``new_host``'s defaults would also admit plaintext and mplex)."""
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    limit = max_peers * 2 + 16  # room for connections that have not finished the handshake
    host = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): _AtomicYamux},
        connection_config=ConnectionConfig(
            max_connections_per_peer=1,  # also avoids a fixed 250 ms wait in connect()
            max_connections=limit,
            min_connections=0,
            low_watermark=0,
            high_watermark=limit,
        ),
    )
    swarm = cast(Swarm, host.get_network())
    swarm.auto_connector = cast(Any, _NoAutoConnect())
    release_inbound_slots_on_close(swarm)  # py-libp2p would hold each slot until it stops
    return host


class _AtomicYamux(Yamux):
    """yamux whose frame writes cannot be cut in half by cancellation.

    py-libp2p 0.8.1 encrypts a frame with the next Noise nonce and then writes it; a task
    cancelled in between (or half-way through ``send_all``) leaves a skipped nonce or a
    partial frame behind, and the peer's next decryption fails ("Failed authentication
    of message"), killing the connection and every stream on it. Reads are affected too,
    since reading sends window updates. Any timeout or nursery cancellation around stream
    I/O can trigger it, so every frame write is shielded and given its own deadline; a
    write that misses the deadline may have left half a frame on the wire, so the
    connection is closed rather than trusted again.

    py-libp2p builds yamux connections with the ``Yamux`` name of
    ``libp2p.stream_muxer.muxer_multistream`` whatever ``muxer_opt`` says, so that name is
    pointed at this class when this module is imported (:func:`_install_atomic_yamux`).
    """

    async def _write_frame(self, data: bytes) -> None:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(FRAME_WRITE_TIMEOUT) as stuck:
                await super()._write_frame(data)
            if stuck.cancelled_caught:
                with trio.move_on_after(1), contextlib.suppress(Exception):
                    await self.secured_conn.close()
        if stuck.cancelled_caught:
            raise MuxedConnUnavailable(f"frame write stalled for {FRAME_WRITE_TIMEOUT:g} s")
        await trio.lowlevel.checkpoint()  # a cancellation held off by the shield lands here


def _install_atomic_yamux() -> None:
    if getattr(muxer_multistream, "Yamux", None) not in (Yamux, _AtomicYamux):
        raise ImportError("py-libp2p's muxer_multistream no longer builds Yamux; see _AtomicYamux")
    setattr(muxer_multistream, "Yamux", _AtomicYamux)  # noqa: B010 (a module global, on purpose)


_install_atomic_yamux()


class _NoAutoConnect:
    """Stands in for py-libp2p's AutoConnector, which would dial every address in the
    peerstore to keep ~100 connections: it would redial peers we banned or partitioned
    away and ignore ``max_peers``. Which peers we dial is our decision alone."""

    _is_connecting = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def run_background_task(self, nursery: trio.Nursery) -> None:
        return None

    async def maybe_connect(self) -> None:
        return None

    def record_disconnect(self, peer_id: ID) -> None:
        return None

    def set_discovery_callback(self, callback: Any) -> None:
        return None


class _Notifee(INotifee):
    """Connection events from the swarm, handed to the service without blocking it."""

    def __init__(self, service: P2PService) -> None:
        self.service = service

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self.service._on_connected(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self.service._on_disconnected(conn)

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


class _Dialling:
    """An outbound handshake in flight, and the peer's request streams waiting for it."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.waiting = 0


class _Channel:
    """One request stream to a peer, with its framing state; reused request after request."""

    def __init__(self, stream: INetStream) -> None:
        self.stream = stream
        self.reader = FrameReader(stream)
        self.writer = FrameWriter(stream)


class P2PService:
    def __init__(self, core: NodeCore, config: P2PConfig) -> None:
        self.core = core
        self.config = config
        self.params = core.params
        self.network = core.params.name
        self.stats = P2PStats()
        self._peers: dict[str, Peer] = {}
        self.peer_id = ""
        self.listen_addrs: list[str] = []
        self._banned: dict[str, float] = {}  # peer id -> unix time the refusal ends
        self._idle: dict[str, list[_Channel]] = {}
        # Scores of connected peers not yet admitted: their offences before the handshake
        # add up like an admitted peer's (and carry over if it is admitted).
        self._unadmitted: dict[str, int] = {}
        self._dialling: dict[str, _Dialling] = {}  # our outbound handshakes in flight
        self._host: IHost | None = None
        self._nursery: trio.Nursery | None = None
        self.sync = HeaderSync(self)
        self.relay = Relay(self)
        self._sync_protocol = sync_protocol(self.network)

    # -- running ---------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start the host, listen, and serve until cancelled; then close every connection."""
        host = make_host(load_or_create_identity(self.config.key_path), self.config.max_peers)
        host.get_network().register_notifee(_Notifee(self))
        host.set_stream_handler(HANDSHAKE_PROTOCOL, self._guard(self._serve_handshake))
        host.set_stream_handler(self._sync_protocol, self._guard(self._serve_requests))
        self._host = host
        listen = multiaddr.Multiaddr(f"/ip4/{self.config.listen_host}/tcp/{self.config.port}")
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            async with host.run([listen]), self.relay.attached(host):
                self.peer_id = host.get_id().to_string()
                suffix = f"/p2p/{self.peer_id}"
                self.listen_addrs = [
                    a if a.endswith(suffix) else a + suffix for a in map(str, host.get_addrs())
                ]
                log.info("p2p listening on %s", " ".join(self.listen_addrs))
                nursery.start_soon(self.sync.run)
                nursery.start_soon(self.relay.run)
                for addr in self.config.connect:
                    nursery.start_soon(self._keep_connected, addr)
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    nursery.cancel_scope.cancel()
                    self._close_idle_channels()
                    log.info("p2p stopping: %d peers", len(self._peers))

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    @property
    def host(self) -> IHost:
        if self._host is None:
            raise P2PError("the p2p service is not running")
        return self._host

    # -- public API --------------------------------------------------------------------
    async def connect(self, addr: str) -> str:
        """Dial ``addr`` (``/ip4/…/tcp/…/p2p/<id>``) and finish the handshake; return the
        peer id. Raises :class:`P2PError` saying why when that fails."""
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except Exception as exc:
            raise P2PError(f"bad peer address {addr!r}: {exc}") from None
        pid = info.peer_id.to_string()
        if pid == self.peer_id:
            raise P2PError("refusing to connect to ourselves")
        until = self._ban_until(pid)
        if until is not None:
            raise P2PError(f"peer {pid} is banned until {time.ctime(until)}")
        if pid in self._peers:
            return pid
        if len(self._peers) >= self.config.max_peers:
            raise P2PError(f"already at max_peers ({self.config.max_peers})")
        # py-libp2p refuses for 60 s to dial a peer whose every address failed once (its
        # "negative cache"): a peer that restarts would wait that long for our redial.
        # When we dial is ours to decide (the reconnect backoff of _keep_connected).
        _unblock_dial(self.host, info.peer_id)
        try:
            with trio.fail_after(self.config.handshake_timeout):
                await self.host.connect(info)
        except trio.TooSlowError:
            raise P2PError(
                f"cannot reach {addr}: no connection within {self.config.handshake_timeout:g} s"
            ) from None
        except Exception as exc:
            raise P2PError(f"cannot reach {addr}: {_one_line(exc)}") from None
        if pid not in self._peers:
            await self._handshake_outbound(pid)
        return pid

    def peers(self) -> list[PeerInfo]:
        return [peer.info() for peer in self._peers.values()]

    def peer(self, peer_id: str) -> Peer | None:
        """The connected, handshaken peer ``peer_id``, if it is one."""
        return self._peers.get(peer_id)

    def connected_peers(self) -> list[Peer]:
        return list(self._peers.values())

    def ban(self, peer_id: str, seconds: int) -> None:
        """Disconnect ``peer_id`` and refuse it for ``seconds``."""
        self._refuse(peer_id, seconds)
        log.warning("banned %s for %d s", peer_id, seconds)
        self._spawn(self._disconnect, peer_id, "banned")

    async def disconnect(self, peer_id: str) -> bool:
        """Close the connection to ``peer_id`` (it may reconnect); False if not connected."""
        if peer_id not in self._peers and not self._connected(peer_id):
            return False
        await self._disconnect(peer_id, "requested")
        return True

    def unban(self, peer_id: str) -> bool:
        return self._banned.pop(peer_id, None) is not None

    def banned(self) -> dict[str, int]:
        now = time.time()
        for pid in [p for p, until in self._banned.items() if until <= now]:
            del self._banned[pid]
        return {pid: int(until) for pid, until in self._banned.items()}

    def sync_state(self) -> SyncState:
        return self.sync.state()

    # -- misbehaviour -----------------------------------------------------------------
    def penalize(self, peer_id: str, penalty: Penalty, detail: str = "") -> None:
        """Count ``penalty`` against ``peer_id``; discourage it at the ban threshold."""
        self.stats.invalid_messages[penalty.label] += 1
        peer = self._peers.get(peer_id)
        if peer is not None:
            peer.ban_score += penalty.score
            score = peer.ban_score
        elif self._connected(peer_id):  # before the handshake: offences add up too
            score = self._unadmitted.pop(peer_id, 0) + penalty.score
            self._unadmitted[peer_id] = score
            if len(self._unadmitted) > MAX_BANNED:  # bounded, like the refusal list
                del self._unadmitted[next(iter(self._unadmitted))]
        else:
            score = penalty.score  # no connection left: judged on this offence alone
        log.warning(
            "peer %s: %s (+%d, score %d) %s", peer_id, penalty.label, penalty.score, score, detail
        )
        if score >= BAN_THRESHOLD and self._ban_until(peer_id) is None:
            self._discourage(peer_id, penalty.label)

    def discourage(self, peer_id: str, penalty: Penalty, detail: str = "") -> None:
        """Ban ``peer_id`` now, whatever its score: for what no honest peer sends and
        what costs us real work, a header or block whose draw fails (``peers.WORK_REJECTS``).
        Counted under ``penalty`` like :meth:`penalize`."""
        self.stats.invalid_messages[penalty.label] += 1
        peer = self._peers.get(peer_id)
        if peer is not None:
            peer.ban_score = max(peer.ban_score + penalty.score, BAN_THRESHOLD)
        log.warning("peer %s: %s (banned at once) %s", peer_id, penalty.label, detail)
        if self._ban_until(peer_id) is None:
            self._discourage(peer_id, penalty.label)

    def is_banned(self, peer_id: str) -> bool:
        return self._ban_until(peer_id) is not None

    def _discourage(self, peer_id: str, label: str) -> None:
        """Refuse ``peer_id`` for ``discourage_seconds``, take it out of the peer table at
        once (so nothing queued from it is processed any more), drop the headers and
        orphan blocks it gave us, and close its connection."""
        self._refuse(peer_id, self.config.discourage_seconds)
        self._unadmitted.pop(peer_id, None)
        self.stats.discouragements += 1
        log.warning(
            "peer %s discouraged for %d s: %s", peer_id, self.config.discourage_seconds, label
        )
        self._forget_peer(peer_id)
        self.sync.drop_peer(peer_id)
        self.relay.drop_peer(peer_id)
        self._spawn(self._disconnect, peer_id, f"discouraged: {label}")

    def _refuse(self, peer_id: str, seconds: float) -> None:
        """Put ``peer_id`` on the refusal list. The list is bounded: past MAX_BANNED
        entries, expired ones go, then those that end soonest (a flood of throwaway
        identities must not grow our memory)."""
        self._banned[peer_id] = time.time() + seconds
        if len(self._banned) > MAX_BANNED:
            self.banned()  # drops the expired
            while len(self._banned) > MAX_BANNED:
                del self._banned[min(self._banned, key=self._banned.__getitem__)]

    def _ban_until(self, peer_id: str) -> float | None:
        until = self._banned.get(peer_id)
        if until is None:
            return None
        if until <= time.time():
            del self._banned[peer_id]
            return None
        return until

    async def _disconnect(self, peer_id: str, reason: str) -> None:
        self.stats.disconnects[reason.split(":")[0]] += 1
        log.info("disconnecting %s: %s", peer_id, reason)
        self._forget_peer(peer_id)
        with trio.move_on_after(5):
            try:
                await self.host.disconnect(ID.from_base58(peer_id))
            except Exception as exc:
                log.debug("disconnect %s: %s", peer_id, _one_line(exc))

    # -- connections ------------------------------------------------------------------
    def _on_connected(self, conn: INetConn) -> None:
        pid = conn.muxed_conn.peer_id.to_string()
        if self._ban_until(pid) is not None:
            self.stats.handshake_failures["banned"] += 1
            self._spawn(self._disconnect, pid, "banned peer connected")
            return
        self._spawn(self._handshake_watchdog, pid)

    def _on_disconnected(self, conn: INetConn) -> None:
        pid = conn.muxed_conn.peer_id
        peer = self._peers.get(pid.to_string())
        try:
            remaining = self.host.get_network().get_connections(pid)
        except Exception:
            remaining = []
        alive = [c for c in remaining if not getattr(c, "is_closed", False)]
        # The connection the peer handshook on closed, or nothing is left of it.
        if (peer is not None and peer.conn is conn.muxed_conn) or not alive:
            self._forget_peer(pid.to_string())
        if not alive:
            self._unadmitted.pop(pid.to_string(), None)

    def _forget_peer(self, peer_id: str) -> None:
        peer = self._peers.pop(peer_id, None)
        for channel in self._idle.pop(peer_id, []):
            self._spawn(_reset, channel.stream)
        if peer is not None:
            peer.closed.set()
            log.info("peer %s gone (%d left)", peer_id, len(self._peers))
            self.sync.wake()

    async def _handshake_watchdog(self, peer_id: str) -> None:
        await trio.sleep(self.config.handshake_timeout)
        if peer_id not in self._peers and self._connected(peer_id):
            self.stats.handshake_failures["timeout"] += 1
            await self._disconnect(peer_id, "no handshake in time")

    def _connected(self, peer_id: str) -> bool:
        try:
            return bool(self.host.get_network().get_connections(ID.from_base58(peer_id)))
        except Exception:
            return False

    def _remote_addr(self, peer_id: str) -> str:
        try:
            conns = self.host.get_network().get_connections(ID.from_base58(peer_id))
            remote = conns[0].muxed_conn.get_remote_address() if conns else None  # type: ignore[attr-defined]
        except Exception:
            remote = None
        return f"/ip4/{remote[0]}/tcp/{remote[1]}" if remote else ""

    async def _keep_connected(self, addr: str) -> None:
        """Dial ``addr`` until it answers, and again whenever it drops (with backoff)."""
        delay = self.config.reconnect_min
        reported = ""
        while True:
            try:
                pid = await self.connect(addr)
            except P2PError as exc:
                if str(exc) != reported:  # say it once, not every retry
                    log.warning("connect %s: %s (will retry)", addr, exc)
                    reported = str(exc)
                await trio.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max)
                continue
            delay, reported = self.config.reconnect_min, ""
            peer = self._peers.get(pid)
            if peer is not None:
                await peer.closed.wait()
            await trio.sleep(self.config.reconnect_min)

    # -- handshake ---------------------------------------------------------------------
    def our_hello(self) -> m.Hello:
        tip = self.core.chainstate.tip
        return m.Hello(
            network=self.network,
            genesis=self.params.genesis_hash,
            version=m.PROTOCOL_VERSION,
            tip_hash=tip.hash,
            tip_height=tip.height,
            chain_work=tip.chain_work,
            user_agent=self.config.user_agent,
        )

    def _check_hello(self, hello: m.Hello) -> tuple[str, str] | None:
        """Why we refuse a peer that sent ``hello``, or None: the reason as we log it,
        and as we tell the peer (from our side of the connection)."""
        ours, genesis = self.network, self.params.genesis_hash.hex()[:16]
        if hello.network != ours:
            return (
                f"peer is on network {hello.network!r}, we are on {ours!r}",
                f"this node is on network {ours!r}, not {hello.network!r}",
            )
        if hello.genesis != self.params.genesis_hash:
            theirs = hello.genesis.hex()[:16]
            return (
                f"peer's genesis {theirs} is not ours ({genesis})",
                f"this node's genesis is {genesis}, not {theirs}",
            )
        if hello.version < m.MIN_PROTOCOL_VERSION:
            return (
                f"peer speaks protocol version {hello.version}, we need {m.MIN_PROTOCOL_VERSION}+",
                f"this node needs protocol version {m.MIN_PROTOCOL_VERSION}+, not {hello.version}",
            )
        return None

    def _admit(self, peer_id: str, hello: m.Hello, inbound: bool, conn: object) -> Peer:
        peer = Peer(
            peer_id,
            self._remote_addr(peer_id),
            inbound,
            hello.version,
            hello.user_agent,
            hello.tip_hash,
            hello.tip_height,
            hello.chain_work,
        )
        peer.conn = conn
        peer.ban_score = self._unadmitted.pop(peer_id, 0)
        self._peers[peer_id] = peer
        log.info(
            "peer %s connected (%s, %s, height %d)",
            peer_id,
            "inbound" if inbound else "outbound",
            hello.user_agent,
            hello.tip_height,
        )
        self.sync.wake()
        return peer

    async def _handshake_failed(self, peer_id: str, reason: str, kind: str) -> None:
        self.stats.handshake_failures[kind] += 1
        log.warning("handshake with %s failed: %s", peer_id, reason)
        await self._disconnect(peer_id, f"handshake: {kind}")

    async def _handshake_outbound(self, peer_id: str) -> None:
        """We dialled: send our hello, read theirs (or their refusal). Until that ends,
        request streams from the peer wait for it (:meth:`_await_handshake`)."""
        dialling = self._dialling[peer_id] = _Dialling()
        try:
            await self._exchange_hellos(peer_id)
        finally:
            dialling.done.set()
            if self._dialling.get(peer_id) is dialling:
                del self._dialling[peer_id]

    async def _await_handshake(self, peer_id: str) -> Peer | None:
        """The peer ``peer_id``, once our handshake with it completes, if it is in flight.

        The listener admits us before it sends its hello, so an honest listener may open a
        request stream before we have read that hello. Such a stream (at most
        ``MAX_EARLY_STREAMS`` at a time, a peer's ``request_slots``) waits for our handshake
        to end rather than count as a request before the handshake."""
        dialling = self._dialling.get(peer_id)
        if dialling is None or dialling.waiting >= MAX_EARLY_STREAMS:
            return None
        dialling.waiting += 1
        try:
            with trio.move_on_after(self.config.handshake_timeout):
                await dialling.done.wait()
        finally:
            dialling.waiting -= 1
        return self._peers.get(peer_id)

    async def _exchange_hellos(self, peer_id: str) -> None:
        try:
            with trio.fail_after(self.config.handshake_timeout):
                stream = await self.host.new_stream(ID.from_base58(peer_id), [HANDSHAKE_PROTOCOL])
                writer, reader = FrameWriter(stream), FrameReader(stream)
                hello_bytes = self.our_hello().encode()
                await writer.send(m.HELLO, hello_bytes)
                self.stats.count_out("hello", len(hello_bytes))
                kind, body = await reader.read_frame(m.HANDSHAKE_CAPS)
                self.stats.count_in(m.NAMES[kind], len(body))
                await _close(stream)
        except trio.TooSlowError:
            await self._handshake_failed(peer_id, "no handshake reply in time", "timeout")
            raise P2PError(
                f"handshake with {peer_id}: no reply within {self.config.handshake_timeout:g} s"
            ) from None
        except (StreamClosed, FrameError, Exception) as exc:
            reason = f"handshake stream failed: {_one_line(exc)}"
            await self._handshake_failed(peer_id, reason, "stream")
            raise P2PError(f"handshake with {peer_id}: {reason}") from None
        try:
            if kind == m.REJECT:
                reason = f"peer refused us: {m.decode_reject(body)}"
                await self._handshake_failed(peer_id, reason, "refused")
                raise P2PError(f"handshake with {peer_id}: {reason}")
            hello = m.decode_hello(body)
        except RuleError as exc:
            await self._handshake_failed(peer_id, f"malformed hello: {exc}", "malformed")
            self.penalize(peer_id, Penalty.MALFORMED_FRAME, "in handshake")
            raise P2PError(f"handshake with {peer_id}: malformed reply ({exc})") from None
        mismatch = self._check_hello(hello)
        if mismatch is not None:
            await self._handshake_failed(peer_id, mismatch[0], "mismatch")
            raise P2PError(f"handshake with {peer_id}: {mismatch[0]}")
        if peer_id not in self._peers:
            self._admit(peer_id, hello, inbound=False, conn=stream.muxed_conn)

    async def _serve_handshake(self, stream: INetStream) -> None:
        """A peer dialled us: read its hello, answer with ours or with a refusal."""
        peer_id = stream.muxed_conn.peer_id.to_string()
        writer, reader = FrameWriter(stream), FrameReader(stream)
        try:
            with trio.fail_after(self.config.handshake_timeout):
                _kind, body = await reader.read_frame({m.HELLO: m.CAPS[m.HELLO]})
        except trio.TooSlowError:
            await self._handshake_failed(peer_id, "no hello in time", "timeout")
            return
        except FrameError as exc:
            self.penalize(peer_id, _frame_penalty(exc), f"in handshake: {exc}")
            return
        self.stats.count_in("hello", len(body))
        known = self._peers.get(peer_id)
        if known is not None:
            if known.conn is stream.muxed_conn:
                self.penalize(peer_id, Penalty.DUPLICATE_HELLO)
                await _reset(stream)
                return
            # A new connection from a peer we still list: it restarted before we saw
            # its old connection close. The new connection replaces the old one.
            self._forget_peer(peer_id)
        try:
            hello = m.decode_hello(body)
        except RuleError as exc:
            self.penalize(peer_id, Penalty.MALFORMED_FRAME, f"hello: {exc}")
            return
        refusal, kind = self._check_hello(hello), "mismatch"
        if refusal is None and len(self._peers) >= self.config.max_peers:
            full = f"too many peers ({self.config.max_peers})"
            refusal, kind = (full, full), "full"
        if refusal is not None:
            with trio.move_on_after(2):
                try:
                    await writer.send(m.REJECT, m.encode_reject(refusal[1]))
                    await _close(stream)
                except StreamClosed:
                    pass
            await self._handshake_failed(peer_id, refusal[0], kind)
            return
        # Admit first: once the dialler has our hello it may send requests at once.
        self._admit(peer_id, hello, inbound=True, conn=stream.muxed_conn)
        hello_bytes = self.our_hello().encode()
        await writer.send(m.HELLO, hello_bytes)
        self.stats.count_out("hello", len(hello_bytes))
        await _close(stream)

    # -- serving requests ------------------------------------------------------------
    def _guard(
        self, handler: Callable[[INetStream], Awaitable[None]]
    ) -> Callable[[INetStream], Awaitable[None]]:
        """Wrap a stream handler so that nothing escapes it (an exception escaping a
        py-libp2p handler takes down every stream of that connection)."""

        async def guarded(stream: INetStream) -> None:
            try:
                await handler(stream)
            except trio.Cancelled:
                raise
            except Exception as exc:
                log.debug("stream handler %s: %s", handler.__name__, _one_line(exc))
                await _reset(stream)

        return guarded

    async def _serve_requests(self, stream: INetStream) -> None:
        """Answer GET_HEADERS and GET_BLOCKS on one stream until the peer closes it."""
        peer_id = stream.muxed_conn.peer_id.to_string()
        peer = self._peers.get(peer_id)
        if peer is None:
            peer = await self._await_handshake(peer_id)
        if peer is None:
            # Refused unserved, and counted: enough of them get the peer discouraged
            # long before the handshake timeout would close its connection.
            self.penalize(peer_id, Penalty.BEFORE_HANDSHAKE, "request stream")
            await _reset(stream)
            return
        reader, writer = FrameReader(stream), FrameWriter(stream)
        while not peer.closed.is_set():
            try:
                with trio.move_on_after(self.config.idle_timeout) as idle:
                    kind, body = await reader.read_frame(m.REQUEST_CAPS)
                if idle.cancelled_caught:
                    break
            except StreamClosed:
                return
            except FrameError as exc:
                self.penalize(peer_id, _frame_penalty(exc), str(exc))
                break
            name = m.NAMES[kind]
            self.stats.count_in(name, len(body) + 5)
            peer.messages_in += 1
            peer.bytes_in += len(body) + 5
            try:
                if kind == m.GET_HEADERS:
                    request = m.decode_get_headers(body)
                    if not peer.buckets["getheaders"].take():
                        self.penalize(peer_id, Penalty.RATE_EXCEEDED, "getheaders")
                        break
                    reply = m.encode_headers(self.headers_after(request.locator, request.stop))
                    await writer.send(m.HEADERS, reply)
                    self._count_out(peer, "headers", len(reply))
                else:
                    hashes = m.decode_get_blocks(body)
                    if not peer.buckets["getblocks"].take(len(hashes)):
                        self.penalize(peer_id, Penalty.RATE_EXCEEDED, f"getblocks of {len(hashes)}")
                        break
                    for block_hash, data in zip(
                        hashes,
                        await trio.to_thread.run_sync(self._read_blocks, hashes),
                        strict=True,
                    ):
                        if data is None:
                            await writer.add(m.NOT_FOUND, m.encode_not_found(block_hash))
                            self._count_out(peer, "notfound", 37)
                        else:
                            await writer.add(m.BLOCK, data)
                            self._count_out(peer, "block", len(data))
                    await writer.flush()
            except RuleError as exc:
                self.penalize(peer_id, Penalty.MALFORMED_FRAME, f"{name}: {exc}")
                break
            except StreamClosed:
                return
        await _reset(stream)

    def _count_out(self, peer: Peer, name: str, size: int) -> None:
        self.stats.count_out(name, size + 5)
        peer.messages_out += 1
        peer.bytes_out += size + 5

    def headers_after(self, locator: tuple[bytes, ...], stop: bytes) -> list[BlockHeader]:
        """Headers of our active chain after the first locator entry on it (genesis if
        none is), up to MAX_HEADERS or ``stop``."""
        cs = self.core.chainstate
        start = 0
        for block_hash in locator:
            entry = cs.index.get(block_hash)
            if entry is not None and cs.is_active(block_hash):
                start = entry.height
                break
        headers: list[BlockHeader] = []
        previous = cs.block_hash_at(start)
        for height in range(start + 1, start + m.MAX_HEADERS + 1):
            at_height = cs.block_hash_at(height)
            entry = cs.index.get(at_height) if at_height is not None else None
            # The chain may be reorganising in the validation thread while we read it:
            # stop at the first break rather than send headers that do not link.
            if entry is None or entry.prev_hash != previous:
                break
            headers.append(entry.header)
            previous = entry.hash
            if entry.hash == stop:
                break
        return headers

    def _read_blocks(self, hashes: list[bytes]) -> list[bytes | None]:
        """Stored bytes of each block we hold and have not found invalid (worker thread)."""
        cs = self.core.chainstate
        found: list[bytes | None] = []
        for block_hash in hashes:
            entry = cs.index.get(block_hash)
            found.append(None if entry is None or entry.failed else cs.get_block_bytes(block_hash))
        return found

    # -- making requests -----------------------------------------------------------------
    async def _request(
        self, peer: Peer, what: str, exchange: Callable[[_Channel], Awaitable[T]]
    ) -> T:
        """Run one request/response ``exchange`` on a pooled stream to ``peer``.

        Raises :class:`PeerUnavailable` if the peer is gone, stalls past
        ``request_timeout`` or breaks the protocol (after penalising it)."""
        async with peer.request_slots:
            # py-libp2p's new_stream dials a peer it has no connection to; never let a
            # request open a connection that skips the handshake.
            if peer.closed.is_set() or not self._connected(peer.peer_id):
                raise PeerUnavailable(f"{peer.peer_id} disconnected")
            pool = self._idle.setdefault(peer.peer_id, [])
            channel = pool.pop() if pool else None
            ok = False
            try:
                with trio.fail_after(self.config.request_timeout):
                    if channel is None:
                        stream = await self.host.new_stream(
                            ID.from_base58(peer.peer_id), [self._sync_protocol]
                        )
                        channel = _Channel(stream)
                    result = await exchange(channel)
                ok = True
                return result
            except trio.TooSlowError:
                raise PeerUnavailable(
                    f"{peer.peer_id}: no {what} reply within {self.config.request_timeout:g} s"
                ) from None
            except FrameError as exc:
                self.penalize(peer.peer_id, _frame_penalty(exc), f"{what} reply: {exc}")
                raise PeerUnavailable(f"{peer.peer_id}: {exc}") from None
            except RuleError as exc:
                self.penalize(peer.peer_id, Penalty.MALFORMED_FRAME, f"{what} reply: {exc}")
                raise PeerUnavailable(f"{peer.peer_id}: malformed {what} reply") from None
            except (StreamClosed, P2PError):
                raise
            except trio.Cancelled:
                raise
            except Exception as exc:
                raise PeerUnavailable(f"{peer.peer_id}: {_one_line(exc)}") from None
            finally:
                if channel is not None:
                    if ok and not peer.closed.is_set() and peer.peer_id in self._peers:
                        self._idle.setdefault(peer.peer_id, []).append(channel)
                    else:
                        self._spawn(_reset, channel.stream)

    async def request_headers(self, peer: Peer, locator: tuple[bytes, ...]) -> list[BlockHeader]:
        request = m.GetHeaders(locator).encode()

        async def exchange(channel: _Channel) -> list[BlockHeader]:
            await channel.writer.send(m.GET_HEADERS, request)
            self._count_out(peer, "getheaders", len(request))
            _, body = await channel.reader.read_frame(m.HEADERS_REPLY_CAPS)
            self._count_in(peer, "headers", len(body))
            return await trio.to_thread.run_sync(m.decode_headers, body)

        try:
            return await self._request(peer, "headers", exchange)
        except StreamClosed as exc:
            raise PeerUnavailable(f"{peer.peer_id}: stream closed ({exc})") from None

    async def request_blocks(self, peer: Peer, hashes: list[bytes]) -> list[Block | None]:
        """The blocks with ``hashes`` from ``peer``, ``None`` for each it does not have."""
        request = m.encode_get_blocks(hashes)

        async def exchange(channel: _Channel) -> list[Block | None]:
            await channel.writer.send(m.GET_BLOCKS, request)
            self._count_out(peer, "getblocks", len(request))
            frames = []
            for _ in hashes:
                kind, body = await channel.reader.read_frame(m.BLOCKS_REPLY_CAPS)
                self._count_in(peer, m.NAMES[kind], len(body))
                frames.append((kind, body))
            return await trio.to_thread.run_sync(_decode_blocks, hashes, frames)

        try:
            return await self._request(peer, "blocks", exchange)
        except StreamClosed as exc:
            raise PeerUnavailable(f"{peer.peer_id}: stream closed ({exc})") from None
        except _WrongBlock as exc:
            self.penalize(peer.peer_id, Penalty.UNREQUESTED_BLOCK, str(exc))
            raise PeerUnavailable(f"{peer.peer_id}: {exc}") from None

    def _count_in(self, peer: Peer, name: str, size: int) -> None:
        self.stats.count_in(name, size + 5)
        peer.messages_in += 1
        peer.bytes_in += size + 5

    def _close_idle_channels(self) -> None:
        self._idle.clear()


class _WrongBlock(Exception):
    """A GET_BLOCKS reply that does not answer what we asked."""


def _decode_blocks(hashes: list[bytes], frames: list[tuple[int, bytes]]) -> list[Block | None]:
    """Decode a GET_BLOCKS reply (worker thread); raises RuleError or _WrongBlock."""
    blocks: list[Block | None] = []
    for block_hash, (kind, body) in zip(hashes, frames, strict=True):
        if kind == m.NOT_FOUND:
            if m.decode_not_found(body) != block_hash:
                raise _WrongBlock("notfound for a block we did not ask for")
            blocks.append(None)
            continue
        block = decode_block(body)
        if block.hash != block_hash:
            raise _WrongBlock(
                f"sent block {block.hash.hex()[:16]}, asked for {block_hash.hex()[:16]}"
            )
        blocks.append(block)
    return blocks


def _frame_penalty(exc: FrameError) -> Penalty:
    if exc.reason == "oversize-frame":
        return Penalty.OVERSIZE_FRAME
    if exc.reason == "unknown-message-type":
        return Penalty.UNKNOWN_MESSAGE
    return Penalty.MALFORMED_FRAME


def _unblock_dial(host: IHost, peer_id: ID) -> None:
    """Lift py-libp2p's dial negative cache for ``peer_id`` (``Swarm.unblock_peer``)."""
    unblock = getattr(host.get_network(), "unblock_peer", None)
    if unblock is not None:
        unblock(peer_id)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


async def _close(stream: INetStream) -> None:
    with trio.move_on_after(2):
        with contextlib.suppress(Exception):
            await stream.close()


async def _reset(stream: INetStream) -> None:
    with trio.move_on_after(2):
        with contextlib.suppress(Exception):
            await stream.reset()
