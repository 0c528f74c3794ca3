"""The ``generate`` kind: honest runs pass the audit, every tamper tried is caught.

One SmolLM2-135M load per module (the store caches its fp32 weights). Tampered workers
are copies of the model (deepcopy, ~0.5 GB each, freed after use). Each test records the
measured distance (``record_property`` and a printed line, shown with ``pytest -s``).
"""

from __future__ import annotations

import copy
import gc
from types import SimpleNamespace

import pytest
import torch

from chain.encoding import pack
from chain.jobs import JobSpec, Kind
from workloads import generate as g
from workloads.models import load_causal_lm
from workloads.store import BlobStore, import_packaged_model
from workloads.tolerances import GENERATE, GenerateTolerance

ARCH = "llama-smollm2-135m"
PROMPTS = [
    b"The capital of France is",
    b"Once upon a time, in a small village by the sea,",
    b"def fibonacci(n):",
]
MAX_NEW = 8
TOL = GENERATE  # the default profile (specs/tolerances.md)


@pytest.fixture(scope="module")
def weights_and_runtime(tmp_path_factory):
    store = BlobStore(tmp_path_factory.mktemp("generate-store"))
    weights = import_packaged_model(store, ARCH)
    return weights, load_causal_lm(store, weights)


@pytest.fixture(scope="module")
def runtime(weights_and_runtime):
    return weights_and_runtime[1]


def make_spec(weights: bytes, temperature_milli: int = 0, seed: int = 0, **params) -> JobSpec:
    p = {"max_prompt_tokens": 32, "max_new_tokens": MAX_NEW, "temperature_milli": temperature_milli}
    p.update(params)
    return JobSpec(Kind.GENERATE, ARCH, weights, b"\0" * 32, len(PROMPTS), p, 2, seed=seed)


@pytest.fixture(scope="module")
def greedy(weights_and_runtime):
    return make_spec(weights_and_runtime[0])


@pytest.fixture(scope="module")
def sampled(weights_and_runtime):
    return make_spec(weights_and_runtime[0], temperature_milli=700, seed=42)


@pytest.fixture(scope="module")
def greedy_outputs(greedy, runtime):
    return g.run_items(greedy, range(len(PROMPTS)), PROMPTS, runtime, batch_size=1)


@pytest.fixture(scope="module")
def sampled_outputs(sampled, runtime):
    return g.run_items(sampled, range(len(PROMPTS)), PROMPTS, runtime, batch_size=1)


def audit(spec, runtime, outputs, inputs=PROMPTS):
    return g.check_items(spec, range(len(inputs)), inputs, outputs, runtime, TOL)


def report(record_property, name: str, checks) -> float:
    distance = max(c.distance for c in checks)
    record_property(f"{name}_distance", distance)
    reasons = [c.reason for c in checks if c.reason]
    print(f"\n[generate] {name}: distance {distance:.3g} {reasons[:1]}")
    return distance


def tampered(runtime, change) -> SimpleNamespace:
    model = copy.deepcopy(runtime.model)
    change(model)
    return SimpleNamespace(model=model.eval(), tokenizer=runtime.tokenizer)


def assert_all_fail(checks) -> None:
    assert all(not c.passed for c in checks), [(c.index, c.distance) for c in checks]
    assert all(c.reason for c in checks)


# -- pure parts (no model forward) -------------------------------------------------------


def test_noise_is_a_function_of_the_job_item_and_position(weights_and_runtime):
    spec = make_spec(weights_and_runtime[0], temperature_milli=500, seed=7)
    a = g.gumbel_noise(spec, 3, 5, 1000)
    assert torch.equal(a, g.gumbel_noise(spec, 3, 5, 1000))
    assert not torch.equal(a, g.gumbel_noise(spec, 3, 6, 1000))
    assert not torch.equal(a, g.gumbel_noise(spec, 4, 5, 1000))
    other = make_spec(weights_and_runtime[0], temperature_milli=500, seed=8)
    assert not torch.equal(a, g.gumbel_noise(other, 3, 5, 1000))
    assert torch.isfinite(a).all()


