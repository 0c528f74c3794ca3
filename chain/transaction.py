"""Transactions: typed, canonically encoded, identified by what they do.

Wire form (specs/encoding.md §3) is one msgpack array::

    [version, kind, [input...], [output...], payload]
    input  = [prev_txid: bin32, prev_index: uint32, signature: bin64]
    output = [amount: int, pubkey: bin32]

``kind`` says what the transaction does (transfer, coinbase, and later job-submit, bond,
unbond, challenge); ``payload`` is an array whose schema depends on the kind
(``chain/kinds.py``), so adding a kind means adding one schema and its rules.

Two identifiers, as with segwit:

* ``txid`` hashes the transaction *without* signatures. Outpoints refer to it, so a third
  party who re-encodes or re-signs cannot change what a child transaction spends.
* ``wtxid`` hashes everything. The block's Merkle root commits to wtxids, so a block
  commits to its signatures too.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, NamedTuple

from chain.encoding import (
    UINT32_MAX,
    expect_bytes,
    expect_int,
    expect_list,
    pack,
    unpack_canonical,
)
from chain.hashing import TAG_TX, TAG_WTX, tagged_hash

MAX_TX_SIZE = 100_000  # bytes of one encoded transaction (consensus)
MAX_TX_INPUTS = 2_000  # decoder bound; MAX_TX_SIZE is tighter in practice
MAX_TX_OUTPUTS = 2_000
SIGNATURE_SIZE = 64
PUBKEY_SIZE = 32
HASH_SIZE = 32
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
NO_SIGNATURE = b"\x00" * SIGNATURE_SIZE  # placeholder while a transaction is being signed


class TxKind:
    """Transaction kinds. Values are consensus: never renumber."""

    TRANSFER = 0
    COINBASE = 1
    JOB_SUBMIT = 2  # a steward's lottery job (chain/lottery.py); research jobs in PoB part 2
    BOND = 3  # reserved
    UNBOND = 4  # reserved
    CHALLENGE = 5  # reserved


class OutPoint(NamedTuple):
    txid: bytes
    vout: int

    def key(self) -> bytes:
        """36-byte key: txid then big-endian index (sorts like the pair)."""
        return self.txid + self.vout.to_bytes(4, "big")


class TxIn(NamedTuple):
    prevout: OutPoint
    signature: bytes


class TxOut(NamedTuple):
    amount: int
    pubkey: bytes


class Transaction:
    """An immutable transaction. Build with the constructor, or decode from bytes."""

    __slots__ = ("__dict__", "inputs", "kind", "outputs", "payload", "version")

    def __init__(
        self,
        version: int,
        kind: int,
        inputs: tuple[TxIn, ...],
        outputs: tuple[TxOut, ...],
        payload: list[Any],
    ) -> None:
        self.version = version
        self.kind = kind
        self.inputs = inputs
        self.outputs = outputs
        self.payload = payload

    # -- encoding -------------------------------------------------------------------
    def to_wire(self) -> list[Any]:
        return [
            self.version,
            self.kind,
            [[i.prevout.txid, i.prevout.vout, i.signature] for i in self.inputs],
            [[o.amount, o.pubkey] for o in self.outputs],
            self.payload,
        ]

    @cached_property
    def encoded(self) -> bytes:
        return pack(self.to_wire())

    @cached_property
    def txid(self) -> bytes:
        stripped = [
            self.version,
            self.kind,
            [[i.prevout.txid, i.prevout.vout] for i in self.inputs],
            [[o.amount, o.pubkey] for o in self.outputs],
            self.payload,
        ]
        return tagged_hash(TAG_TX, pack(stripped))

    @cached_property
    def wtxid(self) -> bytes:
        return tagged_hash(TAG_WTX, self.encoded)

    @property
    def size(self) -> int:
        return len(self.encoded)

    @property
    def is_coinbase(self) -> bool:
        return self.kind == TxKind.COINBASE

    def with_signatures(self, signatures: list[bytes]) -> Transaction:
        """A copy with input ``i`` carrying ``signatures[i]``; the txid is unchanged."""
        inputs = tuple(TxIn(i.prevout, s) for i, s in zip(self.inputs, signatures, strict=True))
        return Transaction(self.version, self.kind, inputs, self.outputs, self.payload)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transaction) and self.encoded == other.encoded

    def __hash__(self) -> int:
        return hash(self.wtxid)

    def __repr__(self) -> str:
        return f"Transaction(kind={self.kind}, txid={self.txid.hex()[:16]}, in={len(self.inputs)}, out={len(self.outputs)})"


def tx_from_wire(value: Any) -> Transaction:
    """Build a transaction from a decoded msgpack value, checking its shape strictly."""
    fields = expect_list(value, "tx", length=5)
    version = expect_int(fields[0], "tx.version", 0, UINT32_MAX)
    kind = expect_int(fields[1], "tx.kind", 0, 255)
    raw_inputs = expect_list(fields[2], "tx.inputs", max_len=MAX_TX_INPUTS)
    raw_outputs = expect_list(fields[3], "tx.outputs", max_len=MAX_TX_OUTPUTS)
    payload = expect_list(fields[4], "tx.payload", max_len=16)
    inputs = []
    for raw in raw_inputs:
        item = expect_list(raw, "tx.input", length=3)
        txid = expect_bytes(item[0], "tx.input.txid", length=HASH_SIZE)
        index = expect_int(item[1], "tx.input.index", 0, UINT32_MAX)
        sig = expect_bytes(item[2], "tx.input.signature", length=SIGNATURE_SIZE)
        inputs.append(TxIn(OutPoint(txid, index), sig))
    outputs = []
    for raw in raw_outputs:
        item = expect_list(raw, "tx.output", length=2)
        # Negative and oversized amounts decode; consensus rejects them with their own codes.
        amount = expect_int(item[0], "tx.output.amount", INT64_MIN, UINT64_MAX)
        pubkey = expect_bytes(item[1], "tx.output.pubkey", length=PUBKEY_SIZE)
        outputs.append(TxOut(amount, pubkey))
    return Transaction(version, kind, tuple(inputs), tuple(outputs), payload)


def decode_transaction(data: bytes) -> Transaction:
    """Decode one transaction; raises ``DecodeError`` on anything but canonical bytes."""
    tx = tx_from_wire(unpack_canonical(data, MAX_TX_SIZE))
    tx.__dict__["encoded"] = bytes(data)  # canonical: identical to re-encoding
    return tx
