"""Amounts as people write them: exact decimal strings, never floats.

``parse_amount("0.1")`` is exactly 10,000,000 units; a float would make it
10,000,000.000000002 or 9,999,999.999999998 depending on the path it took. So amounts are
parsed from their text with :class:`decimal.Decimal`, and anything that is not a plain
decimal number of FC with at most eight decimals, within ``MAX_MONEY``, is refused with
a message that says what is wrong.
"""

from __future__ import annotations

import re
from decimal import Decimal

from chain.amounts import COIN, MAX_MONEY

_PLAIN = re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+")
MAX_FEE_RATE_KB = 10**9  # units per 1,000 bytes: a million units a byte


class AmountError(ValueError):
    pass


def parse_amount(text: str) -> int:
    """``"1.5"`` FC to 150,000,000 base units, exactly."""
    stripped = text.strip()
    if not _PLAIN.fullmatch(stripped):
        raise AmountError(f"amount {text!r}: write a plain decimal number of FC, e.g. 0.25")
    value = Decimal(stripped)
    if value.as_tuple().exponent < -8:  # type: ignore[operator]
        raise AmountError(f"amount {text!r}: at most 8 decimals (1 unit = 0.00000001 FC)")
    units = int(value * COIN)
    if units <= 0:
        raise AmountError(f"amount {text!r}: must be more than zero")
    if units > MAX_MONEY:
        raise AmountError(f"amount {text!r}: more than the 21,000,000 FC that can ever exist")
    return units


def parse_fee_rate_kb(text: str) -> int:
    """A fee rate as ``fc wallet send --fee-rate`` takes it: a whole number of base units
    per 1,000 bytes, the unit of the node's policy, ``/fees/estimate`` and ``/mempool``
    (``"1000"`` is one unit per byte). Returned unchanged, so what the wallet reports is
    what was typed."""
    stripped = text.strip()
    if not re.fullmatch(r"[0-9]+", stripped):
        raise AmountError(f"fee rate {text!r}: a whole number of units per 1,000 bytes, e.g. 1000")
    value = int(stripped)
    if value <= 0 or value > MAX_FEE_RATE_KB:
        raise AmountError(
            f"fee rate {text!r}: outside 1 … {MAX_FEE_RATE_KB:,} units per 1,000 bytes"
        )
    return value


def parse_fee_rate(text: str) -> int:
    """A fee rate in base units per *byte* (``"2"``, ``"1.5"``) to the protocol's units per
    1,000 bytes, exactly: a conversion helper only; ``fc`` takes per-1,000-byte rates
    (:func:`parse_fee_rate_kb`)."""
    stripped = text.strip()
    if not _PLAIN.fullmatch(stripped):
        raise AmountError(f"fee rate {text!r}: units per byte, a plain decimal number")
    value = Decimal(stripped) * 1000
    if value != value.to_integral_value():
        raise AmountError(f"fee rate {text!r}: at most 3 decimals (per 1,000 bytes)")
    if value <= 0 or value > MAX_FEE_RATE_KB:
        raise AmountError(f"fee rate {text!r}: outside (0, 1,000,000] units per byte")
    return int(value)