def test_prompts_the_job_cannot_run_are_refused(greedy, runtime):
    assert g.encode_prompt(greedy, b"Hello world", runtime.tokenizer) == [19556, 905]
    with pytest.raises(ValueError, match="empty"):
        g.encode_prompt(greedy, b"", runtime.tokenizer)
    with pytest.raises(ValueError, match="UTF-8"):
        g.encode_prompt(greedy, b"\xff\xfe", runtime.tokenizer)
    with pytest.raises(ValueError, match="the job allows 32"):
        g.encode_prompt(greedy, b"word " * 40, runtime.tokenizer)
    with pytest.raises(ValueError, match="the job allows 32"):
        g.run_items(greedy, [0], [b"word " * 40], runtime)


def test_malformed_outputs_fail_with_a_reason(greedy, runtime, greedy_outputs):
    good = greedy_outputs[0]
    tokens, lp = g.decode_output(good, MAX_NEW, 49152)
    bad = [
        b"",
        b"\x93\x01\x02\x03",
        pack([tokens, lp.astype("<f4").tobytes()[:-4]]),  # one logprob short
        pack([[*tokens[:-1], 10**6], lp.astype("<f4").tobytes()]),  # outside the vocabulary
        pack([[], b""]),
        pack([tokens + tokens, lp.astype("<f4").tobytes() * 2]),  # too many tokens
    ]
    checks = g.check_items(greedy, [0] * len(bad), [PROMPTS[0]] * len(bad), bad, runtime, TOL)
    assert_all_fail(checks)
    assert all(c.distance == g.FAIL_DISTANCE for c in checks)


# -- honest runs -------------------------------------------------------------------------


@pytest.mark.slow
def test_honest_greedy_passes(greedy, runtime, greedy_outputs, record_property):
    checks = audit(greedy, runtime, greedy_outputs)
    distance = report(record_property, "honest_greedy", checks)
    assert all(c.passed for c in checks), [c.reason for c in checks]
    assert distance < TOL.logprob / 10
    for out in greedy_outputs:
        tokens, _ = g.decode_output(out, MAX_NEW, 49152)
        assert len(tokens) == MAX_NEW or tokens[-1] == runtime.tokenizer.eos_token_id


@pytest.mark.slow
def test_honest_sampled_passes(sampled, runtime, sampled_outputs, record_property):
    checks = audit(sampled, runtime, sampled_outputs)
    report(record_property, "honest_sampled", checks)
    assert all(c.passed for c in checks), [c.reason for c in checks]


@pytest.mark.slow
def test_batch_size_three_is_accepted(greedy, sampled, runtime, greedy_outputs, record_property):
    for spec in (greedy, sampled):
        batched = g.run_items(spec, range(len(PROMPTS)), PROMPTS, runtime, batch_size=3)
        checks = audit(spec, runtime, batched)
        report(record_property, f"honest_batch3_t{spec.param('temperature_milli')}", checks)
        assert all(c.passed for c in checks), [c.reason for c in checks]
    tokens = [g.decode_output(o, MAX_NEW, 49152)[0] for o in greedy_outputs]
    again = g.run_items(greedy, range(len(PROMPTS)), PROMPTS, runtime, batch_size=3)
    assert [g.decode_output(o, MAX_NEW, 49152)[0] for o in again] == tokens


@pytest.mark.slow
def test_one_thread_is_accepted(greedy, runtime, greedy_outputs, record_property):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = g.run_items(greedy, range(len(PROMPTS)), PROMPTS, runtime, batch_size=1)
    finally:
        torch.set_num_threads(threads)
    checks = audit(greedy, runtime, single)
    report(record_property, "honest_one_thread", checks)
    assert all(c.passed for c in checks), [c.reason for c in checks]


# -- tampers: each must be caught --------------------------------------------------------


def _drop_last_layers(model) -> None:
    model.model.layers = model.model.layers[:-2]
    model.config.num_hidden_layers -= 2


def _scale_one_layer(model) -> None:
    with torch.no_grad():
        for p in model.model.layers[15].parameters():
            p.mul_(1.001)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, change",
    [
        ("other_model_two_layers_fewer", _drop_last_layers),
        ("one_layer_weights_x1.001", _scale_one_layer),
        ("bf16_instead_of_fp32", lambda m: m.to(torch.bfloat16)),
    ],
)
def test_a_different_model_is_caught(greedy, runtime, record_property, name, change):
    worker = tampered(runtime, change)
    try:
        claimed = g.run_items(greedy, range(len(PROMPTS)), PROMPTS, worker, batch_size=3)
    finally:
        del worker
        gc.collect()
    checks = audit(greedy, runtime, claimed)
    report(record_property, name, checks)
    assert_all_fail(checks)


