"""Misbehaving peers: a bare libp2p host that completes the handshake and then sends
garbage, an oversize frame, a flood of requests, or an invalid chain. Each is
disconnected and discouraged (refused for a while), and the node keeps serving a good
peer throughout. The attacker is a real py-libp2p host (``make_host``: Noise, yamux)
that writes our frames by hand."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import multiaddr
import pytest
import trio
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service
from p2pnodes import Node, Nodes, wait_for

from chain.block import Block
from chain.contextual import ParentInfo
from chain.params import REGTEST
from chain.producer import assemble_block
from node.p2p import messages as m
from node.p2p.framing import FrameReader, StreamClosed, encode_frame
from node.p2p.relay import blocks_topic
from node.p2p.service import HANDSHAKE_PROTOCOL, make_host, sync_protocol
from tests.chainbuilder import PRODUCER
from tests.exactwork import sample

pytestmark = pytest.mark.anyio
SYNC = sync_protocol("regtest")


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


class Attacker:
    """A raw libp2p host that handshakes like a node and then does as the test says."""

    def __init__(self, host: IHost) -> None:
        self.host = host
        self.peer_id = host.get_id().to_string()
        self.blocks_asked = 0

    async def join(self, victim: Node, hello: m.Hello | None = None) -> None:
        await self.host.connect(info_from_p2p_addr(multiaddr.Multiaddr(victim.addr)))
        stream = await self.host.new_stream(ID.from_base58(victim.s.peer_id), [HANDSHAKE_PROTOCOL])
        await stream.write(encode_frame(m.HELLO, (hello or victim.s.our_hello()).encode()))
        kind, _ = await FrameReader(stream).read_frame(m.HANDSHAKE_CAPS)
        assert kind == m.HELLO
        await wait_for(lambda: victim.s.peer(self.peer_id) is not None, "the victim to admit us")

    async def request_stream(self, victim: Node) -> INetStream:
        return await self.host.new_stream(ID.from_base58(victim.s.peer_id), [SYNC])

    def connected_to(self, victim: Node) -> bool:
        return bool(self.host.get_network().get_connections(ID.from_base58(victim.s.peer_id)))

    def serve(self, handler: Callable[[INetStream], Awaitable[None]]) -> None:
        self.host.set_stream_handler(SYNC, handler)


@asynccontextmanager
async def scene(root: Path) -> AsyncIterator[tuple[Node, Node, Attacker]]:
    """A victim node, a good peer connected to it, and an attacker host."""
    async with trio.open_nursery() as nursery:
        nodes = Nodes(root, nursery)
        try:
            victim, good = await nodes.start(2)
            await good.connect(victim)
            host = make_host(create_new_key_pair(), 4)
            async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
                yield victim, good, Attacker(host)
        finally:
            await nodes.stop_all()


async def assert_discouraged(victim: Node, good: Node, attacker: Attacker, reason: str) -> None:
    """The attacker is cut off and refused, and the victim still serves the good peer."""
    await wait_for(lambda: attacker.peer_id in victim.s.banned(), f"{reason} to get it banned")
    assert victim.s.stats.invalid_messages[reason] >= 1
    assert victim.s.stats.discouragements == 1
    await wait_for(lambda: not attacker.connected_to(victim), "the attacker's connection to close")
    assert victim.s.peer(attacker.peer_id) is None
    # Refused when it comes back: the connection is dropped before any handshake.
    with trio.move_on_after(5):
        with suppress(Exception):
            await attacker.join(victim)
    assert victim.s.peer(attacker.peer_id) is None
    # The good peer is still served: a new block reaches it.
    (made,) = await victim.produce(1)
    await wait_for(lambda: good.tip == made, "the good peer to get the next block")
    assert good.s.peer(victim.s.peer_id) is not None


async def test_garbage_frames_get_the_peer_discouraged(tmp_path: Path) -> None:
    async with scene(tmp_path) as (victim, good, attacker):
        await attacker.join(victim)
        stream = await attacker.request_stream(victim)
        await stream.write(b"\x00\x00\x00\x10\x63" + b"\xff" * 16)  # type 99: no such message
        await assert_discouraged(victim, good, attacker, "unknown-message-type")


async def test_a_malformed_body_gets_the_peer_discouraged(tmp_path: Path) -> None:
    async with scene(tmp_path) as (victim, good, attacker):
        await attacker.join(victim)
        stream = await attacker.request_stream(victim)
        await stream.write(encode_frame(m.GET_HEADERS, b"\xc1 not msgpack"))
        await assert_discouraged(victim, good, attacker, "malformed-frame")


async def test_an_oversize_frame_is_refused_before_its_body(tmp_path: Path) -> None:
    async with scene(tmp_path) as (victim, good, attacker):
        await attacker.join(victim)
        stream = await attacker.request_stream(victim)
        # Announce 50 MB and send none of it: the victim must judge the header alone.
        await stream.write((50_000_000).to_bytes(4, "big") + bytes([m.GET_BLOCKS]))
        await assert_discouraged(victim, good, attacker, "oversize-frame")


async def test_a_request_flood_gets_the_peer_discouraged(tmp_path: Path) -> None:
    async with scene(tmp_path) as (victim, good, attacker):
        await attacker.join(victim)
        request = encode_frame(m.GET_HEADERS, m.GetHeaders((REGTEST.genesis_hash,)).encode())
        for _ in range(30):  # each stream gets a burst of 100 requests in one write
            if not attacker.connected_to(victim):
                break
            try:
                stream = await attacker.request_stream(victim)
                await stream.write(request * 100)
                with trio.move_on_after(2):
                    while await stream.read(65536):
                        pass
            except Exception:
                continue
        await assert_discouraged(victim, good, attacker, "rate-exceeded")
        assert victim.s.stats.invalid_messages["rate-exceeded"] >= 10


def _block_on_genesis(fees: int = 0, time: int | None = None) -> Block:
    genesis = REGTEST.genesis
    parent = ParentInfo(genesis.hash, 0, genesis.header.time, genesis.header.time)
    when = genesis.header.time + 1 if time is None else time
    return assemble_block(REGTEST, parent, PRODUCER, [], when, fees=fees, sampler=sample)


async def serve_chain(attacker: Attacker, headers: list[Block], body: Block) -> None:
    """Answer GET_HEADERS with ``headers`` and every GET_BLOCKS with ``body``."""

    async def handler(stream: INetStream) -> None:
        reader = FrameReader(stream)
        try:
            while True:
                kind, body_bytes = await reader.read_frame(m.REQUEST_CAPS)
                if kind == m.GET_HEADERS:
                    reply = m.encode_headers([b.header for b in headers])
                    await stream.write(encode_frame(m.HEADERS, reply))
                else:
                    attacker.blocks_asked += len(m.decode_get_blocks(body_bytes))
                    await stream.write(encode_frame(m.BLOCK, body.encoded))
        except (StreamClosed, Exception):
            return

    attacker.serve(handler)


async def test_an_invalid_block_gets_the_peer_discouraged(tmp_path: Path) -> None:
    async with scene(tmp_path) as (victim, good, attacker):
        # A well-formed, well-signed block whose coinbase claims one unit too many:
        # its header passes every header check, the block fails when connected.
        bad = _block_on_genesis(fees=1)
        await serve_chain(attacker, [bad], bad)
        claim = dataclasses.replace(
            victim.s.our_hello(), tip_hash=bad.hash, tip_height=1, chain_work=10**6
        )
        await attacker.join(victim, claim)
        await assert_discouraged(victim, good, attacker, "invalid-block")
        assert attacker.blocks_asked == 1
        assert victim.c.chainstate.index[bad.hash].failed
        assert victim.c.chainstate.tip.hash == good.tip


async def test_headers_are_checked_before_any_body_is_fetched(tmp_path: Path) -> None:
    async with scene(tmp_path) as (victim, good, attacker):
        good_block = _block_on_genesis()
        forged = Block(good_block.header._replace(producer_sig=bytes(64)), good_block.transactions)
        await serve_chain(attacker, [forged], forged)
        claim = dataclasses.replace(
            victim.s.our_hello(), tip_hash=forged.hash, tip_height=1, chain_work=10**6
        )
        await attacker.join(victim, claim)
        await assert_discouraged(victim, good, attacker, "invalid-header")
        assert attacker.blocks_asked == 0
        assert forged.hash not in victim.c.chainstate.index


async def test_a_gossip_flood_gets_the_peer_discouraged(tmp_path: Path) -> None:
    async with scene(tmp_path) as (victim, good, attacker):
        # The attacker runs gossipsub itself, with its own send limit lifted.
        router = GossipSub(
            protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_interval=1,
            max_messages_per_topic_per_second=10_000.0,
        )
        pubsub = Pubsub(attacker.host, router)
        async with background_trio_service(pubsub), background_trio_service(router):
            topic = blocks_topic("regtest")
            await pubsub.subscribe(topic)
            await attacker.join(victim)
            victim_id = ID.from_base58(victim.s.peer_id)
            await wait_for(
                lambda: victim_id in router.mesh.get(topic, set()),
                "the victim to join the attacker's mesh",
            )
            # Valid, distinct headers (a block on genesis at successive times): harmless
            # each, too many together.
            announcements = [
                m.encode_announcement(_block_on_genesis(time=REGTEST.genesis.header.time + n))
                for n in range(1, 201)
            ]
            for announcement in announcements:  # far over 10 a second with a burst of 30
                if not attacker.connected_to(victim):
                    break
                await pubsub.publish(topic, announcement)
                await trio.sleep(0.002)
            await assert_discouraged(victim, good, attacker, "rate-exceeded")
