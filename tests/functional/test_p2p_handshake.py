"""Handshake, identity, bans and connection management of ``P2PService``, with real
libp2p hosts on loopback in one trio loop (tests/functional/p2pnodes.py)."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from p2pnodes import network, other_network, wait_for

from chain.params import REGTEST, TESTNET
from node.p2p.errors import P2PError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_peers_of_the_same_network_handshake_both_ways(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        a, b = await nodes.start(2)
        await a.produce(3)
        peer_id = await b.connect(a)
        assert peer_id == a.s.peer_id
        await wait_for(lambda: len(a.s.peers()) == 1, "a to list b")
        (seen_by_b,) = b.s.peers()
        (seen_by_a,) = a.s.peers()
        assert (seen_by_b.peer_id, seen_by_b.inbound, seen_by_b.best_height) == (
            a.s.peer_id,
            False,
            3,
        )
        assert (seen_by_a.peer_id, seen_by_a.inbound) == (b.s.peer_id, True)
        assert seen_by_a.version == seen_by_b.version == 1
        assert seen_by_a.addr.startswith("/ip4/127.0.0.1/tcp/")
        # Connecting again is a no-op that returns the same peer.
        assert await b.connect(a) == peer_id
        assert len(b.s.peers()) == 1


async def test_a_peer_of_another_network_is_refused_with_the_reason(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        (regtest,) = await nodes.start(1)
        (testnet,) = await nodes.start(1, params=TESTNET)
        with pytest.raises(P2PError, match="this node is on network 'regtest', not 'testnet'"):
            await testnet.connect(regtest)
        await wait_for(
            lambda: regtest.s.stats.handshake_failures["mismatch"] == 1, "the listener to refuse"
        )
        assert regtest.s.peers() == [] and testnet.s.peers() == []
        await wait_for(
            lambda: not regtest.s._connected(testnet.s.peer_id), "the connection to close"
        )


async def test_a_peer_with_another_genesis_is_refused(tmp_path: Path) -> None:
    forked = other_network(REGTEST, "regtest", b"another regtest genesis")
    async with network(tmp_path) as nodes:
        (ours,) = await nodes.start(1)
        (theirs,) = await nodes.start(1, params=forked)
        with pytest.raises(P2PError, match="genesis"):
            await ours.connect(theirs)
        assert ours.s.peers() == [] and theirs.s.peers() == []


async def test_identity_is_kept_in_the_datadir_across_restarts(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        (a,) = await nodes.start(1)
        first = a.s.peer_id
        key_file = a.datadir / "p2p.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        await a.stop()
        await a.start(nodes.nursery)
        assert a.s.peer_id == first
        assert a.addr.endswith(f"/p2p/{first}")


async def test_ban_disconnects_and_refuses_until_unbanned(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        a, b = await nodes.start(2)
        await b.connect(a)
        b_id = b.s.peer_id
        a.s.ban(b_id, 600)
        await wait_for(lambda: b.s.peers() == [] and a.s.peers() == [], "the ban to disconnect")
        assert set(a.s.banned()) == {b_id}
        assert a.s.banned()[b_id] > time.time() + 500
        with pytest.raises(P2PError):
            await b.connect(a)
        with pytest.raises(P2PError, match="banned"):
            await a.connect(b)
        assert a.s.unban(b_id) is True
        assert a.s.unban(b_id) is False
        await b.connect(a)
        await wait_for(lambda: len(a.s.peers()) == 1, "b to be admitted after the unban")


async def test_max_peers_refuses_the_extra_inbound_peer(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        (hub,) = await nodes.start(1, max_peers=1)
        first, second = await nodes.start(2)
        await first.connect(hub)
        with pytest.raises(P2PError, match="too many peers"):
            await second.connect(hub)
        assert [p.peer_id for p in hub.s.peers()] == [first.s.peer_id]


async def test_configured_peers_are_redialled_after_they_drop(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        (a,) = await nodes.start(1)
        port = int(a.addr.split("/tcp/")[1].split("/")[0])
        (b,) = await nodes.start(1, connect=(a.addr,), reconnect_max=0.5)
        await wait_for(lambda: len(b.s.peers()) == 1, "b to dial its configured peer")
        await a.stop()
        await wait_for(lambda: b.s.peers() == [], "b to notice a is gone")
        await a.start(nodes.nursery, port=port)
        await wait_for(lambda: len(b.s.peers()) == 1, "b to dial a again", timeout=20)