@pytest.mark.slow
def test_a_prompt_prefix_is_caught(greedy, runtime, record_property):
    claimed = g.run_items(
        greedy, range(len(PROMPTS)), [b"Note: " + p for p in PROMPTS], runtime, batch_size=3
    )
    checks = audit(greedy, runtime, claimed)
    report(record_property, "prompt_prefix", checks)
    assert_all_fail(checks)


@pytest.mark.slow
def test_invented_text_with_genuine_logprobs_is_caught(greedy, runtime, record_property):
    text = " the quick brown fox jumps over the lazy dog and runs away"
    invented = runtime.tokenizer(text).input_ids[:MAX_NEW]
    assert len(invented) == MAX_NEW
    claimed = []
    for blob in PROMPTS:
        prompt = g.encode_prompt(greedy, blob, runtime.tokenizer)
        logits = g.teacher_forced_logits(runtime, prompt, invented)
        logp = torch.log_softmax(logits, dim=-1)
        claimed.append(
            g.encode_output(invented, [float(logp[j, t]) for j, t in enumerate(invented)])
        )
    checks = audit(greedy, runtime, claimed)
    report(record_property, "invented_text", checks)
    assert_all_fail(checks)
    assert all("not the greedy choice" in c.reason for c in checks)


@pytest.mark.slow
def test_truncated_generation_is_caught(greedy, runtime, greedy_outputs, record_property):
    claimed = []
    for out in greedy_outputs:
        tokens, lp = g.decode_output(out, MAX_NEW, 49152)
        claimed.append(g.encode_output(tokens[:-3], lp[:-3]))
    checks = audit(greedy, runtime, claimed)
    report(record_property, "truncated", checks)
    assert_all_fail(checks)
    assert all("without EOS" in c.reason for c in checks)


@pytest.mark.slow
def test_sampling_with_the_wrong_seed_is_caught(sampled, runtime, record_property):
    wrong = make_spec(sampled.weights, temperature_milli=700, seed=43)
    claimed = g.run_items(wrong, range(len(PROMPTS)), PROMPTS, runtime, batch_size=3)
    checks = audit(sampled, runtime, claimed)
    report(record_property, "wrong_seed", checks)
    assert_all_fail(checks)


@pytest.mark.slow
def test_greedy_tokens_claimed_for_a_sampled_job_are_caught(
    sampled, runtime, greedy_outputs, record_property
):
    checks = audit(sampled, runtime, greedy_outputs)
    report(record_property, "greedy_for_sampled", checks)
    assert_all_fail(checks)


@pytest.mark.slow
def test_second_choice_is_accepted_only_within_the_margin(greedy, runtime, greedy_outputs):
    """A near-tie may flip under float noise: the runner-up passes if the gap is within
    the margin (shown with a margin above this position's real gap), else it fails."""
    tokens, lp = g.decode_output(greedy_outputs[0], MAX_NEW, 49152)
    prompt = g.encode_prompt(greedy, PROMPTS[0], runtime.tokenizer)
    logits = g.teacher_forced_logits(runtime, prompt, tokens)
    top = torch.topk(logits[-1], 2)
    gap = float(top.values[0] - top.values[1])
    runner_up = int(top.indices[1])
    logp = torch.log_softmax(logits[-1], dim=-1)
    claimed = g.encode_output([*tokens[:-1], runner_up], [*lp[:-1], float(logp[runner_up])])
    wide = GenerateTolerance(margin=gap * 1.01, logprob=TOL.logprob)
    narrow = GenerateTolerance(margin=gap * 0.99, logprob=TOL.logprob)
    assert runner_up != runtime.tokenizer.eos_token_id
    (ok,) = g.check_items(greedy, [0], [PROMPTS[0]], [claimed], runtime, wide)
    (bad,) = g.check_items(greedy, [0], [PROMPTS[0]], [claimed], runtime, narrow)
    assert ok.passed, ok.reason
    assert not bad.passed and f"position {MAX_NEW - 1}" in bad.reason
