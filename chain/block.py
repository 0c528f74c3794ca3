"""Block headers and blocks.

Wire form (specs/encoding.md §4)::

    header = [version = 2, prev_hash, merkle_root, benefit_root, time, target, height,
              work, producer_sig]
    work   = [worker_key: bin32, counter: uint64, tokens: bin (4 bytes per token)]
    block  = [header, [tx...]]

``target`` is a 32-byte big-endian integer: no compact "bits" form, so the value the
difficulty rule computes is the value compared, with no rounding in between.

The block hash covers the whole header, signature included. The producer signs the
header *without* the signature, prefixed by the network magic, so a header signed for one
network is worthless on another. The work fields say which draw won the block: the
worker's key and counter enter the draw's seed, and the tokens are its output
(chain/lottery.py, specs/pob.md §2). The tokens are the header's only field the seed
does not cover.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, NamedTuple

from chain.encoding import (
    UINT32_MAX,
    UINT64_MAX,
    expect_bytes,
    expect_int,
    expect_list,
    pack,
    unpack_canonical,
)
from chain.hashing import TAG_BLOCK, TAG_HEADER_SIG, tagged_hash
from chain.lottery import MAX_WORK_TOKENS, TOKEN_BYTES
from chain.transaction import HASH_SIZE, PUBKEY_SIZE, SIGNATURE_SIZE, Transaction, tx_from_wire

MAX_BLOCK_SIZE = 2_000_000  # bytes of one encoded block (consensus)
MAX_BLOCK_TXS = 20_000  # decoder bound; MAX_BLOCK_SIZE is tighter in practice
# An encoded header is 244 to 268 bytes plus its tokens (4 bytes each, at most
# MAX_WORK_TOKENS of them): at most 1,293 bytes.
HEADER_SIZE_LIMIT = 1_300
BLOCK_VERSION = 2


class Work(NamedTuple):
    """The draw that won the block (specs/pob.md §2)."""

    worker_key: bytes  # x-only key; it signs the header
    counter: int  # the worker's nonce: each value is another seed
    tokens: bytes  # the draw's tokens, TOKEN_BYTES each, big-endian


class BlockHeader(NamedTuple):
    version: int
    prev_hash: bytes
    merkle_root: bytes
    benefit_root: bytes
    time: int
    target: int
    height: int
    work: Work
    producer_sig: bytes

    def _fields_before_work(self) -> list[Any]:
        return [
            self.version,
            self.prev_hash,
            self.merkle_root,
            self.benefit_root,
            self.time,
            self.target.to_bytes(32, "big"),
            self.height,
        ]

    def draw_wire(self) -> list[Any]:
        """The header without its work outputs (tokens) or signature: what a draw's seed
        covers (chain/lottery.py ``draw_seed``)."""
        return [*self._fields_before_work(), self.work.worker_key, self.work.counter]

    def unsigned_wire(self) -> list[Any]:
        return [*self._fields_before_work(), list(self.work)]

    def to_wire(self) -> list[Any]:
        return [*self.unsigned_wire(), self.producer_sig]

    def encode(self) -> bytes:
        return pack(self.to_wire())

    def hash(self) -> bytes:
        return tagged_hash(TAG_BLOCK, self.encode())

    def signing_message(self, magic: bytes) -> bytes:
        """What the producer signs: the network magic and the header without its signature."""
        return tagged_hash(TAG_HEADER_SIG, magic + pack(self.unsigned_wire()))


def header_from_wire(value: Any) -> BlockHeader:
    f = expect_list(value, "header", length=9)
    w = expect_list(f[7], "header.work", length=3)
    work = Work(
        expect_bytes(w[0], "work.worker_key", length=PUBKEY_SIZE),
        expect_int(w[1], "work.counter", 0, UINT64_MAX),
        expect_bytes(w[2], "work.tokens", max_len=MAX_WORK_TOKENS * TOKEN_BYTES),
    )
    return BlockHeader(
        version=expect_int(f[0], "header.version", 0, UINT32_MAX),
        prev_hash=expect_bytes(f[1], "header.prev_hash", length=HASH_SIZE),
        merkle_root=expect_bytes(f[2], "header.merkle_root", length=HASH_SIZE),
        benefit_root=expect_bytes(f[3], "header.benefit_root", length=HASH_SIZE),
        time=expect_int(f[4], "header.time", 0, UINT64_MAX),
        target=int.from_bytes(expect_bytes(f[5], "header.target", length=32), "big"),
        height=expect_int(f[6], "header.height", 0, UINT32_MAX),
        work=work,
        producer_sig=expect_bytes(f[8], "header.producer_sig", length=SIGNATURE_SIZE),
    )


def decode_header(data: bytes) -> BlockHeader:
    return header_from_wire(unpack_canonical(data, HEADER_SIZE_LIMIT))


class Block:
    """A header and its transactions, the coinbase first."""

    __slots__ = ("__dict__", "header", "transactions")

    def __init__(self, header: BlockHeader, transactions: tuple[Transaction, ...]) -> None:
        self.header = header
        self.transactions = transactions

    @cached_property
    def hash(self) -> bytes:
        return self.header.hash()

    @cached_property
    def encoded(self) -> bytes:
        return pack([self.header.to_wire(), [tx.to_wire() for tx in self.transactions]])

    @property
    def size(self) -> int:
        return len(self.encoded)

    def __repr__(self) -> str:
        return f"Block(height={self.header.height}, hash={self.hash.hex()[:16]}, txs={len(self.transactions)})"


def decode_block(data: bytes, max_size: int = MAX_BLOCK_SIZE) -> Block:
    """Decode a block; raises ``DecodeError`` on anything but canonical, well-shaped bytes.

    Each transaction keeps its own canonical bytes (re-packed from the decoded value,
    which equals the received slice because the whole block was canonical).
    """
    value = unpack_canonical(data, max_size)
    f = expect_list(value, "block", length=2)
    header = header_from_wire(f[0])
    raw_txs = expect_list(f[1], "block.transactions", max_len=MAX_BLOCK_TXS)
    txs = tuple(tx_from_wire(raw) for raw in raw_txs)
    block = Block(header, txs)
    block.__dict__["encoded"] = bytes(data)
    return block
