"""What the RPC reads from paths, queries and headers, and the formats it publishes.

A block id is ASCII decimal digits (a height) or 64 hex digits (a hash), nothing else:
Python's ``int()`` and ``bytes.fromhex()`` take Unicode digits, signs, ``_`` separators
and whitespace, none of which may pass. A 405 keeps its ``Allow`` header. The OpenAPI
document gives hashes, signatures, raw hex, targets and addresses their patterns.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.params import MAINNET, REGTEST, TESTNET
from node.rpc import create_app
from node.rpc import schemas as rpc_schemas
from tests.chainbuilder import ALICE, BOB, BaseChain, key
from tests.rpcnode import TOKEN, RpcNode, copy_base, mine_base, open_node
from wallet.address import encode_address

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALICE_ADDRESS = encode_address(key(ALICE), REGTEST)


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseChain:
    return mine_base(tmp_path_factory.mktemp("rpc-inputs-base"))


@pytest.fixture
def node(base: BaseChain, tmp_path: Path) -> Iterator[RpcNode]:
    opened = open_node(copy_base(base, tmp_path / "node"))
    yield opened
    opened.close()


@asynccontextmanager
async def api(node: RpcNode) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(node.ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://node", headers=AUTH) as c:
        yield c


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.anyio
async def test_block_ids_are_ascii_heights_or_hex_hashes(node: RpcNode) -> None:
    async with api(node) as client:
        one = (await client.get("/chain/block/1")).json()
        assert one["height"] == 1
        assert (await client.get("/chain/block/001")).json()["hash"] == one["hash"]
        by_hash = (await client.get(f"/chain/block/{one['hash']}")).json()
        assert by_hash["height"] == 1
        assert (await client.get(f"/chain/block/{one['hash'].upper()}")).json()["height"] == 1
        error = error_of(await client.get("/chain/block/4294967295"), 404)
        assert error["code"] == "not-found"
        for block_id in [
            "²",  # superscript two: str.isdigit() is true, int() refuses: was a 500
            "١",  # Arabic-Indic one: int() reads 1
            "١٠",
            "１",  # fullwidth one
            "+1",
            "-1",
            " 1",
            "1 ",
            "1_0",
            "0x1",
            "1.0",
            "4294967296",  # over a uint32
            "12345678901",
            "f" * 63,
            "f" * 65,
            "g" * 64,
            " " + one["hash"][1:],
            one["hash"][:32] + " " + one["hash"][33:],
        ]:
            response = await client.get(f"/chain/block/{block_id}")
            error = error_of(response, 400)
            assert error["code"] == "bad-request", block_id
            assert "block id must be a height" in error["message"], error


@pytest.mark.anyio
async def test_txids_cursors_limits_and_lengths_refuse_what_int_and_fromhex_allow(
    node: RpcNode,
) -> None:
    async with api(node) as client:
        txid = (await client.get("/chain/block/1")).json()["transactions"][0]["txid"]
        assert (await client.get(f"/tx/{txid.upper()}")).json()["txid"] == txid
        for bad in [txid[:2] + " " + txid[3:], " " + txid[1:], "١" * 64]:
            error = error_of(await client.get(f"/tx/{bad}"), 400)
            assert error["code"] == "bad-request" and "64 hex digits" in error["message"]
        page = (await client.get(f"/address/{ALICE_ADDRESS}/history?limit=1")).json()
        cursor = page["next_cursor"]
        assert re.fullmatch("[0-9a-f]{26}", cursor)
        ok = await client.get(f"/address/{ALICE_ADDRESS}/history", params={"cursor": cursor})
        assert ok.status_code == 200
        spaced = cursor[:2] + " " + cursor[3:]
        bad_cursor = await client.get(
            f"/address/{ALICE_ADDRESS}/history", params={"cursor": spaced}
        )
        assert error_of(bad_cursor, 400)["code"] == "bad-request"
        for limit in ["1_0", "+1", " 1", "١", "²", "1.0"]:
            for path in ["/mempool", f"/address/{ALICE_ADDRESS}/coins"]:
                response = await client.get(path, params={"limit": limit})
                assert error_of(response, 400)["code"] == "bad-request", (path, limit)
        assert (await client.get("/mempool", params={"limit": "5"})).status_code == 200
        # A Content-Length int() would read is still not a number.
        for length in ["+1", " 1", "1_0"]:
            response = await client.post(
                "/generate", content=b"x", headers={"content-length": length}
            )
            assert error_of(response, 400)["code"] == "bad-request", length
        # Raw hex is pairs of hex digits: no whitespace that bytes.fromhex would skip.
        response = await client.post("/tx", json={"hex": "00 11"})
        assert error_of(response, 400)["code"] == "bad-request"
    assert node.core.chainstate.height == 110


@pytest.mark.anyio
async def test_method_not_allowed_keeps_the_allow_header(node: RpcNode) -> None:
    async with api(node) as client:
        response = await client.delete("/chain/tip")
        assert error_of(response, 405)["code"] == "method-not-allowed"
        assert response.headers["allow"] == "GET"
        response = await client.get("/generate")
        assert error_of(response, 405)["code"] == "method-not-allowed"
        assert response.headers["allow"] == "POST"


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A schema with ``$ref`` followed and ``anyOf [X, null]`` reduced to X."""
    while True:
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in node:
            node = next(s for s in node["anyOf"] if s.get("type") != "null")
        else:
            return node


