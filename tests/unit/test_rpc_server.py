"""``serve_rpc`` over a real socket: port 0, the token on the wire, the follower, shutdown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from node.rpc import create_app, serve_rpc
from tests.chainbuilder import BOB, BaseChain, key
from tests.rpcnode import TOKEN, RpcNode, copy_base, mine_base, open_node
from wallet.address import encode_address

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseChain:
    return mine_base(tmp_path_factory.mktemp("server-base"))


@pytest.fixture
def node(base: BaseChain, tmp_path: Path) -> Iterator[RpcNode]:
    opened = open_node(copy_base(base, tmp_path / "node"))
    yield opened
    opened.close()


@pytest.mark.anyio
async def test_serves_on_the_port_it_reports_and_stops_when_cancelled(node: RpcNode) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_rpc, create_app(node.ctx), "127.0.0.1", 0)
        assert port > 0
        # The index follower started with the server and caught up before it listened.
        assert node.indexes.synced
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            refused = await client.get("/node/info")
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            info = (await client.get("/node/info", headers=AUTH)).json()
            assert info["height"] == 110 and info["index_height"] == 110
            bob = encode_address(key(BOB), node.core.params)
            made = await client.post("/generate", json={"count": 3, "pay_to": bob}, headers=AUTH)
            assert made.json()["height"] == 113
            # The follower moves the index on its own (no query asked it to catch up).
            with trio.fail_after(20):
                while node.indexes.height != 113:
                    await trio.sleep(0.01)
            too_big = await client.post(
                "/generate",
                content=b" " * 100_000,
                headers={**AUTH, "content-type": "application/json"},
            )
            assert too_big.status_code == 413
            assert too_big.json()["error"]["code"] == "body-too-large"
        nursery.cancel_scope.cancel()
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)
    assert node.core.chainstate.height == 113
