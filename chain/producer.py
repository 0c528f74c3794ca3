"""Assembling a block on top of a parent and winning its draw.

``assemble_block`` is the one way the project builds blocks (the regtest producer, the
miner, the tests and the benchmarks all use it). It computes the merkle root and the
target by the same functions validation uses, then draws (specs/pob.md §2): for counter
after counter, the header's seed picks a prompt and the ``sampler`` generates its tokens,
until a draw's hash meets the target; then it signs. The sampler is passed in, as the
verifier is to validation, so this module runs no model itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.block import BLOCK_VERSION, Block, BlockHeader, Work
from chain.checks import header_seed
from chain.contextual import ParentInfo, next_target
from chain.kinds import make_coinbase_payload
from chain.lottery import DrawTask, LotteryJob, Sampler, active_jobs, choose_prompt, pow_value
from chain.merkle import EMPTY_ROOT, merkle_root
from chain.params import ChainParams, block_subsidy
from chain.schnorr import pubkey_of, sign
from chain.sighash import sighashes
from chain.transaction import NO_SIGNATURE, Transaction, TxKind, TxOut

MAX_COUNTER = 2**64 - 1


def make_coinbase(
    height: int, params: ChainParams, pay_to: bytes, fees: int, extra: bytes = b""
) -> Transaction:
    """The coinbase paying the full subsidy plus fees to ``pay_to`` (an x-only key)."""
    amount = block_subsidy(height, params) + fees
    return Transaction(
        1, TxKind.COINBASE, (), (TxOut(amount, pay_to),), make_coinbase_payload(height, extra)
    )


def draw_tasks(
    params: ChainParams, unsigned: BlockHeader, jobs: Sequence[LotteryJob], counters: range
) -> tuple[list[BlockHeader], list[DrawTask]]:
    """The candidate headers for ``counters`` (tokens still empty) and their draws."""
    live = active_jobs(jobs, unsigned.height)
    headers, tasks = [], []
    for counter in counters:
        header = unsigned._replace(work=unsigned.work._replace(counter=counter, tokens=b""))
        seed = header_seed(header, params)
        job, index = choose_prompt(seed, live)
        headers.append(header)
        tasks.append(DrawTask(job, index, seed))
    return headers, tasks


def search_work(
    params: ChainParams,
    unsigned: BlockHeader,
    jobs: Sequence[LotteryJob],
    sampler: Sampler,
    counters: range,
) -> BlockHeader | None:
    """Draw once for each counter (one batch for the sampler); the first candidate header
    whose draw meets the target, tokens filled in and not yet signed, or None."""
    headers, tasks = draw_tasks(params, unsigned, jobs, counters)
    results = sampler(tasks)
    for header, task, tokens in zip(headers, tasks, results, strict=True):
        if pow_value(task.seed, tokens) <= header.target:
            return header._replace(work=header.work._replace(tokens=tokens))
    return None


def sign_header(header: BlockHeader, producer_secret: bytes, params: ChainParams) -> BlockHeader:
    signature = sign(producer_secret, header.signing_message(params.magic))
    return header._replace(producer_sig=signature)


def assemble_block(
    params: ChainParams,
    parent: ParentInfo,
    producer_secret: bytes,
    transactions: Sequence[Transaction],
    time: int,
    coinbase: Transaction | None = None,
    pay_to: bytes | None = None,
    fees: int = 0,
    *,
    sampler: Sampler,
    jobs: Sequence[LotteryJob] | None = None,
    batch: int = 1,
) -> Block:
    """Build a block, win its draw and sign it. ``coinbase`` defaults to one paying
    subsidy + ``fees`` to ``pay_to`` (default: the producer's key). ``jobs``: the lottery
    jobs admitted up to ``parent`` (default: the standing job alone); ``batch``: draws
    handed to the sampler at once."""
    height = parent.height + 1
    worker_key = pubkey_of(producer_secret)
    if coinbase is None:
        coinbase = make_coinbase(height, params, pay_to or worker_key, fees)
    txs = (coinbase, *transactions)
    unsigned = unsigned_header(params, parent, worker_key, txs, time)
    if jobs is None:
        jobs = [params.lottery.standing_job]
    for start in range(0, MAX_COUNTER, batch):
        won = search_work(params, unsigned, jobs, sampler, range(start, start + batch))
        if won is not None:
            return Block(sign_header(won, producer_secret, params), txs)
    raise RuntimeError("no winning draw found")


def unsigned_header(
    params: ChainParams,
    parent: ParentInfo,
    worker_key: bytes,
    transactions: Sequence[Transaction],
    time: int,
) -> BlockHeader:
    """The header of a block on ``parent`` before any draw: counter 0, no tokens."""
    return BlockHeader(
        version=BLOCK_VERSION,
        prev_hash=parent.hash,
        merkle_root=merkle_root([tx.wtxid for tx in transactions]),
        benefit_root=EMPTY_ROOT,
        time=time,
        target=next_target(params, parent.time, parent.height),
        height=parent.height + 1,
        work=Work(worker_key, 0, b""),
        producer_sig=NO_SIGNATURE,
    )


def sign_transaction(
    tx: Transaction, secrets: Sequence[bytes], spent: Sequence[TxOut], params: ChainParams
) -> Transaction:
    """Sign every input of ``tx``; ``secrets[i]`` owns ``spent[i]``."""
    messages = sighashes(tx, spent, params.magic)
    return tx.with_signatures([sign(s, m) for s, m in zip(secrets, messages, strict=True)])
