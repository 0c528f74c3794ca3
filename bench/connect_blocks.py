"""How fast does the LevelDB chainstate connect full blocks, against in-memory validation?

Setup (untimed, nothing left behind: the database lives in a temporary directory):
a regtest chain of 103 coinbase-only blocks and one fan-out block turning four mature
coinbases into ``2 × txs`` coins, then ``--blocks`` measured blocks of ``--txs``
signed transfers each, 2 inputs and 2 outputs apiece; every measured block spends all
the outputs of the block before it. Signing runs in two processes. Every block wins an
exact draw of regtest's lottery model (the tiny integer model, 8 tokens: ~20 ms to
draw, ~8 ms to check), derived the first time into a store kept between runs
(``$FC_BENCH_STORE``, default ``$TMPDIR/fc-bench-store-<uid>``).

Measured, each over the same blocks decoded afresh from their bytes (decoding untimed):

* **chainstate**: ``Chainstate.accept_block`` into a fresh LevelDB chainstate holding
  the prefix: context-free checks, header rules, storing the block, best-chain
  selection, re-executing the block's draw, ``connect_block`` over the database and
  one synced batch per block;
* **baseline**: the same validation with no storage: ``check_block``,
  ``check_block_work`` (the draw) and ``connect_block`` over a ``MemoryCoins`` set,
  applying each block's changes.

The issue's figure is 1000 blocks of 2000 transactions (2,000,000 transactions, an hour
of signing and validating on two cores); the default measures fewer blocks of the same
size and says so. The last line is ``ratio <chainstate time / baseline time>``.

Run: ``.venv/bin/python bench/connect_blocks.py [--blocks N] [--txs T]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from coincurve import PrivateKey

from chain.block import Block, decode_block
from chain.chainstate import Chainstate
from chain.checks import check_block
from chain.coins import CoinsOverlay, MemoryCoins
from chain.contextual import ParentInfo, check_block_work, connect_block
from chain.params import REGTEST
from chain.producer import assemble_block
from chain.schnorr import pubkey_of
from chain.sighash import sighashes
from chain.transaction import NO_SIGNATURE, OutPoint, Transaction, TxIn, TxKind, TxOut

PARAMS = REGTEST
KEYS = 64  # distinct signing keys, used round-robin
FEE = 100
FANOUT = 1000  # outputs per fan-out transaction (keeps it under the 100 kB limit)
ISSUE_BLOCKS, ISSUE_TXS = 1000, 2000
AUX = b"\x00" * 32
STORE = Path(
    os.environ.get("FC_BENCH_STORE")
    or Path(tempfile.gettempdir()) / f"fc-bench-store-{os.getuid()}"
)


def regtest_lottery() -> Any:
    """Regtest's lottery model (``workloads.lottery.ExactLottery``), loaded once per
    process from ``STORE`` (derived there the first time, ~5 s)."""
    from workloads.lottery import shared_lottery

    return shared_lottery(PARAMS, STORE)


def _secret(n: int) -> bytes:
    return hashlib.sha256(b"connect-bench-key-%d" % n).digest()


SECRETS = [_secret(n) for n in range(KEYS)]
PUBKEYS = [pubkey_of(s) for s in SECRETS]
_signers: list[PrivateKey] = []


def _sign_chunk(jobs: Sequence[tuple[int, bytes]]) -> list[bytes]:
    """Worker: BIP340-sign ``(key index, message)`` pairs (same bytes as chain.schnorr.sign)."""
    if not _signers:
        _signers.extend(PrivateKey(s) for s in SECRETS)
    return [bytes(_signers[k].sign_schnorr(msg, AUX)) for k, msg in jobs]


class Builder:
    """Builds the chain block by block, keeping only each block's bytes."""

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self.pool = pool
        genesis = PARAMS.genesis
        self.parent = ParentInfo(genesis.hash, 0, genesis.header.time, genesis.header.time)
        self.encoded: list[bytes] = []

    def add(self, txs: Sequence[Transaction], fees: int = 0, producer: int = 0) -> Block:
        block = assemble_block(
            PARAMS,
            self.parent,
            SECRETS[producer],
            txs,
            self.parent.time + 1,
            fees=fees,
            sampler=regtest_lottery().sample,
        )
        # Regtest has no retargeting and strictly rising times, so the parent's own time
        # stands in for its median time past (assemble_block only reads time and height).
        self.parent = ParentInfo(block.hash, block.header.height, block.header.time, 0)
        self.encoded.append(block.encoded)
        return block

    def sign(
        self, unsigned: list[Transaction], spent: list[list[tuple[int, TxOut]]]
    ) -> list[Transaction]:
        """Sign every input of ``unsigned``; ``spent[i]`` lists (key, coin) per input."""
        jobs: list[tuple[int, bytes]] = []
        for tx, coins in zip(unsigned, spent, strict=True):
            messages = sighashes(tx, [c for _, c in coins], PARAMS.magic)
            jobs.extend((k, m) for (k, _), m in zip(coins, messages, strict=True))
        size = -(-len(jobs) // 8)
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        sigs = [s for chunk in self.pool.map(_sign_chunk, chunks) for s in chunk]
        signed, cursor = [], 0
        for tx in unsigned:
            n = len(tx.inputs)
            signed.append(tx.with_signatures(sigs[cursor : cursor + n]))
            cursor += n
        return signed


def build(n_blocks: int, n_txs: int) -> tuple[list[bytes], list[bytes]]:
    """The prefix's and the measured blocks' bytes."""
    with ProcessPoolExecutor(2) as pool:
        b = Builder(pool)
        coinbases = [b.add([], producer=n % KEYS) for n in range(PARAMS.coinbase_maturity + 3)]
        # Fan-out: the first four coinbases (mature now) become 2 × n_txs coins.
        need = 2 * n_txs
        unsigned, spent = [], []
        for n in range(-(-need // FANOUT)):
            source = coinbases[n].transactions[0]
            count = min(FANOUT, need - n * FANOUT)
            amount = (source.outputs[0].amount - FEE) // count
            outs = tuple(TxOut(amount, PUBKEYS[(n * FANOUT + i) % KEYS]) for i in range(count))
            unsigned.append(
                Transaction(
                    1, TxKind.TRANSFER, (TxIn(OutPoint(source.txid, 0), NO_SIGNATURE),), outs, []
                )
            )
            spent.append([(n % KEYS, source.outputs[0])])
        fanout = b.sign(unsigned, spent)
        fees = sum(c.amount for s in spent for _, c in s) - sum(
            o.amount for tx in fanout for o in tx.outputs
        )
        b.add(fanout, fees)
        coins = [
            (OutPoint(tx.txid, i), (n * FANOUT + i) % KEYS, out)
            for n, tx in enumerate(fanout)
            for i, out in enumerate(tx.outputs)
        ]
        prefix = list(b.encoded)
        b.encoded.clear()
        for _ in range(n_blocks):
            unsigned, spent, outputs = [], [], []
            for j in range(n_txs):
                pair = coins[2 * j : 2 * j + 2]
                total = sum(c.amount for _, _, c in pair)
                pay = (total - FEE) // 2
                keys = ((j * 7 + 1) % KEYS, (j * 7 + 2) % KEYS)
                outs = (TxOut(pay, PUBKEYS[keys[0]]), TxOut(total - FEE - pay, PUBKEYS[keys[1]]))
                unsigned.append(
                    Transaction(
                        1,
                        TxKind.TRANSFER,
                        tuple(TxIn(op, NO_SIGNATURE) for op, _, _ in pair),
                        outs,
                        [],
                    )
                )
                spent.append([(k, c) for _, k, c in pair])
                outputs.append((keys, outs))
            txs = b.sign(unsigned, spent)
            b.add(txs, FEE * n_txs)
            # Next block: tx j spends output 1 of tx j and output 0 of tx j+1.
            made = [
                (OutPoint(tx.txid, i), keys[i], outs[i])
                for tx, (keys, outs) in zip(txs, outputs, strict=True)
                for i in range(2)
            ]
            coins = made[1:] + made[:1]
        return prefix, list(b.encoded)


def time_chainstate(prefix: list[bytes], blocks: list[bytes], path: str) -> float:
    cs = Chainstate(path, PARAMS, regtest_lottery().verify)
    now = PARAMS.genesis_time + 10**9
    try:
        for data in prefix:
            cs.accept_block(decode_block(data), now)
        elapsed = 0.0
        for data in blocks:
            block = decode_block(data)
            start = time.perf_counter()
            update = cs.accept_block(block, now)
            elapsed += time.perf_counter() - start
            assert len(update.connected) == 1, "every measured block extends the tip"
        assert cs.height == len(prefix) + len(blocks)
        return elapsed
    finally:
        cs.close()


def time_baseline(prefix: list[bytes], blocks: list[bytes]) -> float:
    coins = MemoryCoins()
    genesis = CoinsOverlay(coins)
    genesis.add_outputs(PARAMS.genesis.transactions[0], 0)
    coins.apply(genesis)
    for data in prefix:
        coins.apply(connect_block(decode_block(data), coins, PARAMS).overlay)
    jobs = [PARAMS.lottery.standing_job]
    verify = regtest_lottery().verify
    elapsed = 0.0
    for data in blocks:
        block = decode_block(data)
        start = time.perf_counter()
        check_block(block, PARAMS)
        check_block_work(block, PARAMS, jobs, verify)
        coins.apply(connect_block(block, coins, PARAMS).overlay)
        elapsed += time.perf_counter() - start
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument(
        "--blocks", type=int, default=100, help=f"measured blocks (issue: {ISSUE_BLOCKS})"
    )
    ap.add_argument(
        "--txs", type=int, default=2000, help=f"transfers per block (issue: {ISSUE_TXS})"
    )
    args = ap.parse_args()
    n_blocks, n_txs = args.blocks, args.txs
    n_tx_total, n_inputs = n_blocks * n_txs, 2 * n_blocks * n_txs

    start = time.perf_counter()
    prefix, blocks = build(n_blocks, n_txs)
    built = time.perf_counter() - start
    size = sum(len(b) for b in blocks) / len(blocks)
    print(
        f"setup: {len(prefix)} prefix blocks + {n_blocks} blocks of {n_txs} transfers "
        f"(2 in, 2 out; {size / 1e3:.0f} kB each) built and signed in {built:.1f}s"
    )
    if (n_blocks, n_txs) != (ISSUE_BLOCKS, ISSUE_TXS):
        print(
            f"measured: {n_blocks} blocks x {n_txs} txs = {n_tx_total} txs, {n_inputs} inputs "
            f"(the issue's {ISSUE_BLOCKS} x {ISSUE_TXS}: --blocks {ISSUE_BLOCKS} --txs {ISSUE_TXS})"
        )
    else:
        print(f"measured: {n_blocks} blocks x {n_txs} txs = {n_tx_total} txs, {n_inputs} inputs")

    baseline = time_baseline(prefix, blocks)
    with tempfile.TemporaryDirectory(prefix="fc-bench-") as tmp:
        chainstate = time_chainstate(prefix, blocks, tmp)

    for name, seconds in (
        ("chainstate (LevelDB, accept_block)", chainstate),
        ("baseline (check_block + draw + connect_block, MemoryCoins)", baseline),
    ):
        print(
            f"{name}: {seconds:.2f}s  {n_blocks / seconds:.2f} blocks/s  "
            f"{n_tx_total / seconds:,.0f} tx/s  {n_inputs / seconds:,.0f} inputs/s"
        )
    print(f"ratio {chainstate / baseline:.2f}")


if __name__ == "__main__":
    main()
