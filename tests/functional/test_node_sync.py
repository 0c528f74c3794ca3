"""A node that joins late catches up, and one killed while catching up resumes.

Sync is headers first, then blocks; whatever a node had connected when it was killed
stays connected (each block is one LevelDB batch), so after a restart it asks its peer
only for the rest.
"""

from __future__ import annotations

import pytest
from framework import Network, Wallet, generate, submit, sync_blocks, tip, wait_for


@pytest.mark.slow
def test_fresh_node_syncs_500_blocks(network: Network) -> None:
    (source,) = network.start_nodes(1)
    wallet = Wallet()
    generate(source, 110, wallet.address)
    for height in range(1, 11):  # some blocks carry payments, not only coinbases
        submit(source, wallet.pay_self(wallet.coinbase(source, height)))
        generate(source, 1)
    hashes = generate(source, 380)
    assert tip(source)["height"] == 500

    fresh = network.add_node().start("--connect", source.p2p_addr)
    assert sync_blocks([source, fresh], timeout=120) == hashes[-1]
    for height in (1, 111, 250, 500):
        assert (
            fresh.rpc.get(f"/chain/block/{height}")["hash"]
            == (source.rpc.get(f"/chain/block/{height}")["hash"])
        )


@pytest.mark.slow
def test_node_killed_mid_sync_resumes_after_restart(network: Network) -> None:
    # 500 blocks: the syncing node re-executes each block's draw (~8 ms or more), so the
    # sync lasts seconds and the kill lands in the middle of it.
    (source,) = network.start_nodes(1)
    hashes = generate(source, 500)
    syncing = network.add_node().start("--connect", source.p2p_addr)

    reached: int = wait_for(lambda: tip(syncing)["height"], what="sync to begin")
    assert syncing.kill() != 0
    assert reached < 500, "sync finished before the kill: the test proved nothing"

    syncing.start("--connect", source.p2p_addr)
    assert tip(syncing)["height"] >= reached  # nothing connected was lost
    assert sync_blocks([source, syncing], timeout=120) == hashes[-1]
