"""Contextual checks: rules that need the parent chain or the coin set.

* :func:`check_header_contextual` needs the parent (height, time, the median of recent
  times) and our clock, which enters only as the parameter ``now``.
* :func:`check_tx_inputs` needs a coin view; it is shared by block connection and the
  mempool, so a transaction means the same thing in both.
* :func:`check_block_work` re-executes the block's winning draw through the verifier
  the caller passes in (the only expensive rule; chain/lottery.py).
* :func:`connect_block` spends and creates coins in an overlay, admits lottery jobs, and
  returns the undo record; :func:`disconnect_block` reverses it exactly.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from concurrent.futures import Executor
from typing import Any, NamedTuple

from chain.amounts import MAX_MONEY
from chain.block import Block, BlockHeader
from chain.checks import header_seed
from chain.coins import Coin, CoinsOverlay, CoinView, coin_from_wire
from chain.difficulty import asert_target
from chain.encoding import UINT32_MAX, expect_bytes, expect_int, expect_list, pack, unpack_canonical
from chain.errors import BlockTooNew, InvalidBlock, InvalidTransaction, MissingInputs, Reject
from chain.kinds import coinbase_height
from chain.lottery import (
    DrawTask,
    LotteryJob,
    WorkVerifier,
    active_jobs,
    check_job_submit,
    check_work,
)
from chain.params import (
    MAX_FUTURE_BLOCK_TIME,
    MAX_TIMEWARP,
    ChainParams,
    block_subsidy,
)
from chain.schnorr import verify_batch
from chain.sighash import sighashes
from chain.transaction import OutPoint, Transaction, TxKind, TxOut


class ParentInfo(NamedTuple):
    """What the header rules need to know about the block being built upon."""

    hash: bytes
    height: int
    time: int
    median_time_past: int  # median of the times of the parent and its 10 ancestors


def median_time_past(times: Sequence[int]) -> int:
    """Median of up to the last 11 block times (§5.3)."""
    ordered = sorted(times)
    return ordered[len(ordered) // 2]


def next_target(params: ChainParams, parent_time: int, parent_height: int) -> int:
    """§5.5: the target the child of this parent must carry."""
    if params.no_retarget:
        return params.block_target or params.genesis_target
    return asert_target(
        params.genesis_target,
        params.genesis_time,
        parent_time,
        parent_height,
        params.block_time,
        params.asert_halflife,
        params.max_target,
    )


def check_header_contextual(
    header: BlockHeader, parent: ParentInfo, params: ChainParams, now: int
) -> None:
    """§5.1–5.6: the header fits on its parent."""
    if header.prev_hash != parent.hash:
        raise InvalidBlock(Reject.PREV_UNKNOWN, "header does not build on the given parent")
    if header.height != parent.height + 1:  # §5.2
        raise InvalidBlock(Reject.HEIGHT, f"height {header.height}, expected {parent.height + 1}")
    if header.time <= parent.median_time_past:  # §5.3
        raise InvalidBlock(
            Reject.TIME_TOO_OLD, f"time {header.time} <= median time past {parent.median_time_past}"
        )
    if header.time < parent.time - MAX_TIMEWARP:  # §5.4
        raise InvalidBlock(
            Reject.TIME_TIMEWARP, f"time {header.time} more than {MAX_TIMEWARP}s before parent"
        )
    if header.time > now + MAX_FUTURE_BLOCK_TIME:  # §5.6: a judgement about now, retry later
        raise BlockTooNew(
            Reject.TIME_TOO_NEW, f"time {header.time} > now + {MAX_FUTURE_BLOCK_TIME}"
        )
    expected = next_target(params, parent.time, parent.height)
    if header.target != expected:  # §5.5
        raise InvalidBlock(Reject.TARGET_WRONG, "target does not follow ASERT")


def check_block_work(
    block: Block, params: ChainParams, jobs: Sequence[LotteryJob], verifier: WorkVerifier
) -> DrawTask:
    """§5.10: the block's tokens are the exact draw its header's seed gives, on a prompt
    of the lottery jobs active at its height (``jobs``: every job admitted on the chain
    up to its parent, the standing one included). Returns the draw that was checked."""
    header = block.header
    live = active_jobs(jobs, header.height)
    return check_work(header_seed(header, params), header.work.tokens, live, verifier)


def admit_lottery_job(
    tx: Transaction, height: int, params: ChainParams, known: Container[bytes]
) -> LotteryJob:
    """§3.7: a steward's job-submit admits a lottery job, drawable ``activation_delay``
    blocks later. ``known``: the ids of the jobs already admitted on this chain."""
    submit = check_job_submit(tx, params.magic, params.lottery)
    job_id = submit.spec.job_id
    if job_id in known:
        raise InvalidTransaction(Reject.JOB_DUPLICATE, f"job {job_id.hex()[:16]} already admitted")
    return LotteryJob(
        job_id, submit.spec, submit.prompts, height, height + params.lottery.activation_delay
    )


class InputCheck(NamedTuple):
    fee: int
    spent: list[TxOut]


def check_tx_inputs(
    tx: Transaction, view: CoinView, spend_height: int, params: ChainParams
) -> InputCheck:
    """§3.1–3.5 without signatures: inputs exist, are mature, and cover the outputs."""
    spent: list[TxOut] = []
    total_in = 0
    for txin in tx.inputs:
        coin = view.get_coin(txin.prevout)
        if coin is None:  # §3.1
            raise MissingInputs(
                Reject.TX_INPUTS_MISSING, f"{txin.prevout.txid.hex()[:16]}:{txin.prevout.vout}"
            )
        if coin.is_coinbase and spend_height - coin.height < params.coinbase_maturity:  # §3.2
            raise InvalidTransaction(
                Reject.TX_PREMATURE_SPEND, f"coinbase from {coin.height} spent at {spend_height}"
            )
        total_in += coin.amount
        if not 0 <= coin.amount <= MAX_MONEY or total_in > MAX_MONEY:  # §3.3
            raise InvalidTransaction(Reject.TX_INPUT_VALUES_OUTOFRANGE, f"input total {total_in}")
        spent.append(coin.output)
    total_out = sum(o.amount for o in tx.outputs)
    if total_in < total_out:  # §3.4
        raise InvalidTransaction(Reject.TX_IN_BELOWOUT, f"inputs {total_in} < outputs {total_out}")
    fee = total_in - total_out
    if fee > MAX_MONEY:  # §3.5 (unreachable with checked sums; kept as the belt to the braces)
        raise InvalidTransaction(Reject.TX_FEE_OUTOFRANGE, f"fee {fee}")
    return InputCheck(fee, spent)


def signature_checks(
    tx: Transaction, spent: Sequence[TxOut], magic: bytes
) -> list[tuple[bytes, bytes, bytes]]:
    """§3.6: the ``(pubkey, signature, message)`` triples that must all verify."""
    messages = sighashes(tx, spent, magic)
    return [
        (coin.pubkey, txin.signature, msg)
        for coin, txin, msg in zip(spent, tx.inputs, messages, strict=True)
    ]


def check_tx_signatures(tx: Transaction, spent: Sequence[TxOut], params: ChainParams) -> None:
    bad = verify_batch(signature_checks(tx, spent, params.magic))
    if bad >= 0:
        raise InvalidTransaction(Reject.TX_SIG_INVALID, f"input {bad}")


class Undo(NamedTuple):
    """Coins a block spent, in the order its inputs spent them."""

    spent: list[tuple[OutPoint, Coin]]

    def encode(self) -> bytes:
        return pack([[op.txid, op.vout, coin.to_wire()] for op, coin in self.spent])


def decode_undo(data: bytes) -> Undo:
    entries = expect_list(unpack_canonical(data, 64_000_000), "undo")
    spent = []
    for raw in entries:
        item: list[Any] = expect_list(raw, "undo.entry", length=3)
        txid = expect_bytes(item[0], "undo.txid", length=32)
        index = expect_int(item[1], "undo.index", 0, UINT32_MAX)
        spent.append((OutPoint(txid, index), coin_from_wire(item[2])))
    return Undo(spent)


class ConnectResult(NamedTuple):
    overlay: CoinsOverlay
    undo: Undo
    fees: int
    jobs: list[LotteryJob]  # lottery jobs the block admitted


def connect_block(
    block: Block,
    view: CoinView,
    params: ChainParams,
    executor: Executor | None = None,
    sig_chunks: int = 1,
    known_jobs: Container[bytes] = frozenset(),
) -> ConnectResult:
    """§5.7–5.9: spend the block's inputs over ``view`` and check every transaction.

    Assumes ``check_block`` passed and the header fits its parent. Nothing is written to
    ``view``; the caller commits ``result.overlay`` (and the admitted ``result.jobs``)
    only if this returns. ``known_jobs``: ids of the lottery jobs already admitted. All signatures
    are checked at the end in one batch (possibly in threads): the block fails as a
    whole anyway, and batching keeps the loop over transactions lean.
    """
    height = block.header.height
    coinbase = block.transactions[0]
    if coinbase_height(coinbase) != height:  # §5.7 (BIP34: unique coinbase txids)
        raise InvalidBlock(
            Reject.CB_HEIGHT, f"coinbase says {coinbase_height(coinbase)}, block is {height}"
        )
    overlay = CoinsOverlay(view)
    undo: list[tuple[OutPoint, Coin]] = []
    checks: list[tuple[bytes, bytes, bytes]] = []
    owners: list[Transaction] = []
    fees = 0
    magic = params.magic
    jobs: list[LotteryJob] = []
    for tx in block.transactions[1:]:
        try:
            fee, spent = check_tx_inputs(tx, overlay, height, params)
            if tx.kind == TxKind.JOB_SUBMIT:  # §3.7
                admitted = _JobsSoFar(known_jobs, jobs)
                jobs.append(admit_lottery_job(tx, height, params, admitted))
        except InvalidTransaction as exc:
            raise InvalidBlock(exc.code, f"tx {tx.txid.hex()[:16]}: {exc.detail}") from None
        fees += fee
        if fees > MAX_MONEY:  # §5.8
            raise InvalidBlock(Reject.TX_FEE_OUTOFRANGE, f"block fees {fees}")
        tx_checks = signature_checks(tx, spent, magic)
        checks.extend(tx_checks)
        owners.extend([tx] * len(tx_checks))
        for txin in tx.inputs:
            coin = overlay.spend(txin.prevout)
            assert coin is not None  # check_tx_inputs just found it
            undo.append((txin.prevout, coin))
        overlay.add_outputs(tx, height)
    limit = block_subsidy(height, params) + fees
    minted = sum(o.amount for o in coinbase.outputs)
    if minted > limit:  # §5.8
        raise InvalidBlock(Reject.CB_AMOUNT, f"coinbase pays {minted} > subsidy + fees {limit}")
    overlay.add_outputs(coinbase, height)
    bad = verify_batch(checks, executor, sig_chunks)
    if bad >= 0:  # §5.9 (= §3.6 for every input of the block)
        raise InvalidBlock(Reject.TX_SIG_INVALID, f"tx {owners[bad].txid.hex()[:16]}")
    return ConnectResult(overlay, Undo(undo), fees, jobs)


class _JobsSoFar:
    """The job ids admitted before a transaction: the chain's and the block's earlier ones."""

    def __init__(self, known: Container[bytes], in_block: list[LotteryJob]) -> None:
        self.known = known
        self.in_block = in_block

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.known or any(j.job_id == job_id for j in self.in_block)


def disconnect_block(block: Block, undo: Undo, view: CoinView) -> CoinsOverlay:
    """Reverse ``connect_block``: newest transaction first, remove its outputs and restore
    the coins it spent. Reverse order matters when a transaction spends an output made
    earlier in the same block: that coin must end up removed, not restored."""
    overlay = CoinsOverlay(view)
    cursor = len(undo.spent)
    for tx in reversed(block.transactions):
        for n in range(len(tx.outputs)):
            overlay.remove(OutPoint(tx.txid, n))
        cursor -= len(tx.inputs)
        for outpoint, coin in undo.spent[cursor : cursor + len(tx.inputs)]:
            overlay.restore(outpoint, coin)
    if cursor != 0:
        raise ValueError("undo record does not match the block")
    return overlay
