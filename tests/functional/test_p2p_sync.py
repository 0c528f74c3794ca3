"""Headers-first sync between in-process nodes: a fresh node catches up, from several
peers at once, and resumes after being stopped half-way."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from p2pnodes import network, wait_for

pytestmark = pytest.mark.anyio
# Hundreds of blocks, each with its draw re-executed where it connects (~8 ms on an idle
# core, several times that on a loaded machine): more than wait_for's default 30 s.
SYNC_TIMEOUT = 120.0


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_a_fresh_node_syncs_500_blocks(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        source, fresh = await nodes.start(2)
        await source.produce(500)
        await fresh.connect(source)
        await wait_for(
            lambda: fresh.tip == source.tip, "the fresh node to reach height 500", SYNC_TIMEOUT
        )
        assert fresh.height == 500
        stats = fresh.s.stats
        # Nearly every block came by sync (gossipsub may replay the source's last
        # announcements to a new peer; such a block may come as a relayed orphan), and
        # no block was fetched twice beyond a stray announcement or two.
        assert stats.blocks_synced >= 490
        assert 500 <= stats.messages_in["block"] <= 505
        # Headers came first: a handful of header requests, then blocks in batches.
        assert fresh.s.stats.messages_out["getheaders"] <= 3
        assert fresh.s.stats.messages_out["getblocks"] <= 500 // 8
        await wait_for(lambda: not fresh.s.sync_state().running, "the round to end")
        assert fresh.c.chainstate.utxo_commitment() == source.c.chainstate.utxo_commitment()


async def test_blocks_are_fetched_from_several_peers(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        first, second, third, fresh = await nodes.start(4)
        await first.produce(300)
        await second.connect(first)
        await third.connect(first)
        await wait_for(
            lambda: second.tip == third.tip == first.tip, "the sources to agree", SYNC_TIMEOUT
        )
        for source in (first, second, third):
            await fresh.connect(source)
        await wait_for(lambda: fresh.tip == first.tip, "the fresh node to sync", SYNC_TIMEOUT)
        served = [s.s.stats.messages_out["block"] for s in (first, second, third)]
        assert sum(served) >= 300
        assert sum(1 for n in served if n > 0) >= 2, f"blocks served per source: {served}"


async def test_a_node_stopped_mid_sync_resumes_after_restart(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        source, fresh = await nodes.start(2)
        await source.produce(600)
        await fresh.connect(source)
        await wait_for(lambda: fresh.height >= 60, "sync to get going")
        await fresh.stop()  # cancels the round half-way; the chainstate closes cleanly
        await fresh.start(nodes.nursery)
        stopped_at = fresh.height
        assert 60 <= stopped_at < 600, f"restarted at height {stopped_at}"
        await fresh.connect(source)
        await wait_for(
            lambda: fresh.tip == source.tip, "the restarted node to finish", SYNC_TIMEOUT
        )
        # It went on from where it stopped: no block below the restart height again
        # (a batch in flight at most).
        assert fresh.s.stats.messages_in["block"] <= 600 - stopped_at + 16


async def test_sync_state_reports_progress(tmp_path: Path) -> None:
    async with network(tmp_path) as nodes:
        source, fresh = await nodes.start(2)
        await source.produce(400)
        await fresh.connect(source)
        seen_running = False
        with trio.move_on_after(SYNC_TIMEOUT):
            while fresh.tip != source.tip:
                state = fresh.s.sync_state()
                if state.running:
                    seen_running = True
                    assert state.peer == source.s.peer_id
                    assert state.best_peer_height == 400
                    assert state.height <= state.header_height <= 400
                await trio.sleep(0.005)
        assert fresh.tip == source.tip
        assert seen_running
        await wait_for(lambda: not fresh.s.sync_state().running, "the round to end")
        done = fresh.s.sync_state()
        assert (done.height, done.header_height, done.blocks_in_flight) == (400, 400, 0)
