"""How fast does a new block reach every node of an 8-node ring?

Eight nodes (``NodeCore`` + ``P2PService`` each, in this process and trio loop, on
loopback) stand in a ring, each connected to its two neighbours, so the farthest node is
four hops from the producer. Each round one node (in turn) produces a block; every
node's ``NodeCore`` events record when the block connects there. A hop is: the gossip
announcement (the header), the body fetched by request/response from the announcer, and
validation (re-executing the block's draw with regtest's tiny lottery model, ~8 ms) and
connection of the block.

Printed: p50 and p95 of the time until the block is connected on *every* node, and the
single-hop latency (until it is connected on the producer's neighbours), both measured
over the same rounds. The last line is ``ratio <p95 to all nodes / p50 single hop>``:
with four hops to the farthest node, about 4 means no time is lost beyond the hops
themselves.

Run: ``.venv/bin/python bench/propagation.py [--rounds 40] [--nodes 8]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import trio
from connect_blocks import regtest_lottery  # bench/ is on sys.path when this runs

from chain.params import REGTEST
from node.core import BlockConnected, NodeCore
from node.p2p.service import P2PConfig, P2PService

PRODUCER = bytes(range(32))
PAUSE = 0.25  # between rounds: longer than the announcement interval (0.1 s)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(root: Path, count: int, rounds: int) -> tuple[list[float], list[float]]:
    cores = []
    for n in range(count):
        (root / f"n{n}").mkdir()
        cores.append(NodeCore(root / f"n{n}", REGTEST, lottery=regtest_lottery()))
    services = [
        P2PService(core, P2PConfig(key_path=root / f"n{n}" / "p2p.key"))
        for n, core in enumerate(cores)
    ]
    arrivals: dict[bytes, dict[int, float]] = {}

    async def watch(n: int, events: trio.MemoryReceiveChannel) -> None:  # type: ignore[type-arg]
        async for event in events:
            if isinstance(event, BlockConnected):
                arrivals.setdefault(event.block.hash, {})[n] = time.perf_counter()

    to_all: list[float] = []
    one_hop: list[float] = []
    try:
        async with trio.open_nursery() as nursery:
            for n, core in enumerate(cores):
                nursery.start_soon(watch, n, core.subscribe())
            for service in services:
                await nursery.start(service.run)
            for n in range(count):  # the ring
                await services[n].connect(services[(n + 1) % count].listen_addrs[0])
            await trio.sleep(1.0)  # let gossipsub meshes form
            for r in range(rounds):
                producer = r % count
                (block_hash,) = await cores[producer].generate(1, PRODUCER)
                with trio.fail_after(30):
                    while len(arrivals.get(block_hash, {})) < count:
                        await trio.sleep(0.001)
                seen = arrivals[block_hash]
                start = seen[producer]
                to_all.append(max(seen.values()) - start)
                neighbours = ((producer + 1) % count, (producer - 1) % count)
                one_hop.extend(seen[n] - start for n in neighbours)
                await trio.sleep(PAUSE)
            nursery.cancel_scope.cancel()
    finally:
        for core in cores:
            core.close()
    return to_all, one_hop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--nodes", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="fc-propagation-") as tmp:
        to_all, one_hop = trio.run(run, Path(tmp), args.nodes, args.rounds)
    hop = statistics.median(one_hop)
    p50, p95 = percentile(to_all, 0.5), percentile(to_all, 0.95)
    print(f"{args.nodes}-node ring, {args.rounds} blocks, farthest node {args.nodes // 2} hops")
    print(f"single hop:   p50 {hop * 1000:7.1f} ms  p95 {percentile(one_hop, 0.95) * 1000:7.1f} ms")
    print(f"to all nodes: p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms")
    print(f"ratio {p95 / hop:.2f}")


if __name__ == "__main__":
    main()
