"""Inbound connection slots that come back when the connection closes.

py-libp2p 0.8's swarm bounds inbound connections with a ``trio.CapacityLimiter`` of
``max_connections - min_connections`` slots (``Swarm._inbound_limiter``). The task that
takes a slot for a connection upgrades it and then waits for the whole swarm to stop
(``Swarm._do_handle_inbound_connection``: ``await self.manager.wait_finished()``) before
giving the slot back, so every inbound connection that was ever upgraded keeps its slot,
closed or not. Once ``max_connections`` of them have come and gone, every new inbound
connection is closed before its security handshake, until restart.

:func:`release_inbound_slots_on_close` makes each slot last as long as its connection:
the handler task runs on a raw stream that reports when it is closed (by the peer or by
us: py-libp2p closes the socket under a connection that ends), and the task is cancelled
then, which runs py-libp2p's own ``finally`` that releases the slot. The limiter and its
bound on concurrent inbound connections are py-libp2p's, unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.io.abc import ReadWriteCloser
from libp2p.network.swarm import Swarm
from multiaddr import Multiaddr  # type: ignore[import-untyped]

InboundHandler = Callable[[ReadWriteCloser, Multiaddr], Awaitable[None]]


class _WatchedStream(ReadWriteCloser):
    """A listener's raw stream that sets ``closed`` once it has been closed."""

    def __init__(self, inner: ReadWriteCloser) -> None:
        self._inner = inner
        self.closed = trio.Event()

    async def read(self, n: int | None = None) -> bytes:
        return await self._inner.read(n)

    async def write(self, data: bytes) -> None:
        await self._inner.write(data)

    async def close(self) -> None:
        try:
            await self._inner.close()
        finally:
            self.closed.set()

    def get_remote_address(self) -> tuple[str, int] | None:
        return self._inner.get_remote_address()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def release_inbound_slots_on_close(swarm: Swarm) -> None:
    """Make ``swarm`` give an inbound connection's slot back when the connection closes."""
    original = getattr(swarm, "_handle_inbound_connection", None)
    if original is None or not hasattr(swarm, "_inbound_limiter"):
        raise ImportError("py-libp2p's Swarm changed its inbound limiter; see node/p2p/inbound.py")
    handle: InboundHandler = original

    async def handle_until_closed(read_write_closer: ReadWriteCloser, maddr: Multiaddr) -> None:
        stream = _WatchedStream(read_write_closer)
        async with trio.open_nursery() as nursery:

            async def serve() -> None:
                try:
                    await handle(stream, maddr)  # takes the slot; releases it as it ends
                finally:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(serve)
            await stream.closed.wait()
            nursery.cancel_scope.cancel()

    # The listeners look the handler up on the swarm for each new connection.
    setattr(swarm, "_handle_inbound_connection", handle_until_closed)  # noqa: B010
