"""A real node for the RPC, index and CLI tests: NodeCore on a copy of a mined chain.

The base chain is ``tests.chainbuilder``'s (110 regtest blocks, ALICE's 300 coins of
0.1 FC confirmed at height 102, PRODUCER's mature coinbases), mined once per test module
into ``base/chainstate`` and copied into each test's data directory, where a
:class:`node.core.NodeCore` opens it with a fixed clock. Nothing is mocked: the app
runs over the same core, LevelDB and indexes that ``fcd`` runs.

* :func:`open_node` gives a core, its indexes and an :class:`RpcContext` whose ``peers``
  is whatever the test passes: ``None``, or a :class:`PeerBook`.
* :class:`PeerBook` is a small, real implementation of ``PeerControl`` (a ban list with
  expiry and a peer table), used where the tests need peers without a libp2p host.
* :class:`ServerThread` serves an app with ``serve_rpc`` on a free port from a thread
  with its own trio loop, for tests that drive the node over real HTTP (the CLI).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from chain.params import REGTEST, ChainParams
from node.auth import write_cookie
from node.core import NodeCore
from node.indexes import ChainIndexes
from node.rpc import RpcContext, create_app, serve_rpc
from tests import exactwork
from tests.chainbuilder import NOW, BaseChain, build_base_chain

TOKEN = "a" * 64


def mine_base(root: Path) -> BaseChain:
    """Mine the base chain into ``root/chainstate`` (once per module)."""
    root.mkdir(parents=True, exist_ok=True)
    return build_base_chain(root / "chainstate")


def copy_base(base: BaseChain, datadir: Path) -> Path:
    datadir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(base.path, datadir / "chainstate")
    return datadir


@dataclass(frozen=True)
class PeerInfo:
    peer_id: str
    addr: str
    inbound: bool
    best_height: int
    nonce: bytes = b"\x01\x02"


@dataclass
class PeerStats:
    """Counters shaped like ``node.p2p.peers.P2PStats`` (what ``/metrics`` reads)."""

    messages_in: dict[str, int] = field(default_factory=dict)
    messages_out: dict[str, int] = field(default_factory=dict)
    disconnects: dict[str, int] = field(default_factory=dict)
    discouragements: int = 0


@dataclass
class PeerBook:
    """A real (if network-less) ``PeerControl``: peers, bans that expire, counters, and a
    ``connect`` that admits the dialled peer unless it is listed as unreachable."""

    peer_id: str = "12D3KooWTestNodeAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    listen_addrs: list[str] = field(default_factory=lambda: ["/ip4/127.0.0.1/tcp/27333"])
    connected: list[PeerInfo] = field(default_factory=list)
    bans: dict[str, int] = field(default_factory=dict)
    stats: PeerStats = field(default_factory=PeerStats)
    unreachable: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.time

    async def connect(self, addr: str) -> str:
        peer_id = addr.rsplit("/p2p/", 1)[1]
        if peer_id in self.unreachable:
            raise ConnectionRefusedError(f"cannot reach {addr}")
        if peer_id in self.banned():
            raise PermissionError(f"peer {peer_id} is banned")
        host = addr.rsplit("/p2p/", 1)[0]
        self.connected.append(PeerInfo(peer_id, host, False, 0))
        return peer_id

    def peers(self) -> list[Any]:
        return list(self.connected)

    def ban(self, peer_id: str, seconds: int) -> None:
        self.bans[peer_id] = int(self.clock()) + seconds
        self.connected = [p for p in self.connected if p.peer_id != peer_id]

    def unban(self, peer_id: str) -> bool:
        return self.bans.pop(peer_id, None) is not None

    def banned(self) -> dict[str, int]:
        now = int(self.clock())
        self.bans = {p: until for p, until in self.bans.items() if until > now}
        return dict(self.bans)


@dataclass
class RpcNode:
    datadir: Path
    core: NodeCore
    indexes: ChainIndexes
    ctx: RpcContext

    def close(self) -> None:
        self.core.close()


def open_node(
    datadir: Path,
    params: ChainParams = REGTEST,
    peers: Any = None,
    now: int = NOW,
) -> RpcNode:
    datadir.mkdir(parents=True, exist_ok=True)
    core = NodeCore(datadir, params, clock=lambda: now, lottery=exactwork.tiny_lottery())
    indexes = ChainIndexes(core)
    ctx = RpcContext(core=core, peers=peers, token=TOKEN, indexes=indexes, datadir=datadir)
    return RpcNode(datadir, core, indexes, ctx)


class ServerThread:
    """``serve_rpc`` over a node on ``datadir`` in a thread with its own trio loop.

    The core is opened inside that thread (its ``trio.Lock`` belongs to that loop), the
    cookie is written as ``fcd`` writes it, and so is the ready file ``fcd.json``.
    """

    def __init__(self, datadir: Path, peers: Any = None) -> None:
        self.datadir = datadir
        self.peers = peers
        self.port = 0
        self.token = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("RPC server did not start within 60 s")
        if self._error is not None:
            raise RuntimeError("RPC server failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._token is not None and self._cancel is not None:
            trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        self._thread.join(30)
        if self._thread.is_alive():
            raise RuntimeError("RPC server thread did not stop")

    def _run(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        node = open_node(self.datadir, peers=self.peers)
        node.ctx.token = self.token = write_cookie(self.datadir)
        try:
            with trio.CancelScope() as scope:
                self._cancel = scope
                self._token = trio.lowlevel.current_trio_token()
                async with trio.open_nursery() as nursery:
                    self.port = await nursery.start(serve_rpc, create_app(node.ctx), "127.0.0.1", 0)
                    (self.datadir / "fcd.json").write_text(
                        f'{{"rpc_url": "{self.url}", "rpc_port": {self.port}}}\n'
                    )
                    self._ready.set()
        finally:
            node.close()
