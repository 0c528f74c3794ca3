"""Two halves of a network mine apart, then meet: everyone ends on the most-work chain.

Nodes 0-1 and 2-3 are two halves joined by the link 1-2. The link is cut (each end bans
the other, so neither dials back); the 2-3 half mines two blocks, one of them carrying a
payment, while the 0-1 half mines five. When the link returns, 2 and 3 reorganise onto
the longer (on regtest: more work) chain, and the payment, no longer in any block, is
back in their mempools, ready to be mined again.
"""

from __future__ import annotations

import pytest
from framework import (
    Network,
    Wallet,
    connect,
    generate,
    mempool,
    peers,
    submit,
    sync_blocks,
    tip,
    wait_for,
)


@pytest.mark.slow
def test_partitions_converge_on_the_most_work_chain(network: Network) -> None:
    a, b, c, d = network.start_nodes(4)
    for left, right in ((a, b), (c, d), (b, c)):
        connect(left, right)
    wallet = Wallet()
    generate(a, 101, wallet.address)
    sync_blocks([a, b, c, d])

    # Cut the link between the halves.
    b.rpc.post("/peers/ban", {"peer_id": c.peer_id, "seconds": 3600})
    c.rpc.post("/peers/ban", {"peer_id": b.peer_id, "seconds": 3600})
    wait_for(
        lambda: (
            c.peer_id not in {p["peer_id"] for p in peers(b)}
            and b.peer_id not in {p["peer_id"] for p in peers(c)}
        ),
        what="the halves to part",
    )

    txid = submit(c, wallet.pay_self(wallet.coinbase(c, 1)))
    losing = generate(c, 2)
    assert sync_blocks([c, d]) == losing[-1]
    assert txid not in mempool(d)  # it is in d's chain now
    winning = generate(a, 5)
    assert sync_blocks([a, b]) == winning[-1]

    # Heal the link.
    b.rpc.post("/peers/unban", {"peer_id": c.peer_id})
    c.rpc.post("/peers/unban", {"peer_id": b.peer_id})
    connect(b, c)
    assert sync_blocks([a, b, c, d]) == winning[-1]
    assert {tip(node)["height"] for node in (a, b, c, d)} == {106}
    wait_for(
        lambda: all(txid in mempool(node) for node in (c, d)),
        what=f"the losing half to re-admit {txid}",
    )
    for node in (c, d):
        assert node.rpc.get(f"/chain/block/{losing[0]}")["in_active_chain"] is False
