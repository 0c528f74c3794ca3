"""Amounts are integers in base units. No floats anywhere near money."""

from __future__ import annotations

COIN = 100_000_000  # base units in one FC
MAX_MONEY = 21_000_000 * COIN  # no amount, and no sum of amounts, may exceed this


def money_range(amount: int) -> bool:
    """True when ``amount`` is a valid amount on its own (the 2010 overflow lesson)."""
    return 0 <= amount <= MAX_MONEY


def format_amount(units: int) -> str:
    """Render base units as an exact decimal FC string, e.g. ``12.50000000``."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), COIN)
    return f"{sign}{whole}.{frac:08d}"
