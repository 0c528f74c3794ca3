"""``node.mining.Miner`` against a real ``NodeCore`` on regtest with the tiny lottery model.

Every block here is won by real draws of the regtest model (``tests.exactwork``) and
validated by the core, which re-executes the draw. The targets are easy (2 or 3 draws a
block on average) so a test mines in seconds. Where a test must watch the miner *not*
win for a while (to see it rebuild its template on a new tip or a new transaction), its
sampler is :class:`Holdable`: the real draws, except that while ``holding`` a winning
draw's tokens are swapped for tokens that miss the target, so nothing is ever submitted
until the test lets go.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
import trio

from chain.block import Block, decode_block
from chain.difficulty import block_work
from chain.lottery import TOKEN_BYTES, DrawTask, pow_value
from chain.params import ChainParams, block_subsidy, regtest_with
from chain.producer import sign_transaction
from chain.schnorr import pubkey_of
from chain.transaction import NO_SIGNATURE, OutPoint, Transaction, TxIn, TxKind, TxOut
from node.core import NodeCore
from node.indexes import ChainIndexes
from node.mining import (
    MINER_KEY_FILE,
    Miner,
    MinerKeyError,
    load_or_create_miner_key,
)
from node.rpc import RpcContext, create_app
from tests import exactwork

TOKEN = "c" * 64
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT = 120  # seconds for anything a test waits on (two busy cores, draws of ~50 ms)


def secret_for(name: str) -> bytes:
    return hashlib.sha256(b"fc-test-key/" + name.encode()).digest()


MINER = secret_for("miner")
PAYEE = pubkey_of(secret_for("payee"))
OTHER = secret_for("other producer")


def open_core(datadir: Path, params: ChainParams) -> NodeCore:
    datadir.mkdir(parents=True, exist_ok=True)
    return NodeCore(datadir, params, lottery=exactwork.tiny_lottery())


def block_at(core: NodeCore, height: int) -> Block:
    block_hash = core.chainstate.block_hash_at(height)
    assert block_hash is not None
    data = core.chainstate.get_block_bytes(block_hash)
    assert data is not None
    return decode_block(data)


async def wait_until(predicate: Callable[[], object], what: str) -> None:
    with trio.fail_after(TIMEOUT):
        while not predicate():
            await trio.sleep(0.02)
    assert predicate(), what


class Holdable:
    """The real sampler; while ``holding``, every draw misses ``target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.holding = True
        self.batches = 0
        self.seeds: list[bytes] = []

    def __call__(self, tasks: Sequence[DrawTask]) -> list[bytes]:
        results = exactwork.sample(tasks)
        self.batches += 1
        self.seeds.extend(task.seed for task in tasks)
        if self.holding:
            results = [
                self._miss(task.seed, tokens) for task, tokens in zip(tasks, results, strict=True)
            ]
        return results

    def _miss(self, seed: bytes, tokens: bytes) -> bytes:
        n = 0
        while pow_value(seed, tokens) <= self.target:
            tokens = n.to_bytes(TOKEN_BYTES, "big") * (len(tokens) // TOKEN_BYTES)
            n += 1
        return tokens


async def mining_info(core: NodeCore, miner: Miner | None) -> dict[str, object]:
    """``GET /mining/info`` through the node's RPC app (in-process, with the token)."""
    ctx = RpcContext(core=core, peers=None, token=TOKEN, indexes=ChainIndexes(core), miner=miner)
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        refused = await client.get("/mining/info")
        assert refused.status_code == 401  # like every endpoint but /health
        schema = (await client.get("/openapi.json", headers=AUTH)).json()
        assert "get" in schema["paths"]["/mining/info"]
        response = await client.get("/mining/info", headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


# -- finding blocks ------------------------------------------------------------------------
def test_the_miner_finds_blocks_that_connect_and_validate_anywhere(tmp_path: Path) -> None:
    params = regtest_with(3)
    blocks: list[Block] = []

    async def run() -> None:
        core = open_core(tmp_path / "node", params)
        try:
            idle = await mining_info(core, None)
            assert idle["mining"] is False and idle["draws"] == 0 and idle["blocks_found"] == 0
            assert idle["height"] == 1 and idle["network_draws_per_block"] == 3
            assert idle["expected_seconds_per_block"] is None
            miner = Miner(core, exactwork.sample, MINER, pay_to=PAYEE, batch=4)
            async with trio.open_nursery() as nursery:
                await nursery.start(miner.run)
                await wait_until(lambda: core.chainstate.height >= 3, "three blocks")
                live = await mining_info(core, miner)
                nursery.cancel_scope.cancel()
            assert live["mining"] is True and live["device"] == "cpu" and live["batch"] == 4
            assert not miner.running
            assert miner.stats.errors == 0 and miner.stats.blocks_refused == 0

            height = core.chainstate.height
            blocks.extend(block_at(core, h) for h in range(1, height + 1))
            info = miner.info()
            # A single miner: every block on the chain is one it found, in order.
            assert info.blocks_found == height
            assert [(f.height, f.hash) for f in info.found] == [
                (b.header.height, b.hash) for b in blocks
            ]
            assert info.draws >= height and info.draws % 4 == 0  # whole batches
            assert info.draws_per_second > 0
            assert info.network_draws_per_block == block_work(params.block_target or 0) == 3
            assert info.expected_seconds_per_block == pytest.approx(3 / info.draws_per_second)
            for block in blocks:
                assert block.header.work.worker_key == pubkey_of(MINER)
                coinbase = block.transactions[0]
                assert [o.pubkey for o in coinbase.outputs] == [PAYEE]
                assert coinbase.outputs[0].amount == block_subsidy(block.header.height, params)

            body = await mining_info(core, miner)
            assert body["mining"] is False  # stopped; the counters stay
            assert body["blocks_found"] == height and body["draws"] == info.draws
            assert body["found"] == [
                {"height": b.header.height, "hash": b.hash.hex()} for b in blocks
            ]
            assert body["height"] == height + 1
            assert body["target"] == f"{params.block_target:064x}"
        finally:
            core.close()

        # Another node, from genesis, accepts every block: each draw re-executes.
        check = open_core(tmp_path / "check", params)
        try:
            outcomes = await check.submit_blocks(blocks)
            assert [o.error for o in outcomes] == [None] * len(blocks)
            assert check.chainstate.tip.hash == blocks[-1].hash
        finally:
            check.close()

    trio.run(run)


def test_a_miner_without_pay_to_pays_its_own_key(tmp_path: Path) -> None:
    async def run() -> None:
        core = open_core(tmp_path / "node", regtest_with(2))
        try:
            miner = Miner(core, exactwork.sample, MINER, batch=2)
            async with trio.open_nursery() as nursery:
                await nursery.start(miner.run)
                await wait_until(lambda: core.chainstate.height >= 1, "a block")
                nursery.cancel_scope.cancel()
            coinbase = block_at(core, 1).transactions[0]
            assert coinbase.outputs[0].pubkey == pubkey_of(MINER)
        finally:
            core.close()

    trio.run(run)


# -- keeping the template current ------------------------------------------------------------
def test_the_miner_moves_to_a_tip_someone_else_found(tmp_path: Path) -> None:
    params = regtest_with(2)

    async def run() -> None:
        core = open_core(tmp_path / "node", params)
        try:
            sampler = Holdable(params.block_target or 0)
            miner = Miner(core, sampler, MINER, batch=2)
            async with trio.open_nursery() as nursery:
                await nursery.start(miner.run)
                await wait_until(lambda: miner.stats.draws >= 4, "draws on genesis")
                template = miner.template
                assert template is not None and template.height == 1
                assert template.parent.hash == params.genesis_hash

                # Another producer's block arrives (through the same core, as from a peer).
                (theirs,) = await core.generate(1, OTHER)
                await wait_until(
                    lambda: miner.template is not None and miner.template.parent.hash == theirs,
                    "a template on the new tip",
                )
                assert miner.template is not None and miner.template.height == 2
                assert miner.stats.blocks_found == 0

                sampler.holding = False
                await wait_until(lambda: core.chainstate.height >= 2, "our block on theirs")
                nursery.cancel_scope.cancel()
            ours = block_at(core, 2)
            assert ours.header.prev_hash == theirs
            assert ours.header.work.worker_key == pubkey_of(MINER)
            assert miner.stats.found[0].height == 2
            assert miner.stats.blocks_refused == 0 and miner.stats.errors == 0
        finally:
            core.close()

    trio.run(run)


def test_the_miner_takes_in_a_new_transaction_and_its_fee(tmp_path: Path) -> None:
    # Coinbases mature after one block, so block 1's coinbase is spendable at once.
    params = dataclasses.replace(regtest_with(2), coinbase_maturity=1)
    producer = secret_for("producer")
    fee = 25_000

    async def run() -> None:
        core = open_core(tmp_path / "node", params)
        try:
            await core.generate(2, producer)
            coinbase = block_at(core, 1).transactions[0]
            spend = Transaction(
                1,
                TxKind.TRANSFER,
                (TxIn(OutPoint(coinbase.txid, 0), NO_SIGNATURE),),
                (TxOut(coinbase.outputs[0].amount - fee, PAYEE),),
                [],
            )
            tx = sign_transaction(spend, [producer], [coinbase.outputs[0]], params)

            sampler = Holdable(params.block_target or 0)
            miner = Miner(core, sampler, MINER, batch=2)
            async with trio.open_nursery() as nursery:
                await nursery.start(miner.run)
                await wait_until(lambda: miner.stats.draws >= 2, "draws on block 3")
                template = miner.template
                assert template is not None and len(template.transactions) == 1

                await core.submit_transaction(tx)
                await wait_until(
                    lambda: miner.template is not None and len(miner.template.transactions) == 2,
                    "a template with the transaction",
                )
                assert miner.template is not None
                assert miner.template.transactions[1].txid == tx.txid
                assert miner.template.fees == fee
                assert miner.template.parent.hash == template.parent.hash

                sampler.holding = False
                await wait_until(lambda: core.chainstate.height >= 3, "block 3")
                nursery.cancel_scope.cancel()
            block = block_at(core, 3)
            assert [t.txid for t in block.transactions[1:]] == [tx.txid]
            assert block.transactions[0].outputs[0].amount == block_subsidy(3, params) + fee
            assert len(core.mempool) == 0
        finally:
            core.close()

    trio.run(run)


def test_no_draw_is_made_twice_within_a_template(tmp_path: Path) -> None:
    params = regtest_with(2)
    sampler = Holdable(params.block_target or 0)

    async def run() -> None:
        core = open_core(tmp_path / "node", params)
        try:
            miner = Miner(core, sampler, MINER, batch=3)
            async with trio.open_nursery() as nursery:
                await nursery.start(miner.run)
                await wait_until(lambda: sampler.batches >= 4, "four batches")
                nursery.cancel_scope.cancel()
            assert miner.stats.templates == 1  # nothing changed: one template throughout
        finally:
            core.close()

    trio.run(run)
    # Counters go on from batch to batch (0..2, 3..5, ...), so every seed is new.
    assert len(sampler.seeds) == 3 * sampler.batches
    assert len(set(sampler.seeds)) == len(sampler.seeds)


# -- stopping ----------------------------------------------------------------------------------
def test_cancelling_waits_for_the_batch_in_flight(tmp_path: Path) -> None:
    params = regtest_with(2)
    started = threading.Event()
    finished = threading.Event()

    def slow(tasks: Sequence[DrawTask]) -> list[bytes]:
        started.set()
        time.sleep(0.5)  # long enough for the cancel to land mid-batch
        results = holdable(tasks)
        finished.set()
        return results

    holdable = Holdable(params.block_target or 0)

    async def run() -> None:
        core = open_core(tmp_path / "node", params)
        try:
            miner = Miner(core, slow, MINER, batch=2)
            async with trio.open_nursery() as nursery:
                await nursery.start(miner.run)
                assert miner.running
                await wait_until(started.is_set, "a batch to start")
                assert not finished.is_set()
                nursery.cancel_scope.cancel()
            # run() returned only after the worker thread finished its batch.
            assert finished.is_set()
            assert not miner.running
            assert miner.info().mining is False
            assert core.chainstate.height == 0
            # Its event subscription is closed: publishing to it removes it, no error.
            await core.generate(1, OTHER)
            assert core.chainstate.height == 1
        finally:
            core.close()

    trio.run(run)


# -- the miner key --------------------------------------------------------------------------------
def test_the_miner_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / MINER_KEY_FILE
    secret = load_or_create_miner_key(path)
    assert len(secret) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes() == secret
    assert load_or_create_miner_key(path) == secret
    assert not path.with_name(path.name + ".tmp").exists()


def test_a_damaged_miner_key_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / MINER_KEY_FILE
    path.write_bytes(b"short")
    with pytest.raises(MinerKeyError) as caught:
        load_or_create_miner_key(path)
    message = str(caught.value)
    assert "\n" not in message and "5 bytes" in message and str(path) in message
    assert path.read_bytes() == b"short"  # never overwritten


def test_a_batch_is_at_least_one_draw(tmp_path: Path) -> None:
    core = open_core(tmp_path / "node", regtest_with(2))
    try:
        with pytest.raises(ValueError):
            Miner(core, exactwork.sample, MINER, batch=0)
    finally:
        core.close()
