"""A peer that breaks the protocol is cut off and refused, and the node serves on.

The misbehaving peer is a real libp2p host in the test process (Noise, yamux, its own
Ed25519 identity, built by ``node.p2p.service.make_host`` like a node's), so it reaches
the daemon exactly as a remote attacker would. It completes the handshake honestly, then
does one of:

* ``garbage``: writes bytes that are not frames at all onto a request stream;
* ``oversize``: sends a frame header announcing a body far over its type's cap (the node
  must refuse it from the header, without reading or buffering the body);
* ``flood``: sends header requests far faster than the per-peer rate, stream after
  stream, each excess costing ban score until the score reaches the threshold;
* ``invalid-block``: claims a better chain in its hello, serves a correctly signed header
  whose block pays its coinbase more than the subsidy, and waits to be asked for it.

Each time the daemon must disconnect the peer, list it as discouraged (refused on
reconnect), and go on serving an honest node beside it: a block made afterwards still
reaches that node.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import multiaddr  # type: ignore[import-untyped]
import pytest
import trio
from framework import Network, Node, connect, generate, peers, sync_blocks, tip
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr

from chain.block import Block
from chain.chainstate import Chainstate
from chain.difficulty import block_work
from chain.params import REGTEST
from chain.producer import assemble_block, make_coinbase
from chain.schnorr import pubkey_of
from node.p2p import messages as m
from node.p2p.framing import FrameReader, FrameWriter, encode_frame
from node.p2p.service import HANDSHAKE_PROTOCOL, make_host, sync_protocol
from tests.exactwork import sample, verify

SYNC = sync_protocol(REGTEST.name)
ROGUE_SECRET = bytes(range(1, 33))  # the rogue's block-producer key (any valid secret)
DEADLINE = 30.0


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` (which may call the node's RPC) without blocking our own host."""
    with trio.move_on_after(DEADLINE):
        while not predicate():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out after {DEADLINE:g} s waiting for {what}")


def overpaying_block() -> Block:
    """Block 1 on genesis: header and signature fine, coinbase claims subsidy + 1."""
    with tempfile.TemporaryDirectory() as scratch:
        chain = Chainstate(Path(scratch) / "chainstate", REGTEST, verify)
        try:
            parent = chain.parent_info(REGTEST.genesis_hash)
        finally:
            chain.close()
    greedy = make_coinbase(1, REGTEST, pubkey_of(ROGUE_SECRET), fees=1)
    when = max(int(time.time()), parent.median_time_past + 1)
    return assemble_block(REGTEST, parent, ROGUE_SECRET, [], when, coinbase=greedy, sampler=sample)


