"""``embed``: sentence embeddings with MiniLM-L6 (all-MiniLM-L6-v2), and their audit.

An item's input is a UTF-8 text; its output is the sentence embedding as sentence-
transformers defines it for this model (mean of the last hidden states over the real
tokens, then L2-normalised), 384 float32 values, little-endian. Texts are truncated to
``max_tokens`` tokens, as the model card does.

The audit recomputes sampled items one by one (batch of one: the auditor must not depend
on which other items the worker batched them with) and compares by relative error
``||claimed - recomputed|| / ||recomputed||``. Honest noise (threads, batch composition,
re-runs) is ~1e-7; the mildest tamper measured (one layer's weights ×1.001) is ~1e-3
(specs/tolerances.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from chain.jobs import JobSpec
from workloads.audit import ItemCheck
from workloads.models import Embedder, load_embedder
from workloads.store import BlobStore
from workloads.tolerances import EmbedTolerance

DIM = 384
DEFAULT_BATCH = 32


def _texts(inputs: Sequence[bytes]) -> list[str]:
    try:
        return [blob.decode("utf-8") for blob in inputs]
    except UnicodeDecodeError as exc:
        raise ValueError(f"embed inputs are UTF-8 texts: {exc}") from None


@torch.inference_mode()
def embed_texts(texts: list[str], runtime: Embedder, max_tokens: int) -> np.ndarray:
    """One forward pass over ``texts`` (padded together): (len(texts), 384) float32."""
    batch = runtime.tokenizer(
        texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt"
    ).to(runtime.device)
    hidden = runtime.model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return vectors.float().cpu().numpy()


def encode_output(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def decode_output(output: bytes) -> np.ndarray:
    if len(output) != DIM * 4:
        raise ValueError(f"an embedding is {DIM * 4} bytes, not {len(output)}")
    vector = np.frombuffer(output, dtype="<f4")
    if not np.all(np.isfinite(vector)):
        raise ValueError("embedding has non-finite values")
    return vector


def run_items(
    spec: JobSpec,
    indices: Sequence[int],
    inputs: Sequence[bytes],
    runtime: Embedder,
    *,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[bytes]:
    texts = _texts(inputs)
    size = batch_size or DEFAULT_BATCH
    max_tokens = spec.param("max_tokens")
    outputs: list[bytes] = []
    for start in range(0, len(texts), size):
        vectors = embed_texts(texts[start : start + size], runtime, max_tokens)
        outputs.extend(encode_output(v) for v in vectors)
        if progress is not None:
            progress(len(vectors))
    return outputs


def load_runtime(store: BlobStore, spec: JobSpec, device: str = "cpu") -> Embedder:
    return load_embedder(store, spec.weights, device)


def check_items(
    spec: JobSpec,
    indices: Sequence[int],
    inputs: Sequence[bytes],
    outputs: Sequence[bytes],
    runtime: Embedder,
    tol: EmbedTolerance,
) -> list[ItemCheck]:
    checks = []
    texts = _texts(inputs)
    for index, text, output in zip(indices, texts, outputs, strict=True):
        unit = index // spec.unit_size
        try:
            claimed = decode_output(output)
        except ValueError as exc:
            checks.append(ItemCheck(unit, index, False, float("inf"), f"item {index}: {exc}"))
            continue
        (expected,) = embed_texts([text], runtime, spec.param("max_tokens"))
        distance = float(np.linalg.norm(claimed - expected) / np.linalg.norm(expected))
        passed = distance <= tol.relative
        reason = (
            ""
            if passed
            else f"item {index}: embedding off by {distance:.2e} relative (tolerance {tol.relative:.0e})"
        )
        checks.append(ItemCheck(unit, index, passed, distance, reason))
    return checks
