"""Per-kind payload schemas (context-free).

Each transaction kind has one payload schema. ``check_payload`` is the single place that
knows them; adding a kind (job-submit, bond, unbond, challenge arrive with Proof of
Benefit) means adding a schema here and its contextual rules in ``contextual.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chain.errors import InvalidTransaction, Reject
from chain.transaction import Transaction, TxKind

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


PAYLOAD_RULES: dict[int, Callable[[Transaction], None]] = {
    TxKind.TRANSFER: _check_transfer,
    TxKind.COINBASE: _check_coinbase,
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
