"""Integer primitives of exact inference (specs/exact.md §2).

Every function here maps integer tensors to integer tensors with a result defined by
mathematics alone: the same inputs give the same bits on any CPU or GPU, any thread count,
any torch build. Two of them use a float64 step as a fast route to an exact answer
(``bit_length`` and ``isqrt48``); both document why the float step cannot change the result.

Widths are asserted where the caller cannot know them statically; the callers in
``forward`` cite the bound that makes each product fit in int64 (specs/exact.md §3).
"""

from __future__ import annotations

import torch

INT64_MAX = (1 << 63) - 1
FLOAT64_EXACT = 1 << 53  # every integer below this is exactly a float64


def round_shift(x: torch.Tensor, shift: torch.Tensor | int) -> torch.Tensor:
    """``floor((x + 2^(s-1)) / 2^s)``: divide by ``2^s`` rounding half up (towards +inf).

    ``shift`` is an int or an int64 tensor broadcastable to ``x``, every value >= 0
    (``s = 0`` returns ``x``). Arithmetic right shift of a two's-complement integer is
    floor division by a power of two, so the result is exact for negative ``x`` too.
    """
    if isinstance(shift, int):
        if shift < 0:
            raise ValueError(f"negative shift {shift}")
        return x if shift == 0 else (x + (1 << (shift - 1))) >> shift
    half = torch.bitwise_left_shift(1, shift) >> 1  # 0 when s == 0
    return torch.bitwise_right_shift(x + half, shift)


def bit_length(x: torch.Tensor) -> torch.Tensor:
    """``int.bit_length`` of each value of an int64 tensor with ``0 <= x < 2^53``.

    Why float64 is exact here: every integer below ``2^53`` converts to float64 without
    rounding, and ``frexp`` of an exact value returns its exponent exactly (it is a
    bit-field read, not an approximation): ``x = f * 2^e`` with ``0.5 <= f < 1`` means
    ``2^(e-1) <= x < 2^e``, so ``e`` is the bit length (and ``frexp(0)`` gives 0).
    """
    _, exponent = torch.frexp(x.to(torch.float64))
    return exponent.to(torch.int64)


def isqrt48(n: torch.Tensor) -> torch.Tensor:
    """``floor(sqrt(n))`` for ``0 <= n <= 2^48``, by one float64 square root.

    Why no correction is needed: ``n`` converts to float64 exactly and IEEE 754 requires
    ``sqrt`` to be correctly rounded, which is monotone. A root at or above an integer ``k``
    therefore rounds to at least ``k`` (``k`` is a float64). A root below ``k`` is at most
    ``sqrt(k^2 - 1) < k - 1/(2k)``, and for ``k <= 2^24`` that gap, ``>= 2^-25``, exceeds half
    an ulp of ``k`` (``<= 2^-30``), so it cannot round up to ``k``. Truncation then gives
    ``floor(sqrt(n))``. ``tests/unit/test_exact_arith.py`` checks the edges.
    """
    return torch.sqrt(n.to(torch.float64)).to(torch.int64)


def round_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``floor((2 num + den) / (2 den))``: num / den rounded half up; ``den > 0``."""
    return torch.div(2 * num + den, 2 * den, rounding_mode="floor")


def saturate(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Clamp to ``[-(2^bits - 1), 2^bits - 1]``: what a value past its declared width
    becomes, identically on every node (specs/exact.md §3, "at a bound")."""
    limit = (1 << bits) - 1
    return x.clamp(-limit, limit)


def check_bound(x: torch.Tensor, bits: int, what: str) -> None:
    """Refuse a tensor with a value of magnitude ``>= 2^bits`` (an internal invariant:
    it can only fail through a bug, never through input, since inputs are saturated)."""
    if x.numel() and int(x.abs().max()) >= 1 << bits:
        raise AssertionError(
            f"{what}: value of {int(x.abs().max()).bit_length()} bits, bound {bits}"
        )