class Rogue:
    """A libp2p peer that shakes hands like a node and then does what a test says."""

    def __init__(self, target: Node, claim: Block | None = None) -> None:
        self.target = target
        self.claim = claim  # a block our hello claims as our tip (and that we serve)
        self.host: IHost = make_host(create_new_key_pair(), max_peers=4)
        self.peer_id = self.host.get_id().to_string()
        self.target_id = ID.from_base58(target.peer_id)

    def hello(self) -> m.Hello:
        genesis = REGTEST.genesis
        tip_block = self.claim or genesis
        work = block_work(genesis.header.target)
        if self.claim is not None:
            work += block_work(self.claim.header.target)
        return m.Hello(
            network=REGTEST.name,
            genesis=REGTEST.genesis_hash,
            version=m.PROTOCOL_VERSION,
            tip_hash=tip_block.hash,
            tip_height=tip_block.header.height,
            chain_work=work,
            user_agent="rogue/0",
        )

    async def shake_hands(self) -> None:
        await self.host.connect(info_from_p2p_addr(multiaddr.Multiaddr(self.target.p2p_addr)))
        stream = await self.host.new_stream(self.target_id, [HANDSHAKE_PROTOCOL])
        await FrameWriter(stream).send(m.HELLO, self.hello().encode())
        kind, _ = await FrameReader(stream).read_frame(m.HANDSHAKE_CAPS)
        assert kind == m.HELLO, "the node refused an honest-looking hello"
        await stream.close()

    async def serve_claim(self, stream: INetStream) -> None:
        """Answer the node's sync requests with our one (invalid) block."""
        assert self.claim is not None
        reader, writer = FrameReader(stream), FrameWriter(stream)
        while True:
            kind, body = await reader.read_frame(m.REQUEST_CAPS)
            if kind == m.GET_HEADERS:
                await writer.send(m.HEADERS, m.encode_headers([self.claim.header]))
            else:
                for _ in m.decode_get_blocks(body):
                    await writer.add(m.BLOCK, self.claim.encoded)
                await writer.flush()

    async def request_stream(self) -> INetStream:
        return await self.host.new_stream(self.target_id, [SYNC])

    # -- the ways to misbehave -----------------------------------------------------------
    async def send_garbage(self) -> None:
        stream = await self.request_stream()
        await stream.write(b"GET / HTTP/1.1\r\nHost: fcd\r\n\r\n" + bytes(range(256)) * 16)

    async def send_oversize(self) -> None:
        stream = await self.request_stream()
        # A header announcing a 1 GiB request, and a little of its "body".
        await stream.write((1 << 30).to_bytes(4, "big") + bytes((m.GET_HEADERS,)) + b"x" * 1024)

    async def flood(self) -> None:
        request = encode_frame(m.GET_HEADERS, m.GetHeaders((REGTEST.genesis_hash,)).encode())
        while self.connected_to_target():
            try:
                stream = await self.request_stream()
                await stream.write(request * 100)  # far over the burst of 40
            except Exception:
                return  # the node has cut us off
            await trio.sleep(0.05)

    async def wait_to_be_asked(self) -> None:
        await eventually(lambda: not self.listed_as_peer(), "the node to drop the rogue")

    # -- what the node thinks of us ------------------------------------------------------
    def listed_as_peer(self) -> bool:
        return self.peer_id in {p["peer_id"] for p in peers(self.target)}

    def discouraged(self) -> bool:
        banned = self.target.rpc.get("/peers/banned")["banned"]
        return self.peer_id in {b["peer_id"] for b in banned}

    def connected_to_target(self) -> bool:
        # py-libp2p may list a closed connection until its streams' handlers return.
        conns = self.host.get_network().get_connections(self.target_id)
        return any(not conn.is_closed for conn in conns)


async def misbehave(target: Node, how: str) -> None:
    claim = overpaying_block() if how == "invalid-block" else None
    rogue = Rogue(target, claim)
    listen = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
    async with rogue.host.run([listen]):
        if claim is not None:
            rogue.host.set_stream_handler(SYNC, rogue.serve_claim)
        await rogue.shake_hands()
        await eventually(rogue.listed_as_peer, "the node to admit the rogue")
        actions: dict[str, Callable[[], Awaitable[None]]] = {
            "garbage": rogue.send_garbage,
            "oversize": rogue.send_oversize,
            "flood": rogue.flood,
            "invalid-block": rogue.wait_to_be_asked,
        }
        await actions[how]()
        await eventually(rogue.discouraged, f"the node to discourage the rogue ({how})")
        await eventually(lambda: not rogue.listed_as_peer(), "the node to drop the rogue")
        await eventually(lambda: not rogue.connected_to_target(), "the connection to close")

        # Refused when it comes back: the node closes the new connection at once.
        with contextlib.suppress(Exception):  # refused while dialling: just as good
            await rogue.host.connect(info_from_p2p_addr(multiaddr.Multiaddr(target.p2p_addr)))
        await eventually(lambda: not rogue.connected_to_target(), "the node to refuse it again")
        assert not rogue.listed_as_peer()


@pytest.mark.parametrize(
    ("how", "offence"),
    [
        ("garbage", "unknown-message-type"),
        ("oversize", "oversize-frame"),
        ("flood", "rate-exceeded"),
        ("invalid-block", "invalid-block"),
    ],
)
def test_misbehaving_peer_is_discouraged_and_the_node_serves_on(
    network: Network, how: str, offence: str
) -> None:
    target, honest = network.start_nodes(2)
    connect(honest, target)
    trio.run(misbehave, target, how)

    assert target.running
    assert honest.peer_id in {p["peer_id"] for p in peers(target)}
    (block,) = generate(target, 1)
    assert sync_blocks([target, honest]) == block
    assert tip(target)["height"] == 1  # the invalid block never became the tip
    log = (target.datadir / "fcd.log").read_text()
    assert f"discouraged for 3600 s: {offence}" in log  # for the offence we committed
