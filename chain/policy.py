"""Relay policy: what this node keeps in its mempool and passes on, beyond consensus.

Consensus (``checks``, ``contextual``) says which transactions a block may contain. Policy
says which of those this node is willing to hold in memory and relay to peers, and it is
deliberately stricter: every byte a peer makes us store, verify and forward costs us, and
the only thing that pays for it is the fee. So a transaction must pay at least a minimum
fee *rate* (fee per encoded byte), may not create outputs worth less than the cost of
spending them (dust), and may not be so large that a few of them crowd out everything
else. None of this is consensus: a block is free to ignore all of it, and a node that
sets different numbers stays on the same chain (specs/consensus.md §8.2 lists the codes).

Fee rates are exact rationals, never floats. Configured rates are integers in base units
per 1,000 bytes (as Bitcoin Core's per-kvB rates), so a rate below one unit per byte is
still expressible; a transaction's own rate is the pair ``fee / size`` and two rates are
compared by cross-multiplying (:class:`FeeRate`). The fee a rate asks of ``size`` bytes is
rounded *up*, so "pays the rate" is exactly ``fee * 1000 >= rate * size``.

Failures raise :class:`PolicyError`, a ``RuleError`` with its own codes from the policy
section of ``errors.Reject``. Callers must not treat it as invalidity: the same
transaction may be fine tomorrow (a fuller or emptier mempool) or in someone's block.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

from chain.errors import Reject, RuleError
from chain.transaction import MAX_TX_SIZE, Transaction

RATE_SCALE = 1_000  # configured fee rates are base units per this many bytes

# Defaults, in the spirit of Bitcoin Core (which counts virtual bytes; we count encoded bytes).
DEFAULT_MIN_RELAY_FEE = 1_000  # 1 unit per byte: the price of relaying a byte to the network
DEFAULT_INCREMENTAL_RELAY_FEE = 1_000  # what a replacement or a raised floor adds per byte
DEFAULT_DUST_RELAY_FEE = 3_000  # an output worth less than spending it at this rate is dust
DEFAULT_MAX_STANDARD_TX_SIZE = 40_000  # 1/50 of a block; consensus allows 100,000
DEFAULT_MAX_MEMPOOL_BYTES = 100_000_000  # ~50 full blocks of waiting transactions
DEFAULT_MEMPOOL_EXPIRY = 14 * 24 * 60 * 60  # seconds: a transaction nobody mines is dropped
DEFAULT_MAX_ANCESTORS = 25  # in-mempool ancestors of a transaction, itself included
DEFAULT_MAX_ANCESTOR_SIZE = 101_000  # bytes of those ancestors together
DEFAULT_MAX_DESCENDANTS = 25  # in-mempool descendants of any transaction, itself included
DEFAULT_MAX_DESCENDANT_SIZE = 101_000
DEFAULT_MAX_REPLACEMENTS = 100  # transactions one replacement may evict (BIP125 rule 5)
DEFAULT_MAX_ORPHANS = 100  # transactions waiting for a missing parent
DEFAULT_MAX_ORPHAN_BYTES = 500_000
DEFAULT_MAX_ORPHAN_TX_SIZE = 10_000  # a larger orphan is not kept; its parent comes first
DEFAULT_ORPHAN_EXPIRY = 20 * 60  # seconds an orphan waits for its parent
DEFAULT_ROLLING_FEE_HALFLIFE = 12 * 60 * 60  # seconds: how fast a raised floor decays

# Size of the input that will spend an output, and of the output itself, as encoded:
# input  = fixarray(3) + bin8 txid (2 + 32) + uint32 index (<= 5) + bin8 signature (2 + 64)
# output = fixarray(2) + int amount (<= 9) + bin8 key (2 + 32)
SPENDING_INPUT_SIZE = 106
OUTPUT_SIZE = 44


class PolicyError(RuleError):
    """This node's policy refused the transaction. Not a consensus failure: the same
    transaction may be valid in a block and may be accepted later; never ban for it."""


class FeeRate:
    """An exact fee rate ``fee / size`` (base units per byte).

    Ordering and equality cross-multiply, so ``FeeRate(1, 2) == FeeRate(2, 4)`` and no
    rounding ever decides which transaction goes first. A negative fee gives the reverse
    order, which the block template uses to turn a min-heap into a max-heap.
    """

    __slots__ = ("fee", "size")

    def __init__(self, fee: int, size: int) -> None:
        if size <= 0:
            raise ValueError("a fee rate needs a positive size")
        self.fee = fee
        self.size = size

    def _cmp(self, other: FeeRate) -> int:
        left, right = self.fee * other.size, other.fee * self.size
        return (left > right) - (left < right)

    def __lt__(self, other: FeeRate) -> bool:
        return self._cmp(other) < 0

    def __le__(self, other: FeeRate) -> bool:
        return self._cmp(other) <= 0

    def __gt__(self, other: FeeRate) -> bool:
        return self._cmp(other) > 0

    def __ge__(self, other: FeeRate) -> bool:
        return self._cmp(other) >= 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeeRate) and self._cmp(other) == 0

    def __hash__(self) -> int:
        g = gcd(self.fee, self.size)
        return hash((self.fee // g, self.size // g))

    def per_kb(self) -> int:
        """The rate in units per 1,000 bytes, rounded down (for floors and display)."""
        return self.fee * RATE_SCALE // self.size

    def __repr__(self) -> str:
        return f"FeeRate({self.fee}/{self.size})"


def fee_for(rate_per_kb: int, size: int) -> int:
    """The fee ``rate_per_kb`` asks of ``size`` bytes, rounded up (never zero for a
    non-zero rate, so no transaction rides for free on rounding)."""
    return -(-rate_per_kb * size // RATE_SCALE)


def pays(fee: int, size: int, rate_per_kb: int) -> bool:
    """``fee`` for ``size`` bytes meets ``rate_per_kb`` (equivalent to ``fee >= fee_for``)."""
    return fee * RATE_SCALE >= rate_per_kb * size


def dust_threshold(dust_relay_fee: int) -> int:
    """Smallest non-dust amount: what creating and later spending one output costs at the
    dust rate. An output below it is worth less than the fee to spend it, so it would sit
    in everyone's coin set for ever (Bitcoin Core's 546 satoshis come from the same sum)."""
    return fee_for(dust_relay_fee, OUTPUT_SIZE + SPENDING_INPUT_SIZE)


@dataclass(frozen=True)
class PolicyConfig:
    """Every number policy uses; rates are units per 1,000 bytes, times are seconds."""

    min_relay_fee: int = DEFAULT_MIN_RELAY_FEE
    incremental_relay_fee: int = DEFAULT_INCREMENTAL_RELAY_FEE
    dust_relay_fee: int = DEFAULT_DUST_RELAY_FEE
    max_standard_tx_size: int = DEFAULT_MAX_STANDARD_TX_SIZE
    max_mempool_bytes: int = DEFAULT_MAX_MEMPOOL_BYTES
    mempool_expiry: int = DEFAULT_MEMPOOL_EXPIRY
    max_ancestors: int = DEFAULT_MAX_ANCESTORS
    max_ancestor_size: int = DEFAULT_MAX_ANCESTOR_SIZE
    max_descendants: int = DEFAULT_MAX_DESCENDANTS
    max_descendant_size: int = DEFAULT_MAX_DESCENDANT_SIZE
    max_replacements: int = DEFAULT_MAX_REPLACEMENTS
    max_orphans: int = DEFAULT_MAX_ORPHANS
    max_orphan_bytes: int = DEFAULT_MAX_ORPHAN_BYTES
    max_orphan_tx_size: int = DEFAULT_MAX_ORPHAN_TX_SIZE
    orphan_expiry: int = DEFAULT_ORPHAN_EXPIRY
    rolling_fee_halflife: int = DEFAULT_ROLLING_FEE_HALFLIFE

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if type(value) is not int or value < 0:
                raise ValueError(f"policy {name} must be a non-negative integer, got {value!r}")
        if not 0 < self.max_standard_tx_size <= MAX_TX_SIZE:
            raise ValueError(f"max_standard_tx_size must be in 1..{MAX_TX_SIZE}")
        if self.max_mempool_bytes < self.max_standard_tx_size:
            raise ValueError("max_mempool_bytes must hold at least one largest transaction")
        if self.max_orphan_tx_size > self.max_orphan_bytes:
            raise ValueError("max_orphan_tx_size must not exceed max_orphan_bytes")
        if min(self.max_ancestors, self.max_descendants, self.rolling_fee_halflife) < 1:
            raise ValueError("chain limits and the fee half-life must be at least 1")


DEFAULT_POLICY = PolicyConfig()


def check_standard(tx: Transaction, config: PolicyConfig) -> None:
    """Context-free policy, run after ``check_transaction``: the coinbase kind is never
    relayed (only a block producer makes one), the size stays under the standard limit,
    and no output is dust."""
    if tx.is_coinbase:
        raise PolicyError(Reject.POLICY_COINBASE, "a coinbase is only valid in a block")
    if tx.size > config.max_standard_tx_size:
        raise PolicyError(Reject.POLICY_TX_SIZE, f"{tx.size} bytes > {config.max_standard_tx_size}")
    threshold = dust_threshold(config.dust_relay_fee)
    for n, out in enumerate(tx.outputs):
        if out.amount < threshold:
            raise PolicyError(Reject.POLICY_DUST, f"output {n} pays {out.amount} < {threshold}")
