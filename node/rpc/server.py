"""Serving the app with hypercorn inside the node's own trio loop.

``fcd`` runs one trio loop for everything: the p2p host, the index follower
and this server are tasks in one nursery, so a handler calls into the core and the
network directly. :func:`serve_rpc` binds (port 0 picks a free port), reports the port
it actually bound through ``task_status.started(port)`` so the caller can write it down,
runs the index follower beside the server, and stops when cancelled.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from fastapi import FastAPI
from hypercorn.config import Config
from hypercorn.trio import serve

from node.rpc.context import RpcContext

log = logging.getLogger("fc.rpc")

GRACEFUL_TIMEOUT = 2.0  # seconds open requests get to finish when the node stops


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None  # the node's log says what matters; no line per request
    config.errorlog = logging.getLogger("fc.rpc.server")
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.keep_alive_timeout = 30
    config.h11_max_incomplete_size = 16 * 1024  # request line and headers
    return config


def bound_port(binds: list[str]) -> int:
    """The port of hypercorn's first bind, reported like ``http://127.0.0.1:27332``."""
    return int(binds[0].rsplit(":", 1)[1])


async def serve_rpc(
    app: FastAPI,
    host: str,
    port: int,
    *,
    # trio.TaskStatus[int]; typed Any because the installed trio-stubs predate it
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until cancelled; reports the bound port."""
    ctx: RpcContext | None = getattr(app.state, "ctx", None)
    async with trio.open_nursery() as nursery:
        if ctx is not None:
            await nursery.start(ctx.indexes.run)
        binds = await nursery.start(serve, app, hypercorn_config(host, port))
        bound = bound_port(binds)
        log.info("rpc listening on %s", binds[0])
        task_status.started(bound)
