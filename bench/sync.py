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

Both validate every signature and re-execute every block's draw (regtest's tiny lottery
model, ``bench/connect_blocks.py``). The difference is what sync adds: the network, framing,
decoding received bytes, the context-free checks and storing each block, the worker
thread hop and lock per run of blocks. Where the time goes is printed before the ratio. The last
line is ``ratio <sync time / reindex time>``.

Run: ``.venv/bin/python bench/sync.py [--blocks 2000] [--txs 20]``
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from connect_blocks import build, regtest_lottery  # bench/ is on sys.path when this runs

from chain.block import decode_block
from chain.params import REGTEST
from node.core import NodeCore
from node.p2p.service import P2PConfig, P2PService


def load_source(path: Path, blocks: list[bytes]) -> None:
    """Store and connect the chain in the source's data directory (untimed)."""
    core = NodeCore(path, REGTEST, lottery=regtest_lottery())
    try:
        now = core.now()
        for data in blocks:
            core.chainstate.accept_block(decode_block(data), now)
    finally:
        core.close()


async def serve(datadir: Path) -> None:
    """The source node (``--serve``): print its address, serve until stdin closes."""
    core = NodeCore(datadir, REGTEST, lottery=regtest_lottery())
    service = P2PService(core, P2PConfig(key_path=datadir / "p2p.key"))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            print(service.listen_addrs[0], core.chainstate.tip.hash.hex(), flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)  # returns when the parent closes it
            nursery.cancel_scope.cancel()
    finally:
        core.close()


async def measure_sync(root: Path, separate: bool) -> tuple[float, int, float, float]:
    """Sync a fresh node from the source: seconds, height reached, the seconds the fresh
    node spent inside ``NodeCore.submit_block``, and of those in the best-chain search."""
    fresh_core = NodeCore(root / "fresh", REGTEST, lottery=regtest_lottery())
    fresh = P2PService(fresh_core, P2PConfig(key_path=root / "fresh" / "p2p.key"))
    search = _time_best_chain_search(fresh_core)
    source_process = None
    try:
        async with trio.open_nursery() as nursery:
            if separate:
                source_process = subprocess.Popen(
                    [sys.executable, __file__, "--serve", str(root / "source")],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert source_process.stdout is not None
                line = await trio.to_thread.run_sync(source_process.stdout.readline)
                addr, target_hex = line.split()
                target = bytes.fromhex(target_hex)
            else:
                source_core = NodeCore(root / "source", REGTEST, lottery=regtest_lottery())
                source = P2PService(source_core, P2PConfig(key_path=root / "source" / "p2p.key"))
                nursery.start_soon(_close_on_exit, source_core)
                await nursery.start(source.run)
                addr, target = source.listen_addrs[0], source_core.chainstate.tip.hash
            await nursery.start(fresh.run)
            started = time.perf_counter()
            await fresh.connect(addr)
            while fresh_core.chainstate.tip.hash != target:
                await trio.sleep(0.005)
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
    finally:
        if source_process is not None:
            assert source_process.stdin is not None
            source_process.stdin.close()
            source_process.wait(60)
    height = fresh_core.chainstate.height
    fresh_core.close()
    return elapsed, height, fresh_core.stats.validation_seconds, search[0]


def _time_best_chain_search(core: NodeCore) -> list[float]:
    """Accumulate the time the chainstate spends choosing the best candidate block (a
    diagnostic: it used to scan the whole block index for every accepted block)."""
    spent = [0.0]
    cs = core.chainstate
    original = getattr(cs, "_best_candidate", None)
    if original is None:
        return spent

    def timed() -> object:
        started = time.perf_counter()
        try:
            return original()
        finally:
            spent[0] += time.perf_counter() - started

    cs._best_candidate = timed  # type: ignore[method-assign]  # this instance only
    return spent


async def _close_on_exit(core: NodeCore) -> None:
    try:
        await trio.sleep_forever()
    finally:
        core.close()


def measure_reindex(path: Path) -> tuple[float, int]:
    core = NodeCore(path, REGTEST, lottery=regtest_lottery())
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
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the source node in this process too (default: its own process)",
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the source process
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.serve:
        trio.run(serve, args.serve)
        return

    print(f"building {args.blocks} blocks of {args.txs} transactions (+104 setup blocks)...")
    prefix, blocks = build(args.blocks, args.txs)
    chain = prefix + blocks
    size = sum(len(b) for b in chain)
    with tempfile.TemporaryDirectory(prefix="fc-sync-bench-") as tmp:
        root = Path(tmp)
        (root / "source").mkdir()
        (root / "fresh").mkdir()
        load_source(root / "source", chain)

        sync_seconds, height, validation, search = trio.run(measure_sync, root, not args.in_process)
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
        f"  of which in NodeCore.submit_blocks (worker thread, lock held): {validation:.2f} s"
        f" ({100 * validation / sync_seconds:.0f} %)"
    )
    print(f"  of which choosing the best chain (Chainstate._best_candidate): {search:.2f} s")
    print(f"reindex: {reindex_seconds:7.2f} s  {len(chain) / reindex_seconds:7.0f} blocks/s")
    print(f"ratio {sync_seconds / reindex_seconds:.2f}")


if __name__ == "__main__":
    main()
