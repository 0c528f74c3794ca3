"""Redial after a peer restarts (specs/p2p.md §2): a node started with ``--connect``
dials the peer again with backoff doubling from 0.5 s to 30 s, not after py-libp2p's
60 s dial negative cache lets it (a peer whose every address failed once is refused
dials for a minute)."""

from __future__ import annotations

import time

from framework import Network, peers, wait_for


def test_a_restarted_peer_is_redialled_within_seconds(network: Network) -> None:
    (source,) = network.start_nodes(1)
    dialler = network.add_node().start("--connect", source.p2p_addr)
    source_id = source.peer_id

    def linked() -> bool:
        return source_id in {p["peer_id"] for p in peers(dialler)}

    wait_for(linked, 30, "the dialler to connect")
    source.stop()
    wait_for(lambda: not linked(), 30, "the dialler to see the peer go")
    time.sleep(2)  # a few redials fail while it is down (and mark it in libp2p's cache)
    source.start()
    up = time.monotonic()
    wait_for(linked, 60, "the dialler to redial the restarted peer")
    # The backoff is at most a few seconds by now (0.5, 1, 2, 4 s …), far below 60 s.
    assert time.monotonic() - up < 15, time.monotonic() - up
