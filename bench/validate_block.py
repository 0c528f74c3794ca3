"""How much does full block validation cost over bare signature checking?

Builds a 2000-transaction regtest block (each transaction spends 2 coins from an
in-memory coin set and pays 2 outputs), encodes it, and times, untimed setup aside:

* **full**: ``decode_block(bytes)`` + ``check_block`` + ``check_block_work`` (the
  block's draw re-executed by regtest's tiny lottery model, ~8 ms; printed on its own
  too) + ``connect_block`` over a ``MemoryCoins`` view, which checks every input and
  verifies all 4000 signatures;
* **bare**: the same 4000 ``(pubkey, signature, message)`` triples verified with
  coincurve in a plain loop, the floor no validator can go below.

Each figure is the best of several runs. The last line is ``ratio <full/bare>`` on one
core; the aim is at most 1.5. A second figure runs ``connect_block`` with two threads
(coincurve releases the GIL) and compares it with the single-core bare loop.

Run: ``.venv/bin/python bench/validate_block.py [--txs N] [--repeat R]``
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from coincurve import PublicKeyXOnly
from connect_blocks import regtest_lottery  # bench/ is on sys.path when this runs

from chain.block import Block, decode_block
from chain.checks import check_block
from chain.coins import Coin, MemoryCoins
from chain.contextual import ParentInfo, check_block_work, connect_block, signature_checks
from chain.params import REGTEST
from chain.producer import assemble_block, sign_transaction
from chain.schnorr import pubkey_of
from chain.transaction import NO_SIGNATURE, OutPoint, Transaction, TxIn, TxKind, TxOut

PARAMS = REGTEST
INPUTS_PER_TX = 2
OUTPUTS_PER_TX = 2
KEYS = 64  # distinct signing keys, reused round-robin
COIN_VALUE = 10_000
FEE = 100


def _secret(n: int) -> bytes:
    return hashlib.sha256(b"bench-key-%d" % n).digest()


def build(n_txs: int) -> tuple[bytes, MemoryCoins, list[tuple[bytes, bytes, bytes]]]:
    """The encoded block, the coin set it spends from, and its signature triples."""
    secrets = [_secret(n) for n in range(KEYS)]
    pubkeys = [pubkey_of(s) for s in secrets]
    coins = MemoryCoins()
    # The prepared coins: outputs of made-up funding transactions confirmed at height 0
    # (not coinbases, so maturity does not apply).
    funding: list[tuple[OutPoint, int]] = []
    for n in range(n_txs * INPUTS_PER_TX):
        outpoint = OutPoint(hashlib.sha256(b"funding-%d" % n).digest(), n % 3)
        key = n % KEYS
        coins.coins[outpoint] = Coin(COIN_VALUE, pubkeys[key], 0, False)
        funding.append((outpoint, key))
    txs: list[Transaction] = []
    fees = 0
    for t in range(n_txs):
        mine = funding[t * INPUTS_PER_TX : (t + 1) * INPUTS_PER_TX]
        total_in = COIN_VALUE * INPUTS_PER_TX
        pay = (total_in - FEE) // OUTPUTS_PER_TX
        outputs = tuple(TxOut(pay, pubkeys[(t + k) % KEYS]) for k in range(OUTPUTS_PER_TX))
        fees += total_in - pay * OUTPUTS_PER_TX
        unsigned = Transaction(
            1,
            TxKind.TRANSFER,
            tuple(TxIn(op, NO_SIGNATURE) for op, _ in mine),
            outputs,
            [],
        )
        spent = [coins.coins[op].output for op, _ in mine]
        txs.append(sign_transaction(unsigned, [secrets[k] for _, k in mine], spent, PARAMS))
    genesis = PARAMS.genesis
    parent = ParentInfo(genesis.hash, 0, genesis.header.time, genesis.header.time)
    block = assemble_block(
        PARAMS,
        parent,
        secrets[0],
        txs,
        genesis.header.time + 1,
        fees=fees,
        sampler=regtest_lottery().sample,
    )
    triples: list[tuple[bytes, bytes, bytes]] = []
    for tx in block.transactions[1:]:
        spent = [coins.coins[i.prevout].output for i in tx.inputs]
        triples.extend(signature_checks(tx, spent, PARAMS.magic))
    return block.encoded, coins, triples


def full_validation(
    data: bytes, coins: MemoryCoins, executor: ThreadPoolExecutor | None = None, chunks: int = 1
) -> Block:
    block = decode_block(data)
    check_block(block, PARAMS)
    work_check(block)
    result = connect_block(block, coins, PARAMS, executor, chunks)
    assert len(result.undo.spent) == (len(block.transactions) - 1) * INPUTS_PER_TX
    return block


def work_check(block: Block) -> None:
    check_block_work(block, PARAMS, [PARAMS.lottery.standing_job], regtest_lottery().verify)


def bare_verify(triples: list[tuple[bytes, bytes, bytes]]) -> None:
    for pubkey, signature, message in triples:
        if not PublicKeyXOnly(pubkey).verify(signature, message):
            raise AssertionError("bench signature failed")


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of ``repeat`` runs, in seconds (the least disturbed run)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--txs", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    data, coins, triples = build(args.txs)
    print(f"block: {args.txs} txs + coinbase, {len(data)} bytes, {len(triples)} signatures")
    # Warm up (caches such as the tag midstates; first-touch allocations).
    full_validation(data, coins)
    bare_verify(triples)

    # Interleave the two measurements so drift in machine speed hits both alike.
    full_runs, bare_runs = [], []
    for _ in range(args.repeat):
        full_runs.append(best_of(1, lambda: full_validation(data, coins)))
        bare_runs.append(best_of(1, lambda: bare_verify(triples)))
    full, bare = min(full_runs), min(bare_runs)
    block = decode_block(data)
    work = best_of(args.repeat, lambda: work_check(block))
    with ThreadPoolExecutor(2) as pool:
        full_validation(data, coins, pool, 2)
        full2 = best_of(args.repeat, lambda: full_validation(data, coins, pool, 2))

    print(f"full validation (1 core): {full * 1e3:8.1f} ms  ({full / args.txs * 1e6:.1f} µs/tx)")
    print(f"  of which the draw:        {work * 1e3:8.1f} ms  (check_block_work, tiny model)")
    print(f"bare verify     (1 core): {bare * 1e3:8.1f} ms  ({bare / args.txs * 1e6:.1f} µs/tx)")
    print(
        f"overhead beyond signatures: {(full - bare) * 1e3:.1f} ms ({(full - bare) / args.txs * 1e6:.1f} µs/tx)"
    )
    print(
        f"full validation (2 threads, sig_chunks=2): {full2 * 1e3:8.1f} ms  "
        f"({full2 / args.txs * 1e6:.1f} µs/tx), ratio vs 1-core bare {full2 / bare:.2f}"
    )
    print(f"ratio {full / bare:.2f}")


if __name__ == "__main__":
    main()
