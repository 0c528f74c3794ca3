"""The elementwise work between two matmuls of a layer, as plain tensor functions.

``forward.ExactRunner`` runs a layer as matmul, kernel, matmul, kernel, ... Each kernel
here is everything one layer does between two matmuls (specs/exact.md §3), on int64
tensors only (float64 only where it holds integers below 2^53).

Fusing them with ``torch.compile`` was tried (torch 2.13, CPU): inductor could not compile
``frexp``'s int32 exponent, and with an integer bit length instead it compiled for minutes,
recompiled per batch shape, and ran slower than eager at decode. So they run eagerly.
"""

from __future__ import annotations

import torch

from workloads.exact.arith import round_div, round_shift, saturate
from workloads.exact.quant import (
    GATE_UP,
    HIDDEN,
    NEG,
    QKV,
    RESIDUAL,
    quantize_plain,
    quantize_rms,
    rescale,
)
from workloads.exact.tables import ROPE_BITS, SIGMOID_IN_BITS, SIGMOID_RANGE

Tensor = torch.Tensor


def attn_in(h: Tensor, gain: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Codes of the first layer's attention input (later layers get theirs from
    :func:`residual_rms`)."""
    return quantize_rms(h, gain)


def qkv_out(
    acc: Tensor,
    mult: Tensor,
    mu: Tensor,
    kappa: Tensor,
    exp: int,
    cos: Tensor,
    sin: Tensor,
    heads: int,
    kv_heads: int,
) -> tuple[Tensor, Tensor]:
    """q and k after RoPE as [B, T, heads + kv_heads, hd], and v as [B, T, kv_heads, hd]."""
    b, t, width = acc.shape
    hd = width // (heads + 2 * kv_heads)
    qkv = saturate(rescale(acc, mult, mu, kappa, exp, QKV[0]), QKV[1])
    qk = qkv[..., : (heads + kv_heads) * hd].reshape(b, t, heads + kv_heads, hd)
    rotated = torch.roll(qk, hd // 2, dims=-1)
    qk = saturate(round_shift(qk * cos + rotated * sin, ROPE_BITS), QKV[1])
    v = qkv[..., (heads + kv_heads) * hd :].reshape(b, t, kv_heads, hd)
    return qk, v


def softmax_weights(
    scores: Tensor, visible: Tensor, shift: int, exp_table: Tensor
) -> tuple[Tensor, Tensor]:
    """Integer softmax weights (float64 holding integers <= 2^20) and their row sums."""
    s = scores.to(torch.int64).masked_fill(~visible, NEG)  # |q.k| < 2^50
    top = s.amax(-1, keepdim=True)
    index = round_shift(top - s, shift).clamp(max=exp_table.numel() - 1)
    weights = torch.take(exp_table, index)
    return weights, weights.sum(-1, keepdim=True).to(torch.int64)  # < 2048 * 2^20, exact


def attn_out(mixed: Tensor, total: Tensor, heads: int, cap: int) -> tuple[Tensor, Tensor]:
    """The attention output (round(sum p v / Z), Q10) as codes for the output matrix."""
    b, kv_heads, gt, hd = mixed.shape
    t = gt * kv_heads // heads
    out = round_div(mixed.to(torch.int64), total)  # |sum p v| < 2^53
    out = (
        out.view(b, kv_heads, heads // kv_heads, t, hd)
        .permute(0, 3, 1, 2, 4)
        .reshape(b, t, heads * hd)
    )
    return quantize_plain(out, QKV[0], cap)


def residual_rms(
    acc: Tensor, mult: Tensor, kappa: Tensor, exp: int, h: Tensor, gain: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Add a plain-input matmul's output to the residual, then make the next RMS codes."""
    h = saturate(h + rescale(acc, mult, None, kappa, exp, RESIDUAL[0]), RESIDUAL[1])
    a, mu, kappa = quantize_rms(h, gain)
    return h, a, mu, kappa


def mlp_act(
    acc: Tensor, mult: Tensor, mu: Tensor, kappa: Tensor, exp: int, sigmoid: Tensor, cap: int
) -> tuple[Tensor, Tensor]:
    """gate and up, silu(gate) * up through the sigmoid table, as codes for ``down``."""
    gu = saturate(rescale(acc, mult, mu, kappa, exp, GATE_UP[0]), GATE_UP[1])
    half = gu.shape[-1] // 2
    gate, up = gu[..., :half], gu[..., half:]
    index = round_shift(gate, GATE_UP[0] - SIGMOID_IN_BITS) + (SIGMOID_RANGE << SIGMOID_IN_BITS)
    index = index.clamp(0, sigmoid.numel() - 1)
    silu = round_shift(gate * torch.take(sigmoid, index), 16)  # Q12: |gate| < 2^28, table <= 2^16
    hidden = saturate(silu * up, HIDDEN[1])  # Q24
    return quantize_plain(hidden, HIDDEN[0], cap)