def _field(schema: dict[str, Any], model: str, name: str) -> dict[str, Any]:
    props = schema["components"]["schemas"][model]["properties"]
    field = _resolve(schema, props[name])
    if field.get("type") == "array":
        field = _resolve(schema, field["items"])
    return field


def _param(schema: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    for param in schema["paths"][path]["get"]["parameters"]:
        if param["name"] == name:
            return _resolve(schema, param["schema"])
    raise AssertionError(f"{path} has no parameter {name}")


@pytest.mark.anyio
async def test_openapi_gives_hashes_hex_and_addresses_their_patterns(node: RpcNode) -> None:
    async with api(node) as client:
        schema = (await client.get("/openapi.json")).json()
    hash64 = {"pattern": "^[0-9a-f]{64}$", "minLength": 64, "maxLength": 64}
    for model, name in [
        ("ChainTip", "hash"),
        ("ChainTip", "target"),
        ("BlockView", "hash"),
        ("BlockView", "next_hash"),
        ("Header", "prev_hash"),
        ("Header", "merkle_root"),
        ("Header", "benefit_root"),
        ("Header", "target"),
        ("Work", "worker_key"),
        ("TxView", "txid"),
        ("TxView", "wtxid"),
        ("TxInput", "txid"),
        ("TxOutput", "pubkey"),
        ("TxInfo", "block_hash"),
        ("SubmitResult", "txid"),
        ("SubmitResult", "accepted"),
        ("MempoolView", "txids"),
        ("AddressCoinView", "spent_in_mempool"),
        ("HistoryEntryView", "block_hash"),
        ("GenerateResult", "hashes"),
        ("FoundBlockView", "hash"),
        ("MiningInfo", "target"),
        ("NodeInfo", "tip"),
    ]:
        field = _field(schema, model, name)
        assert {k: field.get(k) for k in hash64} == hash64, (model, name, field)
    for model, name in [("TxInput", "signature"), ("Header", "producer_sig")]:
        assert _field(schema, model, name)["pattern"] == "^[0-9a-f]{128}$"
    for model in ("BlockView", "TxInfo"):
        assert _field(schema, model, "hex")["pattern"] == "^([0-9a-f]{2})*$"
    assert _field(schema, "SubmitTxRequest", "hex")["pattern"] == "^([0-9a-fA-F]{2})*$"
    for model, name in [
        ("TxOutput", "address"),
        ("AddressCoins", "address"),
        ("AddressHistory", "address"),
        ("AddressUnconfirmed", "address"),
        ("GenerateResult", "pay_to"),
    ]:
        pattern = _field(schema, model, name)["pattern"]
        for params in (MAINNET, TESTNET, REGTEST):
            assert re.fullmatch(pattern, encode_address(key(BOB), params)), (model, params.hrp)
        assert not re.fullmatch(pattern, "bc1" + encode_address(key(BOB), MAINNET)[3:])
        assert not re.fullmatch(pattern, encode_address(key(BOB), REGTEST).upper())
    pay_to = _field(schema, "GenerateRequest", "pay_to")["pattern"]
    assert re.fullmatch(pay_to, encode_address(key(BOB), REGTEST).upper())
    block_id = _param(schema, "/chain/block/{block_id}", "block_id")["pattern"]
    for good in ["0", "4294967295", "ab" * 32, "AB" * 32]:
        assert re.fullmatch(block_id, good), good
    for bad in ["²", "١", "+1", "12345678901", "ab" * 31]:
        assert not re.fullmatch(block_id, bad), bad
    assert _param(schema, "/tx/{txid}", "txid")["pattern"] == "^[0-9a-fA-F]{64}$"
    address = _param(schema, "/address/{address}/coins", "address")["pattern"]
    assert re.fullmatch(address, ALICE_ADDRESS)
    # The patterns are the ones the code defines once.
    assert _field(schema, "TxOutput", "address")["pattern"] == rpc_schemas.ADDRESS


@pytest.mark.anyio
async def test_responses_match_their_published_patterns(node: RpcNode) -> None:
    hex64 = re.compile("[0-9a-f]{64}")
    async with api(node) as client:
        made = (await client.post("/generate", json={"count": 1})).json()
        block = (await client.get(f"/chain/block/{made['hashes'][0]}?raw=true")).json()
        tip = (await client.get("/chain/tip")).json()
        info = (await client.get("/mining/info")).json()
    assert all(hex64.fullmatch(h) for h in made["hashes"])
    assert re.fullmatch(rpc_schemas.ADDRESS, made["pay_to"])
    assert hex64.fullmatch(tip["hash"]) and hex64.fullmatch(tip["target"])
    assert hex64.fullmatch(info["target"])
    header = block["header"]
    assert re.fullmatch("[0-9a-f]{128}", header["producer_sig"])
    assert re.fullmatch("([0-9a-f]{2})*", block["hex"])
    for tx in block["transactions"]:
        for out in tx["outputs"]:
            assert re.fullmatch(rpc_schemas.ADDRESS, out["address"])
