"""Per-block ASERT difficulty and chain work (specs/consensus.md §5.5).

ASERT ("absolutely scheduled exponentially rising targets", as in the aserti3-2d
specification) sets each block's target from how far the chain is ahead of or behind
its ideal schedule since an anchor block (here: genesis)::

    target = anchor_target * 2 ** ((parent.time - anchor.time - T * parent.height) / halflife)

Every step is integer arithmetic: the exponent is a 16.16 fixed-point number and
``2 ** frac`` is the specification's cubic approximation, so every node computes the
same target bit for bit. The rule depends only on the parent's time and height, so
there is no retarget window to game; the timewarp rule (``time-timewarp-attack``)
bounds how far a timestamp may fall behind its parent on top of that.
"""

from __future__ import annotations

RADIX_BITS = 16
RADIX = 1 << RADIX_BITS


def asert_target(
    anchor_target: int,
    anchor_time: int,
    parent_time: int,
    parent_height: int,
    block_time: int,
    halflife: int,
    max_target: int,
) -> int:
    """The target a block on top of ``parent`` must carry."""
    time_delta = parent_time - anchor_time
    # // floors toward -inf (consensus). aserti3-2d's C++ `/` truncates toward zero instead,
    # so for a negative, inexact quotient this exponent is one 1/65536 step lower than BCH's.
    exponent = ((time_delta - block_time * parent_height) * RADIX) // halflife
    shifts = exponent >> RADIX_BITS
    frac = exponent & (RADIX - 1)
    # 2**(frac/65536) * 65536, to within 0.013 %, by the aserti3-2d cubic.
    factor = RADIX + (
        (195_766_423_245_049 * frac + 971_821_376 * frac**2 + 5_127 * frac**3 + (1 << 47)) >> 48
    )
    target = anchor_target * factor
    target = target << shifts if shifts >= 0 else target >> -shifts
    target >>= RADIX_BITS
    if target == 0:
        return 1
    return min(target, max_target)


def block_work(target: int) -> int:
    """Expected number of draws to find one at or below ``target``."""
    return (1 << 256) // (target + 1)
