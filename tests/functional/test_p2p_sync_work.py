"""A peer serving a chain with a forged draw is banned, and the node syncs from an honest one.

Three in-process nodes on loopback, each a ``NodeCore`` and a started ``P2PService`` (real
py-libp2p hosts: Noise, yamux, the handshake and request/response of specs/p2p.md):

* the **forger** runs the protocol honestly but its lottery takes any draw as valid, so
  its chain holds a block 3 whose draw has one token changed (header signed again): every
  cheap header check passes (at the regtest target every draw meets it), and only
  re-executing the draw (``bad-work``) finds it out. It serves that chain like any node;
* the **honest** node has its own, longer-than-two chain;
* the **victim** runs the real regtest lottery.

The victim syncs from the forger first: blocks 1 and 2 connect, block 3 fails ``bad-work``
when connected, the forger is banned (not merely scored), the round's pending headers
(3..5) are dropped, and the tip stays at the forger's block 2. Then it syncs the honest
chain from the honest node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import trio

from chain.block import Block
from chain.lottery import DrawTask, decode_tokens, encode_tokens
from chain.params import REGTEST
from chain.producer import assemble_block, sign_header
from node.core import NodeCore
from node.p2p.errors import P2PError
from node.p2p.service import P2PConfig, P2PService
from tests import exactwork
from tests.chainbuilder import PRODUCER, key, secret_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


class Permissive:
    """The regtest model for drawing; any draw passes verification."""

    def sample(self, tasks: Sequence[DrawTask]) -> list[bytes]:
        return exactwork.sample(tasks)

    def verify(self, task: DrawTask, tokens: bytes) -> bool:
        return True


class Node:
    """A NodeCore with a running P2PService, stopped when the test's nursery ends."""

    def __init__(self, root: Path, name: str, lottery: Any) -> None:
        self.name = name
        self.datadir = root / name
        self.datadir.mkdir()
        self.core = NodeCore(self.datadir, REGTEST, lottery=lottery)
        self.p2p = P2PService(self.core, P2PConfig(key_path=self.datadir / "p2p.key"))
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self._run)

    async def _run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                await self.p2p.run(task_status=task_status)
        finally:
            self.core.close()
            self._stopped.set()

    async def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            await self._stopped.wait()
            self._scope = None

    @property
    def cs(self) -> Any:
        return self.core.chainstate

    @property
    def tip(self) -> bytes:
        return bytes(self.cs.tip.hash)

    @property
    def addr(self) -> str:
        return self.p2p.listen_addrs[0]

    @property
    def peer_id(self) -> str:
        return self.p2p.peer_id


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@asynccontextmanager
async def nodes(root: Path) -> AsyncIterator[tuple[Node, Node, Node]]:
    async with trio.open_nursery() as nursery:
        forger = Node(root, "forger", Permissive())
        honest = Node(root, "honest", exactwork.tiny_lottery())
        victim = Node(root, "victim", exactwork.tiny_lottery())
        started: list[Node] = []
        try:
            for node in (forger, honest, victim):
                await node.start(nursery)
                started.append(node)
            yield forger, honest, victim
        finally:
            for node in started:
                await node.stop()
            for node in (forger, honest, victim):
                if node not in started:
                    node.core.close()


async def forge_next(core: NodeCore) -> Block:
    """Submit to ``core`` a block on its tip whose draw has one token changed."""
    cs = core.chainstate
    parent = cs.parent_info(cs.tip.hash)
    when = max(core.now(), parent.median_time_past + 1)
    good = assemble_block(
        REGTEST, parent, PRODUCER, [], when, sampler=exactwork.sample, jobs=cs.jobs_for_child()
    )
    tokens = decode_tokens(good.header.work.tokens)
    tokens[0] = (tokens[0] + 1) % REGTEST.lottery.vocab
    work = good.header.work._replace(tokens=encode_tokens(tokens))
    forged = Block(
        sign_header(good.header._replace(work=work), PRODUCER, REGTEST), good.transactions
    )
    outcome = await core.submit_block(forged)
    assert outcome.accepted, outcome.error
    return forged


async def test_a_peer_serving_a_forged_draw_is_banned_and_the_honest_chain_synced(
    tmp_path: Path,
) -> None:
    async with nodes(tmp_path) as (forger, honest, victim):
        # The forger's chain: 1, 2 valid; 3 forged; 4, 5 valid draws on top of it.
        await forger.core.generate(2, PRODUCER)
        forged = await forge_next(forger.core)
        await forger.core.generate(2, PRODUCER)
        chain = list(forger.cs.active[1:])
        assert len(chain) == 5 and chain[2] == forged.hash
        # The honest chain: 4 blocks of its own (another payee: no block in common).
        await honest.core.generate(4, PRODUCER, pay_to=key(secret_for("honest")))

        await victim.p2p.connect(forger.addr)
        svc = victim.p2p
        await wait_for(lambda: svc.is_banned(forger.peer_id), "the forger to be banned")
        await wait_for(lambda: not svc.sync.running, "the round to end")

        # Blocks 1 and 2 connected; block 3 failed on re-execution; 4 and 5 never tried.
        assert victim.tip == chain[1]
        assert victim.cs.index[forged.hash].failed
        assert victim.core.stats.rejects == {"bad-work": 1}
        assert chain[3] not in victim.cs.index and chain[4] not in victim.cs.index
        # Banned, not scored: refused, out of the peer table, its connection closed.
        assert svc.stats.work_bans == {"bad-work": 1}
        assert svc.stats.discouragements == 1
        assert svc.peer(forger.peer_id) is None
        await wait_for(lambda: forger.p2p.peer(victim.peer_id) is None, "the connection to close")
        # The pending headers went with the round: nothing claims heights 3..5 any more.
        state = svc.sync_state()
        assert (state.height, state.header_height, state.best_peer_height) == (2, 2, 0)
        assert (state.blocks_in_flight, state.blocks_waiting) == (0, 0)
        # It stays refused, whichever side dials.
        with pytest.raises(P2PError, match="banned"):
            await svc.connect(forger.addr)
        with suppress(P2PError):
            await forger.p2p.connect(victim.addr)
        await trio.sleep(0.5)
        assert svc.peer(forger.peer_id) is None

        # An honest peer's chain (4 blocks, more work than 2) is synced as usual.
        await svc.connect(honest.addr)
        await wait_for(lambda: victim.tip == honest.tip, "the victim to sync the honest chain")
        assert victim.cs.height == 4
        assert not svc.is_banned(honest.peer_id)
        assert svc.stats.discouragements == 1
