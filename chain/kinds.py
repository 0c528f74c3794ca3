"""Per-kind payload schemas (context-free).

Each transaction kind has one payload schema. ``check_payload`` is the single place that
knows them; adding a kind (bond, unbond, challenge arrive with Proof of Benefit part 2)
means adding a schema here and its contextual rules in ``contextual.py``.

``job-submit`` carries, for now, only lottery jobs: a steward's ``sample`` job with its
prompts (chain/lottery.py ``check_job_submit`` holds the rules that need the network's
parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chain.errors import InvalidTransaction, Reject
from chain.jobs import MAX_JOB_SPEC_SIZE
from chain.lottery import MAX_LOTTERY_PROMPTS, MAX_PROMPT_BYTES
from chain.transaction import PUBKEY_SIZE, SIGNATURE_SIZE, Transaction, TxKind

MAX_COINBASE_EXTRA = 100  # bytes of free data in a coinbase (extra nonce, tags)


def _check_transfer(tx: Transaction) -> None:
    if tx.payload != []:
        raise InvalidTransaction(Reject.TX_PAYLOAD, "transfer payload must be empty")
    if not tx.inputs:
        raise InvalidTransaction(Reject.TX_VIN_EMPTY, "transfer has no inputs")


def _check_coinbase(tx: Transaction) -> None:
    if tx.inputs:
        raise InvalidTransaction(Reject.CB_HAS_INPUTS, "coinbase spends nothing")
    p = tx.payload
    if not (
        len(p) == 2
        and type(p[0]) is int
        and 0 <= p[0] < 2**32
        and type(p[1]) is bytes
        and len(p[1]) <= MAX_COINBASE_EXTRA
    ):
        raise InvalidTransaction(
            Reject.CB_PAYLOAD, "coinbase payload is [height, extra<=100 bytes]"
        )


def _check_job_submit(tx: Transaction) -> None:
    """``[spec: bin <= 4096, prompts: [str, 1..1024 of them], steward: bin32, sig: bin64]``."""
    p = tx.payload
    if not tx.inputs:
        raise InvalidTransaction(Reject.TX_VIN_EMPTY, "job-submit has no inputs (it pays a fee)")
    if not (
        type(p) is list
        and len(p) == 4
        and type(p[0]) is bytes
        and len(p[0]) <= MAX_JOB_SPEC_SIZE
        and type(p[1]) is list
        and 1 <= len(p[1]) <= MAX_LOTTERY_PROMPTS
        and all(type(t) is str and len(t) <= MAX_PROMPT_BYTES for t in p[1])
        and type(p[2]) is bytes
        and len(p[2]) == PUBKEY_SIZE
        and type(p[3]) is bytes
        and len(p[3]) == SIGNATURE_SIZE
    ):
        raise InvalidTransaction(
            Reject.TX_PAYLOAD,
            "job-submit payload is [spec<=4096 bytes, [prompt...] (1..1024), steward, signature]",
        )


PAYLOAD_RULES: dict[int, Callable[[Transaction], None]] = {
    TxKind.TRANSFER: _check_transfer,
    TxKind.COINBASE: _check_coinbase,
    TxKind.JOB_SUBMIT: _check_job_submit,
}


def check_payload(tx: Transaction) -> None:
    """Raise unless ``tx.kind`` is known and its payload (and input shape) fits the kind."""
    rule = PAYLOAD_RULES.get(tx.kind)
    if rule is None:
        raise InvalidTransaction(Reject.TX_KIND_UNKNOWN, f"kind {tx.kind} is not active")
    rule(tx)


def coinbase_height(tx: Transaction) -> int:
    """The height a (checked) coinbase commits to (like BIP34: makes every txid unique)."""
    height: Any = tx.payload[0]
    return int(height)


def make_coinbase_payload(height: int, extra: bytes = b"") -> list[Any]:
    return [height, extra]
