"""In-process nodes for the p2p tests: several ``NodeCore`` + ``P2PService`` pairs on
loopback, in one trio loop, each with its own data directory.

Each node runs in its own cancel scope inside the test's nursery, so a test can stop one
node (as a kill would, minus the process: its tasks are cancelled, its chainstate
closed) and start it again on the same data directory. :func:`wait_for` polls a condition
with a deadline instead of sleeping, and says what it was waiting for when it gives up.

``produce`` makes blocks with ``NodeCore.generate`` (regtest: each wins one draw of the
tiny lottery model of ``tests/exactwork.py``, ~20 ms), paying the coinbases to
:data:`PRODUCER`; :func:`spend_coinbase` builds a signed payment from a
mature coinbase of a node's chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from chain.params import REGTEST, ChainParams
from chain.transaction import OutPoint, Transaction, TxOut
from node.core import NodeCore
from node.p2p.service import P2PConfig, P2PService
from tests import exactwork
from tests.chainbuilder import PRODUCER, Spendable, key, pay, secret_for

__all__ = ["PRODUCER", "Node", "Nodes", "network", "spend_coinbase", "wait_for"]


async def wait_for(
    condition: Callable[[], bool], what: str, timeout: float = 30.0, interval: float = 0.01
) -> None:
    """Poll ``condition`` until it holds; fail the test saying ``what`` after ``timeout``."""
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(interval)
        return
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Node:
    def __init__(
        self, name: str, datadir: Path, params: ChainParams, config: dict[str, Any]
    ) -> None:
        self.name = name
        self.datadir = datadir
        self.params = params
        self.config_overrides = config
        self.core: NodeCore | None = None
        self.p2p: P2PService | None = None
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    @property
    def c(self) -> NodeCore:
        assert self.core is not None, f"{self.name} is not running"
        return self.core

    @property
    def s(self) -> P2PService:
        assert self.p2p is not None, f"{self.name} is not running"
        return self.p2p

    @property
    def height(self) -> int:
        return self.c.chainstate.height

    @property
    def tip(self) -> bytes:
        return self.c.chainstate.tip.hash

    @property
    def addr(self) -> str:
        return self.s.listen_addrs[0]

    def config(self, **overrides: Any) -> P2PConfig:
        settings = {"key_path": self.datadir / "p2p.key", **self.config_overrides, **overrides}
        return P2PConfig(**settings)

    async def start(self, nursery: trio.Nursery, **overrides: Any) -> None:
        self.core = NodeCore(self.datadir, self.params, lottery=exactwork.tiny_lottery())
        self.p2p = P2PService(self.core, self.config(**overrides))
        self._stopped = trio.Event()
        await nursery.start(self._run)

    async def _run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        assert self.p2p is not None and self.core is not None
        core = self.core
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                await self.p2p.run(task_status=task_status)
        finally:
            core.close()
            self._stopped.set()

    async def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            await self._stopped.wait()
            self._scope = None
        self.core = None
        self.p2p = None

    async def produce(self, count: int) -> list[bytes]:
        return await self.c.generate(count, PRODUCER)

    async def connect(self, other: Node) -> str:
        return await self.s.connect(other.addr)


class Nodes:
    """Create nodes under ``root``; every node is stopped when the nursery ends."""

    def __init__(self, root: Path, nursery: trio.Nursery) -> None:
        self.root = root
        self.nursery = nursery
        self.all: list[Node] = []

    async def start(self, count: int, params: ChainParams = REGTEST, **config: Any) -> list[Node]:
        started = []
        for _ in range(count):
            name = f"node{len(self.all)}"
            datadir = self.root / name
            datadir.mkdir()
            node = Node(name, datadir, params, config)
            await node.start(self.nursery)
            self.all.append(node)
            started.append(node)
        return started

    async def stop_all(self) -> None:
        for node in self.all:
            await node.stop()


@asynccontextmanager
async def network(root: Path) -> AsyncIterator[Nodes]:
    """A nursery of nodes under ``root``, every one stopped when the block ends."""
    async with trio.open_nursery() as nursery:
        nodes = Nodes(root, nursery)
        try:
            yield nodes
        finally:
            await nodes.stop_all()


def spend_coinbase(
    node: Node, height: int, to: bytes | None = None, fee: int = 10_000, outputs: int = 1
) -> Transaction:
    """A signed payment of the coinbase at ``height`` of ``node``'s active chain."""
    cs = node.c.chainstate
    block = cs.get_block(cs.active[height])
    assert block is not None
    coinbase = block.transactions[0]
    coin = Spendable(OutPoint(coinbase.txid, 0), coinbase.outputs[0], PRODUCER)
    recipient = to if to is not None else key(secret_for("p2p-payee"))
    share = (coin.amount - fee) // outputs
    outs = [TxOut(share, recipient) for _ in range(outputs)]
    outs[-1] = TxOut(coin.amount - fee - share * (outputs - 1), recipient)
    return pay([coin], outs, node.params)


def other_network(params: ChainParams, name: str, message: bytes) -> ChainParams:
    """Regtest rules under another name or genesis, for handshake mismatch tests."""
    return dataclasses.replace(params, name=name, genesis_message=message)
