"""The lookup tables of exact inference, computed in decimal arithmetic (specs/exact.md §4).

A table entry is ``round_half_even(f(x) * 2^k)`` for a transcendental ``f``. Computing
``f`` with the platform's ``libm`` would make the table depend on the C library (``exp``
and ``cos`` are not required to be correctly rounded), so the tables are computed with
Python's ``decimal`` module at 50 significant digits: its ``exp`` and ``ln`` are correctly
rounded and its other operations are exactly specified, so every machine derives the same
integers. The tables are stored in the model artifact as well, and that artifact's hash
is pinned, so a node never recomputes them to run the model.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

PRECISION = 50

# exp(-i / 2^EXP_IN_BITS) * 2^EXP_OUT_BITS, for softmax weights and sampling weights.
EXP_IN_BITS = 10
EXP_OUT_BITS = 20
# sigmoid(i / 2^SIGMOID_IN_BITS - SIGMOID_RANGE) * 2^SIGMOID_OUT_BITS
SIGMOID_IN_BITS = 10
SIGMOID_RANGE = 16
SIGMOID_OUT_BITS = 16
# cos and sin of RoPE angles, * 2^ROPE_BITS
ROPE_BITS = 16


def _context() -> Context:
    return Context(prec=PRECISION, rounding=ROUND_HALF_EVEN)


def _to_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def exp_table() -> list[int]:
    """``round(2^20 exp(-i/1024))`` for ``i = 0, 1, ...`` up to and including the first
    entry that rounds to 0; every index past the end also means 0."""
    table: list[int] = []
    with localcontext(_context()):
        scale = Decimal(2) ** EXP_OUT_BITS
        step = Decimal(2) ** EXP_IN_BITS
        i = 0
        while True:
            value = _to_int((-Decimal(i) / step).exp() * scale)
            table.append(value)
            if value == 0:
                return table
            i += 1


def sigmoid_table() -> list[int]:
    """``round(2^16 sigmoid(i/1024 - 16))`` for ``i = 0 .. 32768`` (x from -16 to +16)."""
    out: list[int] = []
    with localcontext(_context()):
        scale = Decimal(2) ** SIGMOID_OUT_BITS
        step = Decimal(2) ** SIGMOID_IN_BITS
        for i in range(2 * SIGMOID_RANGE * (1 << SIGMOID_IN_BITS) + 1):
            x = Decimal(i) / step - SIGMOID_RANGE
            out.append(_to_int(scale / (1 + (-x).exp())))
    return out


def _cos_sin(angle: Decimal) -> tuple[Decimal, Decimal]:
    """Taylor series of cos and sin for ``0 <= angle <= 1``, to the context's precision."""
    cos, sin = Decimal(0), Decimal(0)
    term = Decimal(1)  # angle^k / k!
    k = 0
    tiny = Decimal(10) ** -(PRECISION + 5)
    while abs(term) > tiny or k < 2:
        if k % 4 == 0:
            cos += term
        elif k % 4 == 1:
            sin += term
        elif k % 4 == 2:
            cos -= term
        else:
            sin -= term
        k += 1
        term = term * angle / k
    return cos, sin


def rope_tables(
    head_dim: int, theta: int, positions: int
) -> tuple[list[list[int]], list[list[int]]]:
    """``cos`` and signed ``sin`` rows, one per position, ``head_dim`` wide, * 2^16.

    Frequency ``i`` (``0 <= i < head_dim/2``) turns by ``theta^(-2i/head_dim)`` radians per
    position. Entry ``[p][i]`` and ``[p][i + head_dim/2]`` of the cos table are
    ``cos(p * angle_i)``; the sin table holds ``-sin`` in the first half and ``+sin`` in the
    second, so that ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = [x2, x1]`` is
    the rotation. Rows come from the angle-addition recurrence in 50-digit arithmetic.
    """
    half = head_dim // 2
    cos_rows = [[0] * head_dim for _ in range(positions)]
    sin_rows = [[0] * head_dim for _ in range(positions)]
    with localcontext(_context()):
        scale = Decimal(2) ** ROPE_BITS
        ln_theta = Decimal(theta).ln()
        for i in range(half):
            angle = (-(Decimal(2 * i) / head_dim) * ln_theta).exp()  # <= 1
            c1, s1 = _cos_sin(angle)
            c, s = Decimal(1), Decimal(0)
            for p in range(positions):
                ci, si = _to_int(c * scale), _to_int(s * scale)
                cos_rows[p][i] = cos_rows[p][i + half] = ci
                sin_rows[p][i], sin_rows[p][i + half] = -si, si
                c, s = c * c1 - s * s1, s * c1 + c * s1
    return cos_rows, sin_rows
