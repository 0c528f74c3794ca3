"""The integer forward pass, batched, with a KV cache (specs/exact.md §3).

A layer is matmul, kernel, matmul, kernel, ...: the matmuls run on a ``Backend``
(``matmul``), the elementwise work between them is in ``kernels``, and the arithmetic
they share (formats, quantisation, rescaling) is in ``quant``. Attention matmuls run in
float64, where every partial sum is an integer below 2^53 and therefore exact in any
summation order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from workloads.exact import kernels as k
from workloads.exact.arith import check_bound, round_shift, saturate
from workloads.exact.matmul import Backend, make_backend
from workloads.exact.model import ExactModel, IntLinear
from workloads.exact.quant import ACT_BITS, HIDDEN, LOGITS, QKV, RESIDUAL, rescale
from workloads.exact.tables import EXP_IN_BITS


@dataclass
class KVCache:
    """Keys and values after RoPE, as float64 (exact integers), and which slots hold a
    real token (False for left padding)."""

    keys: list[torch.Tensor]  # per layer [batch, kv_heads, capacity, head_dim]
    values: list[torch.Tensor]
    valid: torch.Tensor  # bool [batch, capacity]
    length: int = 0  # slots filled


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

    def __init__(
        self, model: ExactModel, backend: str = "int8", device: str = "cpu", checked: bool = False
    ) -> None:
        """``checked``: assert the declared widths of specs/exact.md §3 on every matmul
        result, code tensor and attention sum as the pass runs (slower; for tests and for
        anyone who doubts the bounds)."""
        self.model = model
        self.checked = checked
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

    def _matmul(self, a: torch.Tensor, p: PreparedLinear) -> torch.Tensor:
        """The exact accumulator of codes ``a`` [..., K] times ``p`` (int64 [..., N])."""
        shape = a.shape
        acc = self.backend.matmul(a.reshape(-1, shape[-1]), p.weight).reshape(*shape[:-1], -1)
        if self.checked:
            check_bound(a, ACT_BITS - 1, "activation codes")  # |a| <= 4095 < 2^12
            check_bound(acc, 30, "matmul accumulator")  # and mult, mu <= 2^16: products < 2^62
        return acc

    def _check(self, value: torch.Tensor, bits: int, what: str) -> None:
        if self.checked:
            check_bound(value, bits, what)

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
        group = c.heads // c.kv_heads
        rows = self.embed_weight[tokens].to(torch.int64) * self.embed_mult[tokens].unsqueeze(-1)
        h = round_shift(rows, self.model.embed.exp - RESIDUAL[0])
        cos = self.rope_cos[positions].unsqueeze(2)  # [B, T, 1, hd]
        sin = self.rope_sin[positions].unsqueeze(2)
        a, mu, kappa = k.attn_in(h, self.layers[0].attn_norm)
        self._check(mu, 17, "per-token scale mu")
        for i, layer in enumerate(self.layers):
            acc = self._matmul(a, layer.qkv)
            qk, v = k.qkv_out(
                acc, layer.qkv.mult, mu, kappa, layer.qkv.linear.exp, cos, sin, c.heads, c.kv_heads
            )
            cache.keys[i][:, :, start:end] = (
                qk[:, :, c.heads :].permute(0, 2, 1, 3).to(torch.float64)
            )
            cache.values[i][:, :, start:end] = v.permute(0, 2, 1, 3).to(torch.float64)
            q = qk[:, :, : c.heads].to(torch.float64).view(b, t, c.kv_heads, group, c.head_dim)
            q = q.permute(0, 2, 3, 1, 4).reshape(b, c.kv_heads, group * t, c.head_dim)
            scores = torch.matmul(q, cache.keys[i][:, :, :end].transpose(-1, -2))  # exact, < 2^50
            self._check(scores, 50, "attention scores")
            weights, total = k.softmax_weights(scores, visible, self.score_shift, self.exp_f64)
            mixed = torch.matmul(weights, cache.values[i][:, :, :end])  # exact, < 2^53
            self._check(total, 31, "softmax total")
            self._check(mixed, 53, "attention mix")
            cap = layer.o.linear.exp + QKV[0] - RESIDUAL[0]
            a, kappa = k.attn_out(mixed, total, c.heads, cap)
            acc = self._matmul(a, layer.o)
            h, a, mu, kappa = k.residual_rms(
                acc, layer.o.mult, kappa, layer.o.linear.exp, h, layer.mlp_norm
            )
            acc = self._matmul(a, layer.gate_up)
            cap = layer.down.linear.exp + HIDDEN[0] - RESIDUAL[0]
            a, kappa = k.mlp_act(
                acc, layer.gate_up.mult, mu, kappa, layer.gate_up.linear.exp, self.sigmoid, cap
            )
            acc = self._matmul(a, layer.down)
            gain = self.layers[i + 1].attn_norm if i + 1 < len(self.layers) else self.final_norm
            h, a, mu, kappa = k.residual_rms(
                acc, layer.down.mult, kappa, layer.down.linear.exp, h, gain
            )
        cache.length = end
        # the final RMSNorm's codes are per token: keep the rows whose logits are wanted
        a, mu, kappa = a[:, t - logit_rows :], mu[:, t - logit_rows :], kappa[:, t - logit_rows :]
        acc = self._matmul(a, self.head)
        return saturate(
            rescale(acc, self.head.mult, mu, kappa, self.head.linear.exp, LOGITS[0]), LOGITS[1]
        )
