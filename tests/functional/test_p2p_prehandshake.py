"""Request streams before the handshake (specs/p2p.md §3.3, §5.2).

A peer that connects and opens request streams without saying hello gets no answer;
each such stream is refused at once and counts as an offence (``before-handshake``)
toward one score for that peer, so a handful of them get it discouraged and disconnected
long before the 10 s handshake timeout would close the connection. A peer that
handshakes honestly and requests at once is never penalised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import multiaddr
import pytest
import trio
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from p2pnodes import Node, Nodes, wait_for

from chain.params import REGTEST
from node.p2p import messages as m
from node.p2p.framing import FrameReader, encode_frame
from node.p2p.limits import BAN_THRESHOLD, Penalty
from node.p2p.service import make_host, sync_protocol

pytestmark = pytest.mark.anyio
SYNC = sync_protocol("regtest")
GET_HEADERS = encode_frame(m.GET_HEADERS, m.GetHeaders((REGTEST.genesis_hash,)).encode())
STREAMS_TO_BAN = -(-BAN_THRESHOLD // Penalty.BEFORE_HANDSHAKE.score)


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@asynccontextmanager
async def scene(root: Path) -> AsyncIterator[tuple[Node, Node, IHost]]:
    """A victim node, a good peer connected to it, and a raw libp2p host."""
    async with trio.open_nursery() as nursery:
        nodes = Nodes(root, nursery)
        try:
            victim, good = await nodes.start(2)
            await good.connect(victim)
            host = make_host(create_new_key_pair(), 4)
            async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
                yield victim, good, host
        finally:
            await nodes.stop_all()


def connected(host: IHost, victim: Node) -> bool:
    return bool(host.get_network().get_connections(ID.from_base58(victim.s.peer_id)))


async def ask_headers(host: IHost, victim: Node) -> int | None:
    """Open a request stream, send getheaders, return the reply's type (None: no reply)."""
    try:
        stream = await host.new_stream(ID.from_base58(victim.s.peer_id), [SYNC])
        await stream.write(GET_HEADERS)
        with trio.move_on_after(2):
            kind, _ = await FrameReader(stream).read_frame(m.HEADERS_REPLY_CAPS)
            return kind
    except Exception:
        return None
    return None


async def test_request_streams_before_hello_get_the_peer_discouraged(tmp_path: Path) -> None:
    async with scene(tmp_path) as (victim, good, host):
        attacker = host.get_id().to_string()
        started = trio.current_time()
        await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(victim.addr)))
        # One stream: refused and not served, one offence counted, still connected.
        assert await ask_headers(host, victim) is None
        assert victim.s.stats.invalid_messages["before-handshake"] == 1
        assert victim.s.stats.messages_out["headers"] == 0
        assert attacker not in victim.s.banned()
        # More of them add up: the peer is discouraged and cut off.
        for _ in range(STREAMS_TO_BAN * 2):
            if attacker in victim.s.banned() or not connected(host, victim):
                break
            assert await ask_headers(host, victim) is None
        await wait_for(lambda: attacker in victim.s.banned(), "the attacker to be discouraged")
        await wait_for(lambda: not connected(host, victim), "the attacker's connection to close")
        elapsed = trio.current_time() - started
        assert elapsed < victim.s.config.handshake_timeout / 2, elapsed
        assert victim.s.stats.invalid_messages["before-handshake"] >= STREAMS_TO_BAN
        assert victim.s.stats.discouragements == 1
        assert victim.s.stats.handshake_failures["timeout"] == 0
        assert victim.s.stats.messages_out["headers"] == 0
        # Refused when it comes back, even before any stream.
        with suppress(Exception), trio.move_on_after(5):
            await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(victim.addr)))
        await wait_for(lambda: not connected(host, victim), "the banned attacker to be refused")
        # The good peer is still served.
        (made,) = await victim.produce(1)
        await wait_for(lambda: good.tip == made, "the good peer to get the next block")
        peer = victim.s.peer(good.s.peer_id)
        assert peer is not None and peer.ban_score == 0


async def test_honest_peers_requesting_at_once_are_never_penalised(tmp_path: Path) -> None:
    """Reconnect a few times with blocks to sync: each side asks for headers as soon as
    it has admitted the other, which may be before the dialler has read the listener's
    hello. None of it counts as a request before the handshake."""
    async with trio.open_nursery() as nursery:
        nodes = Nodes(tmp_path, nursery)
        try:
            a, b = await nodes.start(2)
            for round_ in range(4):
                await (a if round_ % 2 else b).produce(2)
                await b.connect(a)
                await wait_for(lambda: a.tip == b.tip, "the two nodes to agree")
                for node, other in ((a, b), (b, a)):
                    peer = node.s.peer(other.s.peer_id)
                    assert peer is not None and peer.ban_score == 0
                await b.s.disconnect(a.s.peer_id)
                await wait_for(
                    lambda: a.s.peer(b.s.peer_id) is None and b.s.peer(a.s.peer_id) is None,
                    "the two nodes to part",
                )
            for node in (a, b):
                assert node.s.stats.invalid_messages["before-handshake"] == 0
                assert node.s.stats.discouragements == 0
        finally:
            await nodes.stop_all()
