"""The integer forward pass, batched, with a KV cache (specs/exact.md §3).

Formats. A value written ``x : Q(f, b)`` is the integer ``X = x * 2^f`` kept in int64
with ``|X| < 2^b``; a value that would pass its bound is saturated to ``±(2^b - 1)``
(``arith.saturate``), identically on every node. The formats of one layer:

    residual h                 Q(16, 40)
    q, k, v (after RoPE)       Q(10, 22)
    attention output           Q(10, 22)
    gate, up                   Q(12, 28)
    silu(gate) * up            Q(24, 47)
    logits                     Q(16, 40)

Linear layers take 13-bit activation codes (``|a| <= 4095``) made per token by
``quantize_rms`` (an RMSNorm folded into the quantisation) or ``quantize_plain``, with
a per-token scale ``mu * 2^-kappa``; ``rescale`` turns the exact integer accumulator into
the output format with one rounding shift. Matmuls run on a ``Backend``; attention
matmuls run in float64, where every partial sum is an integer below 2^53 and therefore
exact in any summation order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from workloads.exact.arith import bit_length, isqrt48, round_div, round_shift, saturate
from workloads.exact.matmul import Backend, make_backend
from workloads.exact.model import ExactModel, IntLinear
from workloads.exact.tables import EXP_IN_BITS, ROPE_BITS, SIGMOID_IN_BITS, SIGMOID_RANGE

ACT_BITS = 13  # activation codes are signed 13-bit: |a| <= 4095
ACT_MAX = (1 << (ACT_BITS - 1)) - 1
RESIDUAL = (16, 40)
QKV = (10, 22)
GATE_UP = (12, 28)
HIDDEN = (24, 47)
LOGITS = (16, 40)
NORM_BITS = 24  # quantize_rms shifts each token right until max |h| has at most 24 bits
NEG = -(1 << 62)  # score of a key a query may not see


@dataclass
class KVCache:
    """Keys and values after RoPE, as float64 (exact integers), and which slots hold a
    real token (False for left padding)."""

    keys: list[torch.Tensor]  # per layer [batch, kv_heads, capacity, head_dim]
    values: list[torch.Tensor]
    valid: torch.Tensor  # bool [batch, capacity]
    length: int = 0  # slots filled


@dataclass
class TokenScale:
    """Per-token scale of activation codes: real input = a * mu * 2^-kappa.
    ``mu is None`` means ``mu = 2^15``, folded into the shift."""

    mu: torch.Tensor | None  # int64 [..., 1], 2^15 < mu <= 2^16
    kappa: torch.Tensor  # int64 [..., 1]


def quantize_rms(h: torch.Tensor, gain: torch.Tensor) -> tuple[torch.Tensor, TokenScale]:
    """RMSNorm(h) * gain as 13-bit codes (specs/exact.md §3.1).

    Per token: shift ``h`` right until its largest magnitude has at most 24 bits (``hs``);
    ``R = isqrt(sum(hs^2) // hidden)``; codes ``a = round(hs * gain / 2^e)`` with ``e`` the
    smallest shift that makes ``|a| < 2^12``. Since ``hs`` and ``R`` share units, the
    normalised input is ``a * 2^e * 2^-16 / R``, and ``1/R = mu * 2^-(bitlen(R) + 15)``.
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
    return a, TokenScale(mu, root_bits + 31 - e)


def quantize_plain(
    x: torch.Tensor, frac_bits: int, max_shift: int
) -> tuple[torch.Tensor, TokenScale]:
    """``x : Q(frac_bits, <= 47)`` as 13-bit codes: ``a = round(x / 2^e)``, real input
    ``a * 2^(e - frac_bits)`` (mu = 2^15, kappa = 15 + frac_bits - e).

    ``e`` is capped at ``max_shift = E_W + frac_bits - frac_out`` of the layer the codes
    feed, which keeps ``rescale``'s shift >= 0; a token past that (never seen on text:
    SmolLM2's cap is ~23x above its largest MLP activation) saturates its codes."""
    e = (bit_length(x.abs().amax(-1, keepdim=True)) - (ACT_BITS - 1)).clamp(0, max_shift)
    a = round_shift(x, e).clamp(-ACT_MAX, ACT_MAX)
    return a, TokenScale(None, 15 + frac_bits - e)


def rescale(
    acc: torch.Tensor, lin: IntLinear, mult: torch.Tensor, scale: TokenScale, frac_out: int
) -> torch.Tensor:
    """``acc * mult_j * 2^-E_W * mu * 2^-kappa`` in ``Q(frac_out)``, one rounding shift.
    Widths: ``|acc| < 2^30`` (4095 * 127 * 2048), ``mult <= 2^16``, ``mu <= 2^16``."""
    shift = lin.exp + scale.kappa - frac_out
    if scale.mu is None:
        return round_shift(acc * mult, shift - 15)
    return round_shift(acc * mult * scale.mu, shift)


@dataclass
class PreparedLinear:
    linear: IntLinear  # the artifact's matrix (its exponent)
    mult: torch.Tensor  # row multipliers on the device
    weight: Any  # the weight in the backend's form


@dataclass
class PreparedLayer:
    attn_norm: torch.Tensor
    qkv: PreparedLinear
    o: PreparedLinear
    mlp_norm: torch.Tensor
    gate_up: PreparedLinear
    down: PreparedLinear


class ExactRunner:
    """An :class:`ExactModel` bound to a device and a matmul backend."""

    def __init__(self, model: ExactModel, backend: str = "int8", device: str = "cpu") -> None:
        self.model = model
        self.config = c = model.config
        self.device = torch.device(device)
        self.backend: Backend = make_backend(backend, self.device)
        dev = self.device
        self.embed_weight = model.embed.weight.to(dev)
        self.embed_mult = model.embed.mult.to(dev)
        self.head = self._prepare(model.embed)
        self.layers = [
            PreparedLayer(
                attn_norm=layer.attn_norm.to(dev),
                qkv=self._prepare(layer.qkv),
                o=self._prepare(layer.o),
                mlp_norm=layer.mlp_norm.to(dev),
                gate_up=self._prepare(layer.gate_up),
                down=self._prepare(layer.down),
            )
            for layer in model.layers
        ]
        self.final_norm = model.final_norm.to(dev)
        t = model.tables
        self.exp_f64 = t.exp.to(dev, torch.float64)
        self.exp_last = int(t.exp.numel()) - 1
        self.exp_i64 = t.exp.to(dev)
        self.sigmoid = t.sigmoid.to(dev)
        self.rope_cos = t.rope_cos.to(dev)
        self.rope_sin = t.rope_sin.to(dev)
        # score units are 2^-20 (two Q10 factors); softmax wants (score / sqrt(hd)) in 2^-10
        self.score_shift = 20 + (c.head_dim.bit_length() - 1) // 2 - EXP_IN_BITS

    # -- pieces ---------------------------------------------------------------------

    def _prepare(self, linear: IntLinear) -> PreparedLinear:
        return PreparedLinear(
            linear, linear.mult.to(self.device), self.backend.prepare(linear.weight)
        )

    def _linear(
        self, a: torch.Tensor, scale: TokenScale, p: PreparedLinear, frac_out: int
    ) -> torch.Tensor:
        shape = a.shape
        acc = self.backend.matmul(a.reshape(-1, shape[-1]), p.weight).reshape(*shape[:-1], -1)
        return rescale(acc, p.linear, p.mult, scale, frac_out)

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        c = self.config
        if capacity > c.max_positions:
            raise ValueError(f"{capacity} positions, the model allows {c.max_positions}")
        shape = (batch, c.kv_heads, capacity, c.head_dim)
        return KVCache(
            keys=[
                torch.zeros(shape, dtype=torch.float64, device=self.device) for _ in range(c.layers)
            ],
            values=[
                torch.zeros(shape, dtype=torch.float64, device=self.device) for _ in range(c.layers)
            ],
            valid=torch.zeros((batch, capacity), dtype=torch.bool, device=self.device),
        )

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """``cos``, ``sin``: the table rows of the tokens' positions, [B, T, 1, hd]."""
        rotated = torch.roll(x, self.config.head_dim // 2, dims=-1)
        return saturate(round_shift(x * cos + rotated * sin, ROPE_BITS), QKV[1])

    def _attention(
        self, q: torch.Tensor, cache: KVCache, layer_index: int, start: int, visible: torch.Tensor
    ) -> torch.Tensor:
        c = self.config
        b, t = q.shape[0], q.shape[1]
        group = c.heads // c.kv_heads
        end = start + t
        qf = q.to(torch.float64).view(b, t, c.kv_heads, group, c.head_dim).permute(0, 2, 3, 1, 4)
        qf = qf.reshape(b, c.kv_heads, group * t, c.head_dim)
        keys = cache.keys[layer_index][:, :, :end]
        values = cache.values[layer_index][:, :, :end]
        scores = torch.matmul(qf, keys.transpose(-1, -2)).to(torch.int64)  # |.| < 2^50
        scores = scores.masked_fill(~visible, NEG)
        top = scores.amax(-1, keepdim=True)
        index = round_shift(top - scores, self.score_shift).clamp(max=self.exp_last)
        weights = torch.take(self.exp_f64, index)  # <= 2^20 (take: a flat gather, faster than [])
        total = weights.sum(-1, keepdim=True).to(torch.int64)  # < 2048 * 2^20 = 2^31, exact
        mixed = torch.matmul(weights, values).to(torch.int64)  # |.| < 2^22 * total < 2^53
        out = round_div(mixed, total)
        out = out.view(b, c.kv_heads, group, t, c.head_dim).permute(0, 3, 1, 2, 4)
        return out.reshape(b, t, c.heads * c.head_dim)

    def _visible(self, cache: KVCache, start: int, t: int) -> torch.Tensor:
        """[B, 1, group*T, end]: key s is visible to query t at slot start+t iff
        s <= start+t and (slot s holds a real token or s is the query's own slot)."""
        end = start + t
        slots = torch.arange(end, device=self.device)
        query_slots = torch.arange(start, end, device=self.device)
        causal = slots[None, :] <= query_slots[:, None]  # [T, end]
        own = slots[None, :] == query_slots[:, None]
        vis = causal[None] & (cache.valid[:, None, :end] | own[None])  # [B, T, end]
        group = self.config.heads // self.config.kv_heads
        b = vis.shape[0]
        return vis[:, None, None].expand(b, 1, group, t, end).reshape(b, 1, group * t, end)

    # -- the pass -------------------------------------------------------------------

    @torch.inference_mode()
    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        valid: torch.Tensor,
        cache: KVCache,
        logit_rows: int,
    ) -> torch.Tensor:
        """Run ``tokens`` [B, T] at RoPE ``positions`` [B, T] into the next ``T`` cache
        slots (``valid`` [B, T] False for padding); return the logits of the last
        ``logit_rows`` of the T positions, int64 [B, logit_rows, vocab] in Q(16)."""
        c = self.config
        b, t = tokens.shape
        start = cache.length
        end = start + t
        if end > cache.valid.shape[1]:
            raise ValueError(f"cache holds {cache.valid.shape[1]} positions, {end} needed")
        if int(positions.max()) >= c.max_positions:
            raise ValueError(f"position {int(positions.max())} past the model's {c.max_positions}")
        cache.valid[:, start:end] = valid
        visible = self._visible(cache, start, t)
        rows = self.embed_weight[tokens].to(torch.int64) * self.embed_mult[tokens].unsqueeze(-1)
        h = round_shift(rows, self.model.embed.exp - RESIDUAL[0])
        cos = self.rope_cos[positions].unsqueeze(2)  # [B, T, 1, hd]
        sin = self.rope_sin[positions].unsqueeze(2)
        q_width = c.heads * c.head_dim
        kv_width = c.kv_heads * c.head_dim
        for i, layer in enumerate(self.layers):
            a, scale = quantize_rms(h, layer.attn_norm)
            qkv = saturate(self._linear(a, scale, layer.qkv, QKV[0]), QKV[1])
            qk = qkv[..., : q_width + kv_width].reshape(b, t, c.heads + c.kv_heads, c.head_dim)
            qk = self._rope(qk, cos, sin)
            q = qk[:, :, : c.heads]
            k = qk[:, :, c.heads :]
            v = qkv[..., q_width + kv_width :].reshape(b, t, c.kv_heads, c.head_dim)
            cache.keys[i][:, :, start:end] = k.permute(0, 2, 1, 3).to(torch.float64)
            cache.values[i][:, :, start:end] = v.permute(0, 2, 1, 3).to(torch.float64)
            attn = self._attention(q, cache, i, start, visible)
            a, scale = quantize_plain(attn, QKV[0], layer.o.linear.exp + QKV[0] - RESIDUAL[0])
            h = saturate(h + self._linear(a, scale, layer.o, RESIDUAL[0]), RESIDUAL[1])

            a, scale = quantize_rms(h, layer.mlp_norm)
            gu = saturate(self._linear(a, scale, layer.gate_up, GATE_UP[0]), GATE_UP[1])
            gate, up = gu[..., : c.intermediate], gu[..., c.intermediate :]
            index = round_shift(gate, GATE_UP[0] - SIGMOID_IN_BITS) + (
                SIGMOID_RANGE << SIGMOID_IN_BITS
            )
            index = index.clamp(0, self.sigmoid.numel() - 1)
            # silu in Q(12): |gate| < 2^28, sigmoid <= 2^16; hidden in Q(24)
            silu = round_shift(gate * torch.take(self.sigmoid, index), 16)
            hidden = saturate(silu * up, HIDDEN[1])
            cap = layer.down.linear.exp + HIDDEN[0] - RESIDUAL[0]
            a, scale = quantize_plain(hidden, HIDDEN[0], cap)
            h = saturate(h + self._linear(a, scale, layer.down, RESIDUAL[0]), RESIDUAL[1])
        cache.length = end
        h = h[:, t - logit_rows :]
        a, scale = quantize_rms(h, self.final_norm)
        return saturate(self._linear(a, scale, self.head, LOGITS[0]), LOGITS[1])
