"""The RPC app in-process, over a real node core on a copy of the base chain.

Requests go through ``httpx.ASGITransport`` into the FastAPI app under trio: the same
app, guards, core, LevelDB and indexes ``fcd`` serves, minus the socket (which
``test_rpc_server`` covers).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from chain.block import decode_block
from chain.params import MAINNET, REGTEST, TESTNET
from chain.producer import assemble_block
from chain.transaction import OutPoint, Transaction, TxOut, decode_transaction
from node.rpc import create_app
from tests.chainbuilder import (
    ALICE,
    BOB,
    SPACING,
    BaseChain,
    Spendable,
    flip_bit,
    key,
    pay,
)
from tests.exactwork import sample
from tests.rpcnode import (
    TOKEN,
    PeerBook,
    PeerInfo,
    PeerStats,
    RpcNode,
    copy_base,
    mine_base,
    open_node,
)
from wallet.address import encode_address

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Valid peer ids (base58 multihashes), to dial through the PeerBook.
DIAL_UP = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
DIAL_DOWN = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"
BOB_ADDRESS = encode_address(key(BOB), REGTEST)
ALICE_ADDRESS = encode_address(key(ALICE), REGTEST)

# Every endpoint, as (method, path, JSON body): all but /health need the token.
PROTECTED = [
    ("GET", "/node/info", None),
    ("GET", "/peers", None),
    ("GET", "/peers/banned", None),
    ("POST", "/peers/ban", {"peer_id": "x"}),
    ("POST", "/peers/unban", {"peer_id": "x"}),
    ("POST", "/peers/connect", {"addr": "/ip4/127.0.0.1/tcp/1"}),
    ("GET", "/chain/tip", None),
    ("GET", "/chain/block/0", None),
    ("GET", "/tx/" + "00" * 32, None),
    ("POST", "/tx", {"hex": "00"}),
    ("GET", "/mempool", None),
    ("GET", f"/address/{BOB_ADDRESS}/coins", None),
    ("GET", f"/address/{BOB_ADDRESS}/history", None),
    ("GET", f"/address/{BOB_ADDRESS}/unconfirmed", None),
    ("GET", "/fees/estimate", None),
    ("POST", "/generate", {"count": 1}),
    ("GET", "/metrics", None),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
    ("GET", "/no/such/path", None),
]


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseChain:
    return mine_base(tmp_path_factory.mktemp("rpc-base"))


@pytest.fixture
def node(base: BaseChain, tmp_path: Path) -> Iterator[RpcNode]:
    opened = open_node(copy_base(base, tmp_path / "node"))
    yield opened
    opened.close()


@asynccontextmanager
async def api(
    node: RpcNode, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(node.ctx))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://node", headers=AUTH if headers is None else headers
    ) as client:
        yield client


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    error: dict[str, Any] = body["error"]
    return error


def alice_pays(
    base: BaseChain, coin: int, to: bytes, amount: int, fee: int = 10_000
) -> Transaction:
    spend = base.alice[coin]
    return pay([spend], [TxOut(amount, to), TxOut(spend.amount - amount - fee, key(ALICE))])


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in metrics"
    return float(match.group(1))


# -- auth and guards -----------------------------------------------------------------------
@pytest.mark.anyio
async def test_health_is_open_and_every_other_endpoint_needs_the_token(node: RpcNode) -> None:
    wrong = "b" + TOKEN[1:]
    async with api(node, headers={}) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        for method, path, body in PROTECTED:
            for headers in (
                {},
                {"Authorization": f"Bearer {wrong}"},
                {"Authorization": f"Basic {TOKEN}"},
                {"Authorization": "Bearer"},
                {"Authorization": f"Bearer {TOKEN}x"},
            ):
                response = await client.request(method, path, json=body, headers=headers)
                error = error_of(response, 401)
                assert error["code"] == "unauthorized", (method, path)
                assert response.headers["www-authenticate"].startswith("Bearer")
        # The right token opens them (lowercase scheme too).
        response = await client.get("/chain/tip", headers={"Authorization": f"bearer {TOKEN}"})
        assert response.status_code == 200
    assert node.core.chainstate.height == 110  # no refused /generate produced anything


@pytest.mark.anyio
async def test_bodies_over_the_limit_are_refused_before_they_are_read(node: RpcNode) -> None:
    pulled = 0

    async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(count):
            pulled += 1
            yield b"x" * size

    async with api(node) as client:
        # Declared too large: refused from the header alone.
        response = await client.post(
            "/generate", content=b"{}" + b" " * 20_000, headers={"content-type": "application/json"}
        )
        assert error_of(response, 413)["code"] == "body-too-large"
        # Streamed without a length: refused once the limit is passed, the rest unread.
        response = await client.post("/tx", content=chunks(1_000, 10_000))
        assert error_of(response, 413)["code"] == "body-too-large"
        assert pulled <= 22  # 201 kB limit: 21 chunks pass it; 1,000 were on offer
        # A transaction-sized body is fine on /tx (and refused as a transaction).
        response = await client.post("/tx", json={"hex": "00" * 99_000})
        assert error_of(response, 422)["code"] == "decode-malformed"
        response = await client.post("/generate", content=b"x", headers={"content-length": "abc"})
        assert error_of(response, 400)["code"] == "bad-request"
    assert node.core.chainstate.height == 110


@pytest.mark.anyio
async def test_unknown_paths_methods_and_fields_are_json_errors(node: RpcNode) -> None:
    async with api(node) as client:
        assert error_of(await client.get("/nothing/here"), 404)["code"] == "not-found"
        assert error_of(await client.delete("/chain/tip"), 405)["code"] == "method-not-allowed"
        error = error_of(await client.post("/generate", json={"count": 1, "cuont": 2}), 400)
        assert error["code"] == "bad-request" and "cuont" in error["message"]
        error = error_of(
            await client.post(
                "/generate", content=b"{not json", headers={"content-type": "application/json"}
            ),
            400,
        )
        assert error["code"] == "bad-request"
        for count in (0, 1001, "many"):
            error = error_of(await client.post("/generate", json={"count": count}), 400)
            assert error["code"] == "bad-request" and "count" in error["message"]
        assert error_of(await client.get("/mempool?limit=-1"), 400)["code"] == "bad-request"
    assert node.core.chainstate.height == 110


# -- node and chain ---------------------------------------------------------------------------
@pytest.mark.anyio
async def test_node_info_and_chain_tip(node: RpcNode) -> None:
    tip = node.core.chainstate.tip
    async with api(node) as client:
        info = (await client.get("/node/info")).json()
        assert info["network"] == "regtest" and info["version"]
        assert (info["height"], info["tip"]) == (110, tip.hash.hex())
        assert info["mempool"] == {"count": 0, "bytes": 0}
        assert info["peer_id"] is None and info["peers"] is None and info["listen_addrs"] == []
        assert info["uptime_seconds"] >= 0
        chain_tip = (await client.get("/chain/tip")).json()
        assert chain_tip["height"] == 110 and chain_tip["hash"] == tip.hash.hex()
        assert chain_tip["time"] == tip.header.time
        assert chain_tip["target"] == "f" * 64
        assert int(chain_tip["chain_work"], 16) == tip.chain_work


@pytest.mark.anyio
async def test_blocks_by_height_and_hash(node: RpcNode, base: BaseChain) -> None:
    chain = node.core.chainstate
    async with api(node) as client:
        by_height = (await client.get("/chain/block/102")).json()
        assert by_height["hash"] == chain.active[102].hex()
        assert by_height["confirmations"] == 9 and by_height["in_active_chain"]
        assert by_height["next_hash"] == chain.active[103].hex()
        assert by_height["header"]["prev_hash"] == chain.active[101].hex()
        assert by_height["hex"] is None
        txs = by_height["transactions"]
        assert [t["kind"] for t in txs] == ["coinbase", "transfer"]
        assert txs[1]["txid"] == base.funding.txid.hex()
        assert len(txs[1]["outputs"]) == 301
        first = txs[1]["outputs"][0]
        assert first == {
            "n": 0,
            "amount": 10_000_000,
            "amount_fc": "0.10000000",
            "pubkey": key(ALICE).hex(),
            "address": ALICE_ADDRESS,
        }
        by_hash = (await client.get(f"/chain/block/{chain.active[102].hex()}?raw=true")).json()
        assert decode_block(bytes.fromhex(by_hash["hex"])).hash == chain.active[102]
        assert {k: v for k, v in by_hash.items() if k != "hex"} == {
            k: v for k, v in by_height.items() if k != "hex"
        }
        genesis = (await client.get("/chain/block/0")).json()
        assert genesis["header"]["prev_hash"] == "00" * 32 and genesis["confirmations"] == 111
        tip = (await client.get("/chain/block/110")).json()
        assert tip["next_hash"] is None and tip["confirmations"] == 1
        error = error_of(await client.get("/chain/block/111"), 404)
        assert error["code"] == "not-found" and "tip is 110" in error["message"]
        assert error_of(await client.get(f"/chain/block/{'ab' * 32}"), 404)["code"] == "not-found"
        assert error_of(await client.get("/chain/block/xyz"), 400)["code"] == "bad-request"
        assert error_of(await client.get(f"/chain/block/{'ab' * 31}"), 400)["code"] == "bad-request"


# -- transactions -------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_a_submitted_transaction_goes_from_mempool_to_block_to_history(
    node: RpcNode, base: BaseChain
) -> None:
    tx = alice_pays(base, 0, key(BOB), 3_000_000)
    txid = tx.txid.hex()
    async with api(node) as client:
        submitted = (await client.post("/tx", json={"hex": tx.encoded.hex()})).json()
        assert submitted == {
            "txid": txid,
            "orphan": False,
            "missing_parents": [],
            "accepted": [txid],
            "replaced": [],
        }
        pooled = (await client.get(f"/tx/{txid}?raw=1")).json()
        assert pooled["in_mempool"] and pooled["confirmations"] == 0
        assert (pooled["fee"], pooled["fee_fc"]) == (10_000, "0.00010000")
        assert decode_transaction(bytes.fromhex(pooled["hex"])) == tx
        pool = (await client.get("/mempool")).json()
        assert pool["txids"] == [txid] and pool["count"] == 1 and pool["bytes"] == tx.size
        coins = (await client.get(f"/address/{ALICE_ADDRESS}/coins")).json()
        spent = [c for c in coins["coins"] if c["spent_in_mempool"]]
        assert [(c["txid"], c["vout"], c["spent_in_mempool"]) for c in spent] == [
            (base.alice[0].outpoint.txid.hex(), 0, txid)
        ]
        again = error_of(await client.post("/tx", json={"hex": tx.encoded.hex()}), 422)
        assert again == {
            "code": "txn-already-in-mempool",
            "message": again["message"],
            "rule": "policy",
        }

        made = (await client.post("/generate", json={"count": 1})).json()
        assert made["height"] == 111 and len(made["hashes"]) == 1
        confirmed = (await client.get(f"/tx/{txid}")).json()
        assert not confirmed["in_mempool"]
        assert confirmed["block_hash"] == made["hashes"][0]
        assert (confirmed["block_height"], confirmed["position"], confirmed["confirmations"]) == (
            111,
            1,
            1,
        )
        assert confirmed["fee"] is None and confirmed["hex"] is None
        assert (await client.get("/mempool")).json()["txids"] == []

        history = (await client.get(f"/address/{BOB_ADDRESS}/history")).json()
        assert history["address"] == BOB_ADDRESS and history["next_cursor"] is None
        assert history["entries"] == [
            {
                "height": 111,
                "block_hash": made["hashes"][0],
                "txid": txid,
                "direction": "received",
                "index": 0,
                "amount": 3_000_000,
                "amount_fc": "0.03000000",
            }
        ]
        bob = (await client.get(f"/address/{BOB_ADDRESS}/coins")).json()
        assert (bob["total"], bob["total_fc"], bob["truncated"]) == (3_000_000, "0.03000000", False)
        assert bob["coins"][0]["confirmations"] == 1 and bob["coins"][0]["mature"]
        alice = (await client.get(f"/address/{ALICE_ADDRESS}/history?limit=2")).json()
        assert {(e["direction"], e["txid"]) for e in alice["entries"]} == {
            ("spent", txid),
            ("received", txid),
        }
        # A coinbase is immature until 100 blocks deep.
        producer = (await client.get(f"/address/{made['pay_to']}/coins")).json()
        assert [(c["height"], c["coinbase"], c["mature"]) for c in producer["coins"]] == [
            (111, True, False)
        ]
        # The coinbase is found through the index too.
        block = (await client.get(f"/chain/block/{made['hashes'][0]}")).json()
        coinbase = (await client.get(f"/tx/{block['transactions'][0]['txid']}")).json()
        assert coinbase["kind"] == "coinbase" and coinbase["position"] == 0


@pytest.mark.anyio
async def test_refused_transactions_carry_their_reject_code_and_change_nothing(
    node: RpcNode, base: BaseChain
) -> None:
    good = alice_pays(base, 1, key(BOB), 3_000_000)
    bad_signature = good.with_signatures([flip_bit(good.inputs[0].signature, 5)])
    immature = pay([base.coinbases[110]], [TxOut(10**9, key(BOB))])  # 1 block deep
    overspend = pay([base.alice[2]], [TxOut(base.alice[2].amount + 1, key(BOB))])
    cases = [
        (bad_signature, "bad-txns-sig-invalid", "consensus"),
        (immature, "bad-txns-premature-spend-of-coinbase", "consensus"),
        (overspend, "bad-txns-in-belowout", "consensus"),
        (alice_pays(base, 3, key(BOB), 100, fee=10_000), "dust", "policy"),
    ]
    async with api(node) as client:
        for tx, code, rule in cases:
            error = error_of(await client.post("/tx", json={"hex": tx.encoded.hex()}), 422)
            assert (error["code"], error["rule"]) == (code, rule)
            assert error["message"]
        garbage = error_of(await client.post("/tx", json={"hex": "c1c2"}), 422)
        assert (garbage["code"], garbage["rule"]) == ("decode-malformed", "consensus")
        not_hex = error_of(await client.post("/tx", json={"hex": "zz"}), 400)
        assert not_hex["code"] == "bad-request"
        assert (await client.get("/mempool")).json()["count"] == 0
        text = (await client.get("/metrics")).text
        assert metric(text, "fc_rejects_total", '{code="bad-txns-sig-invalid"}') == 1
        assert metric(text, "fc_rejects_total", '{code="dust"}') == 1
        assert metric(text, "fc_transactions_rejected_total") == 4
        # A transaction whose parent is unknown waits as an orphan.
        unknown = Spendable(OutPoint(b"\x77" * 32, 0), TxOut(10**8, key(ALICE)), ALICE)
        orphan = pay([unknown], [TxOut(10**8 - 10_000, key(BOB))])
        result = (await client.post("/tx", json={"hex": orphan.encoded.hex()})).json()
        assert result["orphan"] and result["missing_parents"] == ["77" * 32]
        assert result["accepted"] == []
        assert (await client.get("/mempool")).json()["orphans"] == 1


@pytest.mark.anyio
async def test_unconfirmed_view_and_fee_estimate_follow_the_mempool(
    node: RpcNode, base: BaseChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    tx = alice_pays(base, 0, key(BOB), 3_000_000)
    txid = tx.txid.hex()
    async with api(node) as client:
        assert (await client.get(f"/address/{BOB_ADDRESS}/unconfirmed")).json() == {
            "address": BOB_ADDRESS,
            "received": [],
            "spent": [],
        }
        estimate = (await client.get("/fees/estimate")).json()
        assert estimate == {
            "fee_rate": 1000,
            "min_fee_rate": 1000,
            "mempool_bytes": 0,
            "basis": "floor",
        }
        await client.post("/tx", json={"hex": tx.encoded.hex()})
        bob = (await client.get(f"/address/{BOB_ADDRESS}/unconfirmed")).json()
        assert bob["received"] == [
            {"txid": txid, "vout": 0, "amount": 3_000_000, "amount_fc": "0.03000000"}
        ]
        alice = (await client.get(f"/address/{ALICE_ADDRESS}/unconfirmed")).json()
        assert alice["spent"] == [
            {"txid": txid, "prev_txid": base.alice[0].outpoint.txid.hex(), "prev_vout": 0}
        ]
        assert [r["vout"] for r in alice["received"]] == [1]  # the change
        assert (await client.get("/fees/estimate")).json()["mempool_bytes"] == tx.size
        # A pool larger than a block: the estimate moves just above the cutoff's fee rate.
        monkeypatch.setattr("node.rpc.routes.MAX_BLOCK_SIZE", tx.size - 1)
        crowded = (await client.get("/fees/estimate")).json()
        assert crowded["basis"] == "next-block cutoff"
        assert crowded["fee_rate"] == -(-10_000 * 1000 // tx.size) + 1
        monkeypatch.undo()
        await client.post("/generate", json={"count": 1})
        assert (await client.get(f"/address/{BOB_ADDRESS}/unconfirmed")).json()["received"] == []
        bad = error_of(await client.get("/address/nonsense/unconfirmed"), 400)
        assert bad["code"] == "bad-address"


@pytest.mark.anyio
async def test_transaction_lookup_errors(node: RpcNode) -> None:
    async with api(node) as client:
        assert error_of(await client.get(f"/tx/{'12' * 32}"), 404)["code"] == "not-found"
        assert error_of(await client.get("/tx/12"), 400)["code"] == "bad-request"
        assert error_of(await client.get("/tx/" + "zz" * 32), 400)["code"] == "bad-request"


# -- addresses ---------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_address_history_pages_and_bad_addresses(node: RpcNode) -> None:
    async with api(node) as client:
        seen: list[tuple[str, int, str]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 64}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get(f"/address/{ALICE_ADDRESS}/history", params=params)).json()
            seen += [(e["txid"], e["index"], e["direction"]) for e in page["entries"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 300 == len(set(seen))
        bad_cursor = await client.get(f"/address/{ALICE_ADDRESS}/history?cursor=abcd")
        assert error_of(bad_cursor, 400)["code"] == "bad-request"
        limited = (await client.get(f"/address/{ALICE_ADDRESS}/coins?limit=10")).json()
        assert len(limited["coins"]) == 10 and limited["truncated"]
        assert limited["total"] == 10 * 10_000_000
        mainnet = encode_address(key(BOB), MAINNET)
        for address, words in [
            (mainnet, "mainnet address"),
            ("fcrt1qqqqqq", "checksum"),
            ("hello", "separator"),
            (BOB_ADDRESS[:-1] + ("q" if BOB_ADDRESS[-1] != "q" else "p"), "checksum"),
        ]:
            error = error_of(await client.get(f"/address/{address}/coins"), 400)
            assert error["code"] == "bad-address" and words in error["message"], error


# -- generate -------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_generate_pays_an_address_or_the_node_key(node: RpcNode) -> None:
    async with api(node) as client:
        to_bob = (await client.post("/generate", json={"count": 2, "pay_to": BOB_ADDRESS})).json()
        assert to_bob["pay_to"] == BOB_ADDRESS and to_bob["height"] == 112
        assert [node.core.chainstate.active[h].hex() for h in (111, 112)] == to_bob["hashes"]
        coins = (await client.get(f"/address/{BOB_ADDRESS}/coins")).json()
        assert coins["total"] == 2 * 50 * 10**8
        own = (await client.post("/generate", json={})).json()
        assert own["height"] == 113 and own["pay_to"] != BOB_ADDRESS
        error = error_of(
            await client.post("/generate", json={"pay_to": encode_address(key(BOB), TESTNET)}), 400
        )
        assert error["code"] == "bad-address"
    # The node's key survives a restart (kept in DATADIR/generate.key, mode 0600).
    assert (node.datadir / "generate.key").stat().st_mode & 0o777 == 0o600
    async with api(node) as client:
        again = (await client.post("/generate", json={})).json()
        assert again["pay_to"] == own["pay_to"]


@pytest.mark.anyio
async def test_generate_is_refused_off_regtest(tmp_path: Path) -> None:
    testnet = open_node(tmp_path / "testnet", TESTNET)
    try:
        async with api(testnet) as client:
            error = error_of(await client.post("/generate", json={"count": 1}), 403)
            assert error["code"] == "regtest-only" and "testnet" in error["message"]
            assert (await client.get("/node/info")).json()["network"] == "testnet"
        assert testnet.core.chainstate.height == 0
    finally:
        testnet.close()


# -- reorg through the API ---------------------------------------------------------------------
@pytest.mark.anyio
async def test_a_reorg_puts_transactions_back_in_the_mempool(
    node: RpcNode, base: BaseChain
) -> None:
    tx = alice_pays(base, 0, key(BOB), 3_000_000)
    chain = node.core.chainstate
    async with api(node) as client:
        await client.post("/tx", json={"hex": tx.encoded.hex()})
        made = (await client.post("/generate", json={"count": 1})).json()["hashes"][0]
        assert (await client.get(f"/tx/{tx.txid.hex()}")).json()["block_hash"] == made
        parent = chain.parent_info(chain.active[110])
        for _ in range(2):  # a heavier branch from 110 without the payment
            block = assemble_block(REGTEST, parent, BOB, [], parent.time + SPACING, sampler=sample)
            assert (await node.core.submit_block(block)).accepted
            parent = chain.parent_info(block.hash)
        assert chain.height == 112
        back = (await client.get(f"/tx/{tx.txid.hex()}")).json()
        assert back["in_mempool"] and back["block_hash"] is None
        history = (await client.get(f"/address/{BOB_ADDRESS}/history")).json()
        assert [e["height"] for e in history["entries"]] == [112, 111]  # the branch's coinbases
        assert all(e["txid"] != tx.txid.hex() for e in history["entries"])
        stale = (await client.get(f"/chain/block/{made}")).json()
        assert not stale["in_active_chain"] and stale["confirmations"] == -1
        assert stale["next_hash"] is None and stale["height"] == 111


# -- peers ---------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_peers_bans_and_unbans_through_a_peer_book(base: BaseChain, tmp_path: Path) -> None:
    book = PeerBook(
        connected=[
            PeerInfo("12D3KooWPeerOne", "/ip4/127.0.0.1/tcp/4001", True, 110),
            PeerInfo("12D3KooWPeerTwo", "/ip4/127.0.0.1/tcp/4002", False, 109),
        ],
        stats=PeerStats(
            messages_in={"block": 3}, messages_out={"tx": 5}, disconnects={"banned": 1}
        ),
        unreachable={DIAL_DOWN},
    )
    with_peers = open_node(copy_base(base, tmp_path / "peers"), peers=book)
    try:
        async with api(with_peers) as client:
            info = (await client.get("/node/info")).json()
            assert info["peer_id"] == book.peer_id and info["listen_addrs"] == book.listen_addrs
            assert info["peers"] == 2
            peers = (await client.get("/peers")).json()["peers"]
            assert peers[0] == {
                "peer_id": "12D3KooWPeerOne",
                "addr": "/ip4/127.0.0.1/tcp/4001",
                "inbound": True,
                "best_height": 110,
                "nonce": "0102",
            }
            banned = (
                await client.post("/peers/ban", json={"peer_id": "12D3KooWPeerTwo", "seconds": 600})
            ).json()
            assert banned == {"peer_id": "12D3KooWPeerTwo", "seconds": 600}
            listed = (await client.get("/peers/banned")).json()["banned"]
            assert [b["peer_id"] for b in listed] == ["12D3KooWPeerTwo"]
            assert len((await client.get("/peers")).json()["peers"]) == 1
            text = (await client.get("/metrics")).text
            assert metric(text, "fc_peers") == 1 and metric(text, "fc_banned_peers") == 1
            assert metric(text, "fc_p2p_messages_total", '{direction="in",type="block"}') == 3
            assert metric(text, "fc_p2p_messages_total", '{direction="out",type="tx"}') == 5
            assert (await client.post("/peers/unban", json={"peer_id": "12D3KooWPeerTwo"})).json()[
                "unbanned"
            ]
            assert not (
                await client.post("/peers/unban", json={"peer_id": "12D3KooWPeerTwo"})
            ).json()["unbanned"]
            assert (await client.get("/peers/banned")).json()["banned"] == []
            bad = await client.post("/peers/ban", json={"peer_id": "p", "seconds": 0})
            assert error_of(bad, 400)["code"] == "bad-request"
            assert metric(text, "fc_p2p_disconnects_total", '{kind="banned"}') == 1
            assert metric(text, "fc_p2p_discouragements_total") == 0
            up = f"/ip4/127.0.0.1/tcp/4003/p2p/{DIAL_UP}"
            assert (await client.post("/peers/connect", json={"addr": up})).json() == {"addr": up}
            assert DIAL_UP in {p["peer_id"] for p in (await client.get("/peers")).json()["peers"]}
            down = f"/ip4/127.0.0.1/tcp/4004/p2p/{DIAL_DOWN}"
            failed = error_of(await client.post("/peers/connect", json={"addr": down}), 502)
            assert failed["code"] == "connect-failed" and "cannot reach" in failed["message"]
            for bad in (
                "/ip4/127.0.0.1/tcp/1",
                "not an address",
                f"/ip4/1.2.3/tcp/1/p2p/{DIAL_UP}",
            ):
                error = error_of(await client.post("/peers/connect", json={"addr": bad}), 400)
                assert error["code"] == "bad-request" and "peer address" in error["message"]
    finally:
        with_peers.close()


@pytest.mark.anyio
async def test_without_p2p_there_are_no_peers_and_no_bans(node: RpcNode) -> None:
    async with api(node) as client:
        assert (await client.get("/peers")).json() == {"peers": []}
        for method, path, body in [
            ("POST", "/peers/ban", {"peer_id": "x"}),
            ("POST", "/peers/unban", {"peer_id": "x"}),
            ("GET", "/peers/banned", None),
            ("POST", "/peers/connect", {"addr": "/ip4/127.0.0.1/tcp/1"}),
        ]:
            error = error_of(await client.request(method, path, json=body), 503)
            assert error["code"] == "p2p-disabled"
        assert "fc_peers" not in (await client.get("/metrics")).text


# -- metrics and docs ----------------------------------------------------------------------------
@pytest.mark.anyio
async def test_metrics_follow_the_node(node: RpcNode, base: BaseChain) -> None:
    async with api(node) as client:
        response = await client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert metric(text, "fc_chain_height") == 110
        assert metric(text, "fc_mempool_transactions") == 0
        tx = alice_pays(base, 0, key(BOB), 3_000_000)
        await client.post("/tx", json={"hex": tx.encoded.hex()})
        text = (await client.get("/metrics")).text
        assert metric(text, "fc_mempool_transactions") == 1
        assert metric(text, "fc_mempool_bytes") == tx.size
        assert metric(text, "fc_transactions_accepted_total") == 1
        await client.post("/generate", json={"count": 3})
        text = (await client.get("/metrics")).text
        assert metric(text, "fc_chain_height") == 113
        assert metric(text, "fc_blocks_accepted_total") == 3
        assert metric(text, "fc_validation_seconds_total") > 0
        assert metric(text, "fc_index_height") == -1  # nothing indexed yet: no follower
        async with trio.open_nursery() as nursery:  # as serve_rpc runs it beside the server
            await nursery.start(node.indexes.run)
            with trio.fail_after(20):
                while metric((await client.get("/metrics")).text, "fc_index_height") != 113:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    # Each app has its own registry: a second app over the same node builds without clashing.
    async with api(node) as client:
        assert metric((await client.get("/metrics")).text, "fc_chain_height") == 113


@pytest.mark.anyio
async def test_openapi_documents_every_endpoint_and_the_bearer_scheme(node: RpcNode) -> None:
    async with api(node) as client:
        schema = (await client.get("/openapi.json")).json()
        assert schema["components"]["securitySchemes"]["cookie"]["scheme"] == "bearer"
        assert schema["security"] == [{"cookie": []}]
        assert schema["paths"]["/health"]["get"]["security"] == []
        documented = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
        for method, path, _ in PROTECTED[:-3]:
            template = re.sub(r"/chain/block/.*", "/chain/block/{block_id}", path)
            template = re.sub(r"/tx/[0-9a-f]{64}", "/tx/{txid}", template)
            template = re.sub(r"/address/[^/]+/", "/address/{address}/", template)
            assert (method, template) in documented, (method, template)
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()


class ListenOnly:
    """A p2p side that lists and bans but cannot dial on request."""

    def __init__(self) -> None:
        self.peer_id = "12D3KooWListenOnly"
        self.listen_addrs: list[str] = []

    def peers(self) -> list[Any]:
        return []

    def ban(self, peer_id: str, seconds: int) -> None:
        pass

    def unban(self, peer_id: str) -> bool:
        return False

    def banned(self) -> dict[str, int]:
        return {}


@pytest.mark.anyio
async def test_dialling_needs_a_service_that_can_dial(base: BaseChain, tmp_path: Path) -> None:
    listening = open_node(copy_base(base, tmp_path / "listen"), peers=ListenOnly())
    try:
        async with api(listening) as client:
            addr = f"/ip4/127.0.0.1/tcp/4003/p2p/{DIAL_UP}"
            error = error_of(await client.post("/peers/connect", json={"addr": addr}), 501)
            assert error["code"] == "not-supported"
            assert "fc_p2p_" not in (await client.get("/metrics")).text  # no stats to export
    finally:
        listening.close()


class BrokenPeers(ListenOnly):
    def peers(self) -> list[Any]:
        raise RuntimeError("the p2p service is in a bad way")


@pytest.mark.anyio
async def test_an_unexpected_failure_is_a_json_500_and_the_app_goes_on(
    base: BaseChain, tmp_path: Path
) -> None:
    broken = open_node(copy_base(base, tmp_path / "broken"), peers=BrokenPeers())
    try:
        # Starlette re-raises after answering (for the server to log); take the answer.
        transport = httpx.ASGITransport(app=create_app(broken.ctx), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://n", headers=AUTH) as c:
            error = error_of(await c.get("/peers"), 500)
            assert error == {"code": "internal-error", "message": "internal error: RuntimeError"}
            assert (await c.get("/chain/tip")).status_code == 200
    finally:
        broken.close()
