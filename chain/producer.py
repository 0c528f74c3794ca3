"""Assembling and signing a block on top of a parent.

``assemble_block`` is the one way the project builds blocks (the regtest producer, the
tests and the benchmarks all use it). It computes the merkle root and the target by the
same functions validation uses, draws tickets until one meets the target, and signs.
When Proof of Benefit arrives, the ticket search is replaced by the worker's certified
batch; the header already has the fields.
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.block import BLOCK_VERSION, Block, BlockHeader, Ticket
from chain.checks import ticket_hash
from chain.contextual import ParentInfo, next_target
from chain.kinds import make_coinbase_payload
from chain.merkle import EMPTY_ROOT, merkle_root
from chain.params import ChainParams, block_subsidy
from chain.schnorr import pubkey_of, sign
from chain.sighash import sighashes
from chain.transaction import NO_SIGNATURE, Transaction, TxKind, TxOut

MAX_TICKET_DRAWS = 1 << 32


def make_coinbase(
    height: int, params: ChainParams, pay_to: bytes, fees: int, extra: bytes = b""
) -> Transaction:
    """The coinbase paying the full subsidy plus fees to ``pay_to`` (an x-only key)."""
    amount = block_subsidy(height, params) + fees
    return Transaction(
        1, TxKind.COINBASE, (), (TxOut(amount, pay_to),), make_coinbase_payload(height, extra)
    )


def find_ticket(prev_hash: bytes, worker_key: bytes, target: int, start: int = 0) -> int:
    """The first unit counter from ``start`` whose ticket meets ``target``."""
    for n in range(start, start + MAX_TICKET_DRAWS):
        if int.from_bytes(ticket_hash(prev_hash, worker_key, n), "big") <= target:
            return n
    raise RuntimeError("no winning ticket found")


def assemble_block(
    params: ChainParams,
    parent: ParentInfo,
    producer_secret: bytes,
    transactions: Sequence[Transaction],
    time: int,
    coinbase: Transaction | None = None,
    pay_to: bytes | None = None,
    fees: int = 0,
) -> Block:
    """Build and sign a block. ``coinbase`` defaults to one paying subsidy + ``fees``
    to ``pay_to`` (default: the producer's key)."""
    height = parent.height + 1
    worker_key = pubkey_of(producer_secret)
    if coinbase is None:
        coinbase = make_coinbase(height, params, pay_to or worker_key, fees)
    txs = (coinbase, *transactions)
    target = next_target(params, parent.time, parent.height)
    counter = find_ticket(parent.hash, worker_key, target)
    unsigned = BlockHeader(
        version=BLOCK_VERSION,
        prev_hash=parent.hash,
        merkle_root=merkle_root([tx.wtxid for tx in txs]),
        benefit_root=EMPTY_ROOT,
        time=time,
        target=target,
        height=height,
        ticket=Ticket(worker_key, counter, EMPTY_ROOT, EMPTY_ROOT),
        producer_sig=NO_SIGNATURE,
    )
    signature = sign(producer_secret, unsigned.signing_message(params.magic))
    return Block(unsigned._replace(producer_sig=signature), txs)


def sign_transaction(
    tx: Transaction, secrets: Sequence[bytes], spent: Sequence[TxOut], params: ChainParams
) -> Transaction:
    """Sign every input of ``tx``; ``secrets[i]`` owns ``spent[i]``."""
    messages = sighashes(tx, spent, params.magic)
    return tx.with_signatures([sign(s, m) for s, m in zip(secrets, messages, strict=True)])
