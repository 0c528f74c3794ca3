"""Inbound connections that come and go must not use up the node's inbound capacity.

py-libp2p's swarm takes an inbound slot per connection and, left alone, gives it back
only when the swarm stops; a node that had seen ``2 * max_peers + 16`` inbound
connections refused every later one at the security handshake. ``P2PService`` ties each
slot to its connection's lifetime (node/p2p/inbound.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from p2pnodes import network, wait_for

pytestmark = pytest.mark.anyio

MAX_PEERS = 4
LIMIT = 2 * MAX_PEERS + 16  # the hub's bound on concurrent inbound connections


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_inbound_churn_does_not_exhaust_the_inbound_slots(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        (hub,) = await nodes.start(1, max_peers=MAX_PEERS)
        (churner,) = await nodes.start(1, reconnect_max=0.5)
        hub_id, churner_id = hub.s.peer_id, churner.s.peer_id
        for round_ in range(LIMIT + 12):
            with trio.fail_after(15):
                assert await churner.connect(hub) == hub_id, f"connection {round_ + 1}"
            await wait_for(
                lambda: hub.s.peer(churner_id) is not None, f"the hub to admit {round_ + 1}"
            )
            # Closed by the dialler and by the node, in turn.
            closer, other = (churner, hub_id) if round_ % 2 == 0 else (hub, churner_id)
            assert await closer.s.disconnect(other)
            await wait_for(
                lambda: (
                    not hub.s._connected(churner_id)
                    and not churner.s._connected(hub_id)
                    and hub.s.peer(churner_id) is None
                    and churner.s.peer(hub_id) is None
                ),
                f"connection {round_ + 1} to close on both sides",
            )
        # Every slot came back, and the bound on concurrent inbound connections is kept.
        limiter = hub.s.host.get_network()._inbound_limiter  # type: ignore[attr-defined]
        await wait_for(lambda: limiter.borrowed_tokens == 0, "the inbound slots to come back")
        assert limiter.total_tokens == LIMIT
        # An honest peer still gets in and syncs a block.
        (made,) = await hub.produce(1)
        (honest,) = await nodes.start(1)
        with trio.fail_after(15):
            await honest.connect(hub)
        await wait_for(lambda: honest.tip == made, "the honest peer to sync the hub's block")
        assert hub.s.peer(honest.s.peer_id) is not None
