"""Formats, per-token quantisation and rescaling: the arithmetic of specs/exact.md §3.0–3.1.

Formats. A value written ``x : Q(f, b)`` is the integer ``X = x * 2^f`` kept in int64
with ``|X| < 2^b``; a value that would pass its bound is saturated to ``±(2^b - 1)``
(``arith.saturate``), identically on every node.

Linear layers take 13-bit activation codes (``|a| <= 4095``) made per token by
:func:`quantize_rms` (an RMSNorm folded into the quantisation) or :func:`quantize_plain`,
with a per-token scale ``mu * 2^-kappa``; :func:`rescale` turns the exact integer
accumulator into the output format with one rounding shift.
"""

from __future__ import annotations

import torch

from workloads.exact.arith import bit_length, isqrt48, round_div, round_shift

ACT_BITS = 13  # activation codes are signed 13-bit: |a| <= 4095
ACT_MAX = (1 << (ACT_BITS - 1)) - 1
RESIDUAL = (16, 40)  # residual stream h: Q(16, 40)
QKV = (10, 22)  # q, k, v after RoPE and the attention output: Q(10, 22)
GATE_UP = (12, 28)
HIDDEN = (24, 47)  # silu(gate) * up
LOGITS = (16, 40)
NORM_BITS = 24  # quantize_rms shifts each token right until max |h| has at most 24 bits
NEG = -(1 << 62)  # score of a key a query may not see
PLAIN_MU_BITS = 15  # quantize_plain's scale is mu = 2^15, folded into the shift


def quantize_rms(
    h: torch.Tensor, gain: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RMSNorm(h) * gain as 13-bit codes ``a`` with per-token scale ``mu * 2^-kappa``
    (specs/exact.md §3.1).

    Per token: shift ``h`` right until its largest magnitude has at most 24 bits
    (``hs``); ``R = isqrt(sum(hs^2) // hidden)``; codes ``a = round(hs * gain / 2^e)`` with
    ``e`` the smallest shift that makes ``|a| < 2^12``. Since ``hs`` and ``R`` share units,
    the normalised input is ``a * 2^e * 2^-16 / R``, and ``1/R = mu * 2^-(bitlen(R) + 15)``.
    Widths: ``|hs| <= 2^24``, ``sum(hs^2) < 2^59``, mean square ``<= 2^48``,
    ``|hs * gain| < 2^48``.
    """
    top = h.abs().amax(-1, keepdim=True)  # < 2^40
    hs = round_shift(h, (bit_length(top) - NORM_BITS).clamp(min=0))  # |hs| <= 2^24
    mean_square = (hs * hs).sum(-1, keepdim=True) // h.shape[-1]  # <= max(hs)^2 <= 2^48
    root = isqrt48(mean_square.clamp(min=1))
    root_bits = bit_length(root)
    mu = round_div(torch.bitwise_left_shift(1, root_bits + 15), root)
    v = hs * gain
    e = (bit_length(v.abs().amax(-1, keepdim=True)) - (ACT_BITS - 1)).clamp(min=0)
    a = round_shift(v, e).clamp(-ACT_MAX, ACT_MAX)
    return a, mu, root_bits + 31 - e


def quantize_plain(
    x: torch.Tensor, frac_bits: int, max_shift: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x : Q(frac_bits, <= 47)`` as 13-bit codes: ``a = round(x / 2^e)``, real input
    ``a * 2^(e - frac_bits)``: ``mu = 2^15`` (implicit) and ``kappa = 15 + frac_bits - e``.

    ``e`` is capped at ``max_shift = E_W + frac_bits - frac_out`` of the layer the codes
    feed, which keeps :func:`rescale`'s shift >= 0; a token past that (never seen on text:
    SmolLM2's cap is ~23x above its largest MLP activation) saturates its codes."""
    e = (bit_length(x.abs().amax(-1, keepdim=True)) - (ACT_BITS - 1)).clamp(0, max_shift)
    a = round_shift(x, e).clamp(-ACT_MAX, ACT_MAX)
    return a, PLAIN_MU_BITS + frac_bits - e


def rescale(
    acc: torch.Tensor,
    mult: torch.Tensor,
    mu: torch.Tensor | None,
    kappa: torch.Tensor,
    exp: int,
    frac_out: int,
) -> torch.Tensor:
    """``acc * mult_j * 2^-E_W * mu * 2^-kappa`` in ``Q(frac_out)``, one rounding shift
    (``mu is None``: the implicit 2^15 of quantize_plain). Widths: ``|acc| < 2^30``
    (4095 * 127 * 2048), ``mult <= 2^16``, ``mu <= 2^16``, so the product is < 2^62."""
    shift = exp + kappa - frac_out
    if mu is None:
        return round_shift(acc * mult, shift - PLAIN_MU_BITS)
    return round_shift(acc * mult * mu, shift)
