"""Deriving integer models: SmolLM2-135M from its packaged weights, and a tiny synthetic
model from a seed (specs/exact.md §6).

The conversion is deterministic: float64 arithmetic on the fp32 weights with only
correctly-rounded IEEE operations (``abs``, ``max``, division, multiplication by a power
of two, round-half-even), plus the decimal tables of ``tables``. Anyone who runs it gets
the same integers, the same artifact bytes and the same hash; ``artifacts`` pins that hash.

Per matrix ``W`` [N, K] (``quantize_matrix``): ``s_j = max_k |W_jk| / 127``;
``E = 16 - frexp(max_j s_j).exponent`` so the largest multiplier lies in [2^15, 2^16);
``mult_j = max(1, rint(s_j * 2^E))``; ``q_jk = clip(rint(W_jk * 2^E / mult_j), -127, 127)``.
RMSNorm gains become ``rint(g * 2^16)``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch

from workloads.exact.model import ExactConfig, ExactLayer, ExactModel, ExactTables, IntLinear
from workloads.exact.tables import exp_table, rope_tables, sigmoid_table

SMOLLM2_CHAT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def quantize_matrix(w: np.ndarray) -> IntLinear:
    """Per-output-row int8 quantisation with integer multipliers (see the module doc)."""
    w = np.asarray(w, dtype=np.float64)
    scale = np.abs(w).max(axis=1) / 127.0
    _, exponent = math.frexp(float(scale.max()))
    e = 16 - exponent
    if not 16 <= e <= 62:
        raise ValueError(f"weights too large or too small for the integer format (E = {e})")
    mult = np.maximum(np.rint(scale * 2.0**e), 1.0)
    q = np.clip(np.rint(w * 2.0**e / mult[:, None]), -127, 127)
    return IntLinear(
        weight=torch.from_numpy(q.astype(np.int8)),
        mult=torch.from_numpy(mult.astype(np.int64)),
        exp=e,
    )


def quantize_gain(g: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.rint(np.asarray(g, dtype=np.float64) * 65536.0).astype(np.int64))


def make_tables(config: ExactConfig) -> ExactTables:
    cos, sin = rope_tables(config.head_dim, config.rope_theta, config.max_positions)
    return ExactTables(
        exp=torch.tensor(exp_table(), dtype=torch.int64),
        sigmoid=torch.tensor(sigmoid_table(), dtype=torch.int64),
        rope_cos=torch.tensor(cos, dtype=torch.int64),
        rope_sin=torch.tensor(sin, dtype=torch.int64),
    )


# -- SmolLM2-135M ---------------------------------------------------------------------------


def smollm2_config() -> ExactConfig:
    return ExactConfig(
        name="smollm2-135m-exact",
        vocab=49152,
        hidden=576,
        layers=30,
        heads=9,
        kv_heads=3,
        head_dim=64,
        intermediate=1536,
        rope_theta=100000,
        max_positions=2048,
        eos_token_id=2,
        chat_system=SMOLLM2_CHAT_SYSTEM,
    )


def convert_smollm2(state: dict[str, Any], tokenizer_json: bytes) -> ExactModel:
    """The integer model from SmolLM2's fp32 state dict (transformers' names)."""
    config = smollm2_config()

    def w(name: str) -> np.ndarray:
        return np.asarray(state[name], dtype=np.float64)

    # The embedding is tied to the output head; the fp32 cache keeps it under either name.
    embed_name = (
        "model.embed_tokens.weight" if "model.embed_tokens.weight" in state else "lm_head.weight"
    )
    layers = []
    for i in range(config.layers):
        p = f"model.layers.{i}."
        qkv = np.concatenate(
            [
                w(p + "self_attn.q_proj.weight"),
                w(p + "self_attn.k_proj.weight"),
                w(p + "self_attn.v_proj.weight"),
            ]
        )
        gate_up = np.concatenate([w(p + "mlp.gate_proj.weight"), w(p + "mlp.up_proj.weight")])
        layers.append(
            ExactLayer(
                attn_norm=quantize_gain(w(p + "input_layernorm.weight")),
                qkv=quantize_matrix(qkv),
                o=quantize_matrix(w(p + "self_attn.o_proj.weight")),
                mlp_norm=quantize_gain(w(p + "post_attention_layernorm.weight")),
                gate_up=quantize_matrix(gate_up),
                down=quantize_matrix(w(p + "mlp.down_proj.weight")),
            )
        )
    return ExactModel(
        config=config,
        tokenizer_json=tokenizer_json,
        embed=quantize_matrix(w(embed_name)),
        layers=layers,
        final_norm=quantize_gain(w("model.norm.weight")),
        tables=make_tables(config),
    )


# -- the tiny synthetic model ---------------------------------------------------------------


def tiny_config() -> ExactConfig:
    return ExactConfig(
        name="tiny-exact",
        vocab=49152,
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        head_dim=16,
        intermediate=128,
        rope_theta=10000,
        max_positions=1024,
        eos_token_id=2,
        chat_system=SMOLLM2_CHAT_SYSTEM,
    )


def _stream(seed: bytes, name: str, n: int) -> np.ndarray:
    """``n`` bytes of SHAKE-256(seed || name): the synthetic model's only randomness."""
    return np.frombuffer(hashlib.shake_256(seed + b"/" + name.encode()).digest(n), dtype=np.uint8)


def _synthetic_linear(seed: bytes, name: str, rows: int, cols: int, exp: int) -> IntLinear:
    raw = _stream(seed, name + ".weight", rows * cols).astype(np.int64) - 128
    weight = np.clip(raw, -127, 127).astype(np.int8).reshape(rows, cols)
    m = _stream(seed, name + ".mult", 2 * rows).astype(np.int64)
    mult = (1 << 15) + (m[0::2] << 7) + (m[1::2] >> 1)  # [2^15, 2^16)
    return IntLinear(torch.from_numpy(weight), torch.from_numpy(mult), exp)


def _synthetic_gain(seed: bytes, name: str, n: int) -> torch.Tensor:
    raw = _stream(seed, name, n).astype(np.int64)
    return torch.from_numpy((1 << 15) + (raw << 8))  # gains in [0.5, 1.5)


def synthetic_model(seed: bytes, tokenizer_json: bytes) -> ExactModel:
    """A small random integer model (same code path as SmolLM2) for regtest and tests.
    Exponents give weights a spread near 1/sqrt(fan-in), so activations neither vanish
    nor saturate."""
    config = tiny_config()
    d, kv = config.hidden, config.kv_heads * config.head_dim
    layers = [
        ExactLayer(
            attn_norm=_synthetic_gain(seed, f"{i}.attn_norm", d),
            qkv=_synthetic_linear(seed, f"{i}.qkv", d + 2 * kv, d, 25),
            o=_synthetic_linear(seed, f"{i}.o", d, d, 25),
            mlp_norm=_synthetic_gain(seed, f"{i}.mlp_norm", d),
            gate_up=_synthetic_linear(seed, f"{i}.gate_up", 2 * config.intermediate, d, 25),
            down=_synthetic_linear(seed, f"{i}.down", d, config.intermediate, 26),
        )
        for i in range(config.layers)
    ]
    return ExactModel(
        config=config,
        tokenizer_json=tokenizer_json,
        embed=_synthetic_linear(seed, "embed", config.vocab, d, 24),
        layers=layers,
        final_norm=_synthetic_gain(seed, "final_norm", d),
        tables=make_tables(config),
    )
