"""How fast does a fresh node sync over the network, against reindexing from disk?

Setup (untimed; everything lives in a temporary directory): the chain of
``bench/connect_blocks.py``: a prefix of 104 blocks (103 coinbase-only, one fan-out) and
then ``--blocks`` blocks of ``--txs`` signed transfers each (2 inputs, 2 outputs; every
block spends the outputs of the one before). A *source* node stores and connects it.

Measured, in the same run and on the same blocks:

* **sync**: a fresh node (its own ``NodeCore`` and ``P2PService``, in this process and
  trio loop) connects to the source over loopback (Noise, yamux) and runs headers-first
  sync to the source's tip: handshake, header download and checks, block download by
  request/response, ``NodeCore.submit_block`` for each block (context-free checks,
  storage, contextual checks, connection, two fsynced LevelDB batches);
* **baseline**: the source rebuilds its coin set from its own stored blocks with
  ``Chainstate.reindex()``: read, decode and connect every block (one fsynced batch each).

Both validate every signature. The difference is what sync adds: the network, framing,
decoding received bytes, the context-free checks and storing each block, the worker
thread hop and lock per block. Where the time goes is printed before the ratio. The last
line is ``ratio <sync time / reindex time>``.

Run: ``.venv/bin/python bench/sync.py [--blocks 2000] [--txs 20]``
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import trio
from connect_blocks import build  # bench/ is on sys.path when this script runs

from chain.block import decode_block
from chain.params import REGTEST
from node.core import NodeCore
from node.p2p.service import P2PConfig, P2PService


def load_source(path: Path, blocks: list[bytes]) -> None:
    """Store and connect the chain in the source's data directory (untimed)."""
    core = NodeCore(path, REGTEST)
    try:
        now = core.now()
        for data in blocks:
            core.chainstate.accept_block(decode_block(data), now)
    finally:
        core.close()


async def measure_sync(root: Path) -> tuple[float, int, float]:
    """Sync a fresh node from the source: seconds, height reached, and the seconds the
    fresh node spent inside ``NodeCore.submit_block``."""
    source_core = NodeCore(root / "source", REGTEST)
    fresh_core = NodeCore(root / "fresh", REGTEST)
    source = P2PService(source_core, P2PConfig(key_path=root / "source" / "p2p.key"))
    fresh = P2PService(fresh_core, P2PConfig(key_path=root / "fresh" / "p2p.key"))
    target = source_core.chainstate.tip.hash
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run)
            await nursery.start(fresh.run)
            started = time.perf_counter()
            await fresh.connect(source.listen_addrs[0])
            while fresh_core.chainstate.tip.hash != target:
                await trio.sleep(0.005)
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
    finally:
        source_core.close()
    height = fresh_core.chainstate.height
    fresh_core.close()
    return elapsed, height, fresh_core.stats.validation_seconds


def measure_reindex(path: Path) -> tuple[float, int]:
    core = NodeCore(path, REGTEST)
    try:
        started = time.perf_counter()
        core.chainstate.reindex()
        return time.perf_counter() - started, core.chainstate.height
    finally:
        core.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=2000, help="blocks with transactions")
    parser.add_argument("--txs", type=int, default=20, help="transactions per block")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    print(f"building {args.blocks} blocks of {args.txs} transactions (+104 setup blocks)...")
    prefix, blocks = build(args.blocks, args.txs)
    chain = prefix + blocks
    size = sum(len(b) for b in chain)
    with tempfile.TemporaryDirectory(prefix="fc-sync-bench-") as tmp:
        root = Path(tmp)
        (root / "source").mkdir()
        (root / "fresh").mkdir()
        load_source(root / "source", chain)

        sync_seconds, height, validation = trio.run(measure_sync, root)
        assert height == len(chain), f"synced to {height}, expected {len(chain)}"
        reindex_seconds, reindexed = measure_reindex(root / "source")
        assert reindexed == len(chain)

    txs = args.blocks * args.txs
    print(f"chain: {len(chain)} blocks, {txs} transactions, {size / 1e6:.1f} MB")
    print(
        f"sync:    {sync_seconds:7.2f} s  {len(chain) / sync_seconds:7.0f} blocks/s"
        f"  {size / sync_seconds / 1e6:6.1f} MB/s"
    )
    print(
        f"  of which in NodeCore.submit_block (worker thread, lock held): {validation:.2f} s"
        f" ({100 * validation / sync_seconds:.0f} %)"
    )
    print(f"reindex: {reindex_seconds:7.2f} s  {len(chain) / reindex_seconds:7.0f} blocks/s")
    print(f"ratio {sync_seconds / reindex_seconds:.2f}")


if __name__ == "__main__":
    main()
