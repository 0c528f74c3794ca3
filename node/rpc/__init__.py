"""The node's HTTP API: FastAPI on hypercorn, in the node's trio loop.

* ``context``: :class:`RpcContext`, the node's parts the handlers use,
  :class:`PeerControl`, what the API needs of the p2p service, and :class:`MinerView`,
  what it reads of the miner;
* ``app``: :func:`create_app` assembles routes, guards and error handling;
* ``guard``: bearer token and body size limits, before anything else runs;
* ``routes``: the endpoints; ``schemas``: their request and response shapes;
  ``views``: ledger objects as JSON values; ``errors``: the one error shape and codes;
* ``metrics``: Prometheus exposition; ``server``: :func:`serve_rpc`.

``specs/rpc.md`` is the API's reference.
"""

from node.rpc.app import create_app
from node.rpc.context import MinerView, PeerControl, PeerDialer, RpcContext
from node.rpc.server import serve_rpc

__all__ = [
    "MinerView",
    "PeerControl",
    "PeerDialer",
    "RpcContext",
    "create_app",
    "serve_rpc",
]
