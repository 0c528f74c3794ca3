"""Exact work: an integer-only language model whose outputs are the same bits everywhere.

Floating-point inference changes its last bits with threads, batch shapes, kernels and
hardware, so it can only be audited within a tolerance. This package runs a model in
integer arithmetic alone, so every node can re-check a generation by equality
(specs/exact.md). The pipeline, in order:

1. **Artifact** (``model``, ``convert``, ``artifacts``). SmolLM2-135M's packaged weights
   become int8 matrices with integer row multipliers and power-of-two exponents, integer
   RMSNorm gains, decimal-derived lookup tables and the tokenizer, serialised canonically
   and named by sha256 (pinned in ``artifacts.PINNED``). A tiny synthetic model made from a
   seed takes the same path, for regtest and fast tests.
2. **Forward** (``forward``, ``arith``, ``matmul``). Each token's activations become
   13-bit codes with a per-token scale; int8 x code matmuls are exact on every backend
   (``_int_mm``, float32 within 2^24, float64, int64); everything else is int64
   elementwise work with declared widths, saturating at its bounds.
3. **Sampling and verification** (``sampling``). A token is chosen from integer logits by
   greedy argmax or by an integer inverse-CDF draw keyed by a hash of (seed, position);
   a claimed generation is verified by one teacher-forced pass that reports the first
   position that differs.

Nothing here reads a clock or a global random state; the only floats are float64 values
that hold integers below 2^53, where every operation is exact.
"""

from __future__ import annotations

import importlib
from typing import Any

from workloads.exact.constants import BACKENDS, MAX_SEED_BYTES, MAX_TEMPERATURE_MILLI, MODEL_NAMES

# The rest is imported on first use, so that importing this package (``fc`` does, to
# register its commands) does not load torch.
_LAZY = {
    "ArtifactError": "model",
    "ExactModel": "model",
    "ExactRunner": "forward",
    "load_exact_model": "artifacts",
    "model_hash": "artifacts",
    "Generation": "sampling",
    "Verdict": "sampling",
    "decode_text": "sampling",
    "encode_prompt": "sampling",
    "generate": "sampling",
    "logits_digest": "sampling",
    "verify": "sampling",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"workloads.exact.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'workloads.exact' has no attribute {name!r}")


__all__ = ["BACKENDS", "MAX_SEED_BYTES", "MAX_TEMPERATURE_MILLI", "MODEL_NAMES", *_LAZY]
