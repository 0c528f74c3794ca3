"""What the RPC handlers work with: the node's parts, handed over by whoever runs them.

The app never opens anything itself. ``fcd`` (``node.daemon``) builds an
:class:`RpcContext` from the parts it runs (the validation core, the p2p service, the
cookie token, the indexes) and hands it to :func:`node.rpc.create_app`; tests build one
over a real core on a temporary data directory, with or without a network.

The p2p side is seen only through :class:`PeerControl`, the few calls the RPC needs, so
the app runs (and is tested) without a network: ``peers=None`` lists no peers and
answers ``p2p-disabled`` to ban and unban. Two optional extras are used when the
service has them: an ``async connect(addr)`` to dial a peer (:class:`PeerDialer`), and a
``stats`` dataclass of counters that ``/metrics`` exports (``node.rpc.metrics``).

The miner (``fcd --mine``) is seen only through :class:`MinerView`, its counters;
``miner=None`` (a node that does not mine) answers ``/mining/info`` with zeros.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from chain.params import ChainParams
from node.core import NodeCore
from node.indexes import ChainIndexes
from node.mining import MiningInfo


class PeerControl(Protocol):
    """The p2p calls the RPC makes (implemented by ``node.p2p.service.P2PService``)."""

    peer_id: Any  # a libp2p ID or its string; shown with str()
    listen_addrs: list[str]

    def peers(self) -> list[Any]:
        """Connected peers as dataclass instances (serialised with ``dataclasses.asdict``)."""
        ...

    def ban(self, peer_id: str, seconds: int) -> None: ...

    def unban(self, peer_id: str) -> bool:
        """False when the peer was not banned."""
        ...

    def banned(self) -> dict[str, int]:
        """Banned peer id -> unix time the ban ends."""
        ...


@runtime_checkable
class PeerDialer(Protocol):
    async def connect(self, addr: str) -> Any:
        """Dial ``addr`` (a multiaddr ending in /p2p/<id>); raise on failure."""
        ...


class MinerView(Protocol):
    """What the RPC reads of the miner (implemented by ``node.mining.Miner``)."""

    def info(self) -> MiningInfo: ...


@dataclass
class RpcContext:
    core: NodeCore
    peers: PeerControl | None
    token: str
    indexes: ChainIndexes
    started_at: float = field(default_factory=time.time)
    # Where regtest's /generate keeps its producer key (generate.key, mode 0600); with
    # None the key lives in memory for the life of the app.
    datadir: Path | None = None
    # Extra gauges for /metrics: name (without the fc_ prefix) -> reader.
    extra_metrics: Mapping[str, Callable[[], float]] = field(default_factory=dict)
    # The miner's counters for /mining/info; None when the node does not mine.
    miner: MinerView | None = None

    @property
    def params(self) -> ChainParams:
        return self.core.params
