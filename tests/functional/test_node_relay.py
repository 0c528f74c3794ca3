"""Blocks and transactions travel across a network of ``fcd`` processes.

Five nodes in a line (0-1-2-3-4), so anything that reaches the far end has been
relayed by every node between, not just handed over by the one that made it.
"""

from __future__ import annotations

from itertools import pairwise

from framework import (
    Network,
    Node,
    Wallet,
    connect,
    generate,
    mempool,
    submit,
    sync_blocks,
    sync_mempools,
    tip,
    wait_for,
)


def line_of(network: Network, count: int) -> list[Node]:
    nodes = network.start_nodes(count)
    for left, right in pairwise(nodes):
        connect(left, right)
    return nodes


def test_blocks_reach_four_other_nodes(network: Network) -> None:
    nodes = line_of(network, 5)
    hashes = generate(nodes[0], 5)
    assert sync_blocks(nodes) == hashes[-1]
    # And the other way along the line, from a block made at the far end.
    (far,) = generate(nodes[4], 1)
    assert sync_blocks(nodes) == far
    assert {tip(node)["height"] for node in nodes} == {6}


def test_transaction_reaches_every_mempool(network: Network) -> None:
    nodes = line_of(network, 5)
    wallet = Wallet()
    generate(nodes[0], 101, wallet.address)  # the first coinbase matures
    sync_blocks(nodes)
    tx = wallet.pay_self(wallet.coinbase(nodes[0], 1))
    txid = submit(nodes[4], tx)
    assert sync_mempools(nodes) == {txid}
    # The producer at the other end mines it, and every pool lets it go.
    generate(nodes[0], 1)
    sync_blocks(nodes)
    wait_for(lambda: all(mempool(node) == [] for node in nodes), what="empty mempools")
    block = nodes[4].rpc.get(f"/chain/block/{tip(nodes[4])['hash']}")
    assert [t["txid"] for t in block["transactions"][1:]] == [txid]
