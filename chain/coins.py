"""Coins (unspent outputs) and layered views of the coin set.

Validation reads and spends coins through a :class:`CoinView`. A
:class:`CoinsOverlay` sits on top of any view (the LevelDB chainstate, or another
overlay) and records spends and additions without touching the base, so a block that
fails half-way is simply dropped with its overlay: nothing to roll back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Protocol

from chain.encoding import UINT32_MAX, expect_bytes, expect_int, expect_list, pack, unpack_canonical
from chain.hashing import TAG_UTXO_SET, tagged_hasher
from chain.transaction import OutPoint, Transaction, TxOut

COIN_SIZE_LIMIT = 128


class Coin(NamedTuple):
    amount: int
    pubkey: bytes
    height: int  # height of the block that created it
    is_coinbase: bool

    def to_wire(self) -> list[Any]:
        return [self.amount, self.pubkey, self.height, int(self.is_coinbase)]

    def encode(self) -> bytes:
        return pack(self.to_wire())

    @property
    def output(self) -> TxOut:
        return TxOut(self.amount, self.pubkey)


def coin_from_wire(value: Any) -> Coin:
    f = expect_list(value, "coin", length=4)
    return Coin(
        expect_int(f[0], "coin.amount", 0, 2**63 - 1),
        expect_bytes(f[1], "coin.pubkey", length=32),
        expect_int(f[2], "coin.height", 0, UINT32_MAX),
        bool(expect_int(f[3], "coin.is_coinbase", 0, 1)),
    )


def decode_coin(data: bytes) -> Coin:
    return coin_from_wire(unpack_canonical(data, COIN_SIZE_LIMIT))


class CoinView(Protocol):
    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...


class CoinsOverlay:
    """Spends and additions over a base view. ``changes`` maps outpoints to the new
    coin, or to ``None`` when the coin was spent."""

    def __init__(self, base: CoinView) -> None:
        self.base = base
        self.changes: dict[OutPoint, Coin | None] = {}

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        if outpoint in self.changes:
            return self.changes[outpoint]
        return self.base.get_coin(outpoint)

    def spend(self, outpoint: OutPoint) -> Coin | None:
        coin = self.get_coin(outpoint)
        if coin is not None:
            self.changes[outpoint] = None
        return coin

    def add_outputs(self, tx: Transaction, height: int) -> None:
        txid = tx.txid
        coinbase = tx.is_coinbase
        for n, out in enumerate(tx.outputs):
            self.changes[OutPoint(txid, n)] = Coin(out.amount, out.pubkey, height, coinbase)

    def restore(self, outpoint: OutPoint, coin: Coin) -> None:
        self.changes[outpoint] = coin

    def remove(self, outpoint: OutPoint) -> None:
        self.changes[outpoint] = None

    def items(self) -> Iterator[tuple[OutPoint, Coin | None]]:
        return iter(self.changes.items())


class MemoryCoins:
    """A plain in-memory coin set: the reference the LevelDB chainstate is tested against."""

    def __init__(self) -> None:
        self.coins: dict[OutPoint, Coin] = {}

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self.coins.get(outpoint)

    def apply(self, overlay: CoinsOverlay) -> None:
        for outpoint, coin in overlay.items():
            if coin is None:
                self.coins.pop(outpoint, None)
            else:
                self.coins[outpoint] = coin


def utxo_set_hash(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The UTXO-set commitment over ``(outpoint key, coin encoding)`` pairs in key order.

    ``H_"fc/utxo-set"(key_1 || coin_1 || key_2 || coin_2 || ...)`` with 36-byte keys
    (txid, big-endian vout) sorted ascending. Anyone holding the coin set can recompute
    it, whatever database they keep it in; two nodes at the same tip must agree on it.
    """
    h = tagged_hasher(TAG_UTXO_SET)
    for key, value in entries:
        h.update(key)
        h.update(value)
    return h.digest()  # type: ignore[no-any-return]


def memory_utxo_hash(coins: MemoryCoins) -> bytes:
    """The same commitment computed from an in-memory coin set (the reference)."""
    return utxo_set_hash(
        (op.key(), coins.coins[op].encode()) for op in sorted(coins.coins, key=OutPoint.key)
    )
