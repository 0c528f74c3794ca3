"""Exact work on the real model: SmolLM2-135M in integers (slow: ~1-2 min on 2 cores).

The artifact re-derives to its pinned hash; backends agree on the logits; prefill and
decode agree at ~900 tokens of context; and the fp32 model's own greedy tokens, which a
lazy or dishonest worker might submit, are refused at the first position where the
integer model differs from them.
"""

from __future__ import annotations

import pytest
import torch

from workloads.exact import ExactRunner, encode_prompt, generate, load_exact_model, verify
from workloads.exact.artifacts import PINNED, derive
from workloads.exact.model import serialise

pytestmark = pytest.mark.slow

QUESTION = "What is the difference between a benign and a malignant tumour?"
SEED = bytes.fromhex("c0ffee" * 8)


@pytest.fixture(scope="module")
def model(exact_store):  # type: ignore[no-untyped-def]
    return load_exact_model(exact_store, "smollm2")


@pytest.fixture(scope="module")
def runner(model):  # type: ignore[no-untyped-def]
    return ExactRunner(model, "int8")


def test_smollm2_rederives_to_the_pinned_hash(exact_store, model) -> None:  # type: ignore[no-untyped-def]
    again = derive(exact_store, "smollm2")
    serialise(again)
    assert again.sha256.hex() == PINNED["smollm2"] == model.sha256.hex()


def _prefill(runner: ExactRunner, tokens: list[int], chunks: list[int]) -> torch.Tensor:
    """Logits of every position, fed in the given chunk sizes through one KV cache."""
    cache = runner.new_cache(1, len(tokens))
    rows, start = [], 0
    for size in chunks:
        x = torch.tensor([tokens[start : start + size]])
        pos = torch.arange(start, start + size)[None]
        rows.append(runner.forward(x, pos, torch.ones_like(x, dtype=torch.bool), cache, size)[0])
        start += size
    return torch.cat(rows)


def test_backends_agree(model, runner) -> None:  # type: ignore[no-untyped-def]
    prompt = encode_prompt(model, QUESTION, chat=True)
    reference = _prefill(runner, prompt, [len(prompt)])
    for backend in ("fp32", "fp64"):
        assert torch.equal(
            _prefill(ExactRunner(model, backend), prompt, [len(prompt)]), reference
        ), backend


def test_prefill_equals_decode_at_900_tokens(model, runner) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(
        f"Patient {i} received chemotherapy cycle {i % 6 + 1} and reported fatigue."
        for i in range(80)
    )
    long = encode_prompt(model, text)[:896]
    assert len(long) == 896
    whole = _prefill(runner, long, [896])
    pieces = _prefill(runner, long, [600, 250, 1, 1, 44])
    assert torch.equal(whole, pieces)
    out = generate(runner, [long], [SEED], 8, 700, stop_at_eos=False)[0]
    checked = ExactRunner(model, "int8", checked=True)  # every declared width asserted
    verdict = verify(checked, long, SEED, out.tokens, 8, 700, stop_at_eos=False)
    assert verdict.ok and verdict.row_digests == out.row_digests


def test_the_fp32_models_tokens_are_refused(exact_store, model, runner) -> None:  # type: ignore[no-untyped-def]
    from workloads.models import load_causal_lm
    from workloads.store import import_packaged_model

    lm = load_causal_lm(exact_store, import_packaged_model(exact_store, "llama-smollm2-135m"))
    prompt = encode_prompt(model, QUESTION, chat=True)
    with torch.inference_mode():
        fp32 = lm.model.generate(
            torch.tensor([prompt]), max_new_tokens=32, do_sample=False, min_new_tokens=32
        )
    fp32_tokens = fp32[0, len(prompt) :].tolist()
    exact_tokens = generate(runner, [prompt], [SEED], 32, 0, stop_at_eos=False)[0].tokens
    differ = [j for j, (a, b) in enumerate(zip(fp32_tokens, exact_tokens, strict=True)) if a != b]
    assert differ, "the fp32 and integer models agree on all 32 tokens: pick another prompt"
    verdict = verify(runner, prompt, SEED, fp32_tokens, 32, 0, stop_at_eos=False)
    assert not verdict.ok and verdict.position == differ[0]
    assert verdict.expected == exact_tokens[differ[0]]
    # the honest integer tokens pass, as a control
    assert verify(runner, prompt, SEED, exact_tokens, 32, 0, stop_at_eos=False).ok


def test_sampled_generation_is_text(model, runner) -> None:  # type: ignore[no-untyped-def]
    from workloads.exact import decode_text

    prompt = encode_prompt(model, QUESTION, chat=True)
    out = generate(runner, [prompt], [SEED], 24, 700)[0]
    text = decode_text(model, out.tokens)
    assert "tumo" in text.lower() or "cancer" in text.lower() or "cell" in text.lower(), text
    assert verify(runner, prompt, SEED, out.tokens, 24, 700).ok
