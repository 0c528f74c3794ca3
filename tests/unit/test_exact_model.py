"""Exact work on the tiny synthetic model: one set of integers on every path.

The tiny model runs the same code as SmolLM2 (tests/unit/test_exact_smollm2.py does the
big one), so these tests pin the properties consensus relies on: the artifact hash is
reproducible, every matmul backend gives the same logits, batching and padding change
nothing, prefill equals decode, thread counts and CPU instruction sets change nothing
(each run in its own process), and every tampered claim is refused at the first
position that differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from workloads.exact import ExactRunner, encode_prompt, generate, verify
from workloads.exact.artifacts import PINNED, TINY_SEED, smollm2_tokenizer_json
from workloads.exact.convert import synthetic_model
from workloads.exact.model import ArtifactError, deserialise, serialise

PROMPTS = [
    "What are the early signs of pancreatic cancer?",
    "Explain how PARP inhibitors work.",
    "Tumour suppressor",
    "Which screening test is recommended for colorectal cancer at age 45, and how often?",
]
SEED = bytes.fromhex("5eed" * 16)
MAX_NEW = 12


@pytest.fixture(scope="module")
def runner(tiny_model):  # type: ignore[no-untyped-def]
    return ExactRunner(tiny_model, "int8")


def _prompts(model) -> list[list[int]]:  # type: ignore[no-untyped-def]
    return [encode_prompt(model, p, chat=(i % 2 == 0)) for i, p in enumerate(PROMPTS)]


# -- the artifact ---------------------------------------------------------------------------


def test_tiny_artifact_rederives_to_the_pinned_hash(exact_store, tiny_model) -> None:  # type: ignore[no-untyped-def]
    again = synthetic_model(TINY_SEED, smollm2_tokenizer_json(exact_store))
    data = serialise(again)
    assert again.sha256.hex() == PINNED["tiny"] == tiny_model.sha256.hex()
    assert deserialise(data, again.sha256).sha256 == again.sha256


def test_damaged_or_wrong_artifacts_are_refused(tiny_model) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(serialise(tiny_model))
    with pytest.raises(ArtifactError, match="hashes to"):
        deserialise(bytes(data), b"\0" * 32)
    data[len(data) // 2] ^= 1
    with pytest.raises(ArtifactError, match="hashes to"):
        deserialise(bytes(data), tiny_model.sha256)
    with pytest.raises(ArtifactError, match=r"not canonical|not an exact"):
        deserialise(b"\x93\x01\x02\x03")


# -- one set of integers ------------------------------------------------------------------------


def _logits(runner: ExactRunner, prompt: list[int]) -> torch.Tensor:
    x = torch.tensor([prompt])
    cache = runner.new_cache(1, len(prompt))
    return runner.forward(
        x, torch.arange(len(prompt))[None], torch.ones_like(x, dtype=torch.bool), cache, len(prompt)
    )


@pytest.mark.parametrize("backend", ["fp32", "fp64", "int64"])
def test_every_backend_gives_the_same_logits(tiny_model, runner, backend) -> None:  # type: ignore[no-untyped-def]
    prompt = _prompts(tiny_model)[3]
    reference = _logits(runner, prompt)
    other = _logits(ExactRunner(tiny_model, backend), prompt)
    assert torch.equal(reference, other)
    assert reference.abs().max() > 1 << 16  # real logits, not a degenerate all-zero row


@pytest.mark.parametrize("temperature", [0, 700])
def test_padded_batch_equals_batch_of_one_and_prefill_equals_decode(
    tiny_model, runner, temperature
) -> None:  # type: ignore[no-untyped-def]
    prompts = _prompts(tiny_model)
    seeds = [SEED + bytes([i]) for i in range(len(prompts))]
    batch = generate(runner, prompts, seeds, MAX_NEW, temperature, stop_at_eos=False)
    for prompt, seed, together in zip(prompts, seeds, batch, strict=True):
        alone = generate(runner, [prompt], [seed], MAX_NEW, temperature, stop_at_eos=False)[0]
        assert alone.tokens == together.tokens and alone.row_digests == together.row_digests
        assert len(alone.tokens) == MAX_NEW
        verdict = verify(
            runner, prompt, seed, alone.tokens, MAX_NEW, temperature, stop_at_eos=False
        )
        assert verdict.ok, verdict.reason
        assert verdict.row_digests == alone.row_digests  # teacher-forced prefill == decode


def test_seeds_drive_sampling_and_greedy_ignores_them(tiny_model, runner) -> None:  # type: ignore[no-untyped-def]
    prompt = _prompts(tiny_model)[1]
    draws = {
        tuple(generate(runner, [prompt], [bytes([s])], MAX_NEW, 900, stop_at_eos=False)[0].tokens)
        for s in range(6)
    }
    assert len(draws) > 1
    greedy = {
        tuple(generate(runner, [prompt], [bytes([s])], MAX_NEW, 0, stop_at_eos=False)[0].tokens)
        for s in range(3)
    }
    assert len(greedy) == 1


# -- tampering --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def honest(tiny_model, runner):  # type: ignore[no-untyped-def]
    prompt = _prompts(tiny_model)[0]
    return prompt, generate(runner, [prompt], [SEED], MAX_NEW, 800, stop_at_eos=False)[0].tokens


def test_one_token_changed_is_caught_at_its_position(runner, honest) -> None:  # type: ignore[no-untyped-def]
    prompt, tokens = honest
    for j in (0, 5, MAX_NEW - 1):
        bad = list(tokens)
        bad[j] = (bad[j] + 1) % runner.config.vocab
        verdict = verify(runner, prompt, SEED, bad, MAX_NEW, 800, stop_at_eos=False)
        assert not verdict.ok and verdict.position == j and verdict.expected == tokens[j]


def test_another_seed_or_prompt_is_caught(tiny_model, runner, honest) -> None:  # type: ignore[no-untyped-def]
    prompt, tokens = honest
    assert not verify(runner, prompt, SEED[::-1], tokens, MAX_NEW, 800, stop_at_eos=False).ok
    other = _prompts(tiny_model)[2]
    assert not verify(runner, other, SEED, tokens, MAX_NEW, 800, stop_at_eos=False).ok
    assert verify(runner, prompt, SEED, tokens, MAX_NEW, 800, stop_at_eos=False).ok


def test_tokens_short_or_long_are_caught(runner, honest) -> None:  # type: ignore[no-untyped-def]
    prompt, tokens = honest
    short = verify(runner, prompt, SEED, tokens[:-1], MAX_NEW, 800, stop_at_eos=False)
    assert not short.ok and short.position == MAX_NEW - 1
    long = verify(runner, prompt, SEED, [*tokens, tokens[0]], MAX_NEW, 800, stop_at_eos=False)
    assert not long.ok and long.position == MAX_NEW
    assert not verify(runner, prompt, SEED, [], MAX_NEW, 800).ok
    assert not verify(runner, prompt, SEED, [*tokens[:-1], 10**6], MAX_NEW, 800).ok


def test_eos_rules(tiny_model, runner, honest) -> None:  # type: ignore[no-untyped-def]
    prompt, tokens = honest
    eos = tiny_model.config.eos_token_id
    # with stop_at_eos a generation may end at EOS; tokens after an EOS are refused
    verdict = verify(
        runner, prompt, SEED, [*tokens[:3], eos, *tokens[4:]], MAX_NEW, 800, stop_at_eos=True
    )
    assert not verdict.ok and verdict.position is not None and verdict.position <= 4


def test_bad_arguments_are_refused(runner, honest) -> None:  # type: ignore[no-untyped-def]
    prompt, _tokens = honest
    for seed, temp, max_new, match in [
        (b"", 0, 4, "seed"),
        (b"x" * 65, 0, 4, "seed"),
        (SEED, -1, 4, "temperature"),
        (SEED, 70000, 4, "temperature"),
        (SEED, 0, 0, "max_new"),
        (SEED, 0, 5000, "positions"),
    ]:
        with pytest.raises(ValueError, match=match):
            generate(runner, [prompt], [seed], max_new, temp)
    with pytest.raises(ValueError, match="empty"):
        generate(runner, [[]], [SEED], 4, 0)
    with pytest.raises(ValueError, match="vocabulary"):
        generate(runner, [[1, 10**7]], [SEED], 4, 0)


# -- other processes: threads and instruction sets -------------------------------------------------

DIGEST_SCRIPT = """
import json, sys, torch
from pathlib import Path
from workloads.store import BlobStore
from workloads.exact import ExactRunner, encode_prompt, generate, load_exact_model
torch.set_num_threads(int(sys.argv[2]))
model = load_exact_model(BlobStore(Path(sys.argv[1])), "tiny")
runner = ExactRunner(model, sys.argv[3])
prompts = [encode_prompt(model, p) for p in json.loads(sys.argv[4])]
out = generate(runner, prompts, [b"\\x07" * 32] * len(prompts), 16, 750, stop_at_eos=False)
print(json.dumps([[g.tokens, g.digest.hex()] for g in out]))
"""


def _digests_in_process(
    store, threads: int, backend: str, env: dict[str, str] | None = None
) -> list:  # type: ignore[no-untyped-def]
    run_env = {**os.environ, **(env or {})}
    cmd = [
        sys.executable,
        "-c",
        DIGEST_SCRIPT,
        str(store.root),
        str(threads),
        backend,
        json.dumps(PROMPTS),
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=run_env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_threads_backends_and_isa_give_identical_bits_in_separate_processes(
    exact_store, tiny_model
) -> None:  # type: ignore[no-untyped-def]
    reference = _digests_in_process(exact_store, 1, "int8")
    assert _digests_in_process(exact_store, 2, "int8") == reference
    assert _digests_in_process(exact_store, 2, "fp32") == reference
    assert (
        _digests_in_process(exact_store, 1, "fp64", {"ATEN_CPU_CAPABILITY": "default"}) == reference
    )


def test_spec_states_the_pinned_hashes_and_table_sizes() -> None:
    """specs/exact.md §6 and §4.1 say what the code pins: the spec cannot drift."""
    import re
    from pathlib import Path

    from workloads.exact import tables

    spec = (Path(__file__).resolve().parents[2] / "specs" / "exact.md").read_text()
    stated = dict(re.findall(r"\| `(smollm2|tiny)` \| `([0-9a-f]{64})` \|", spec))
    assert stated == PINNED
    assert f"`i = 0 … {len(tables.exp_table()) - 1}`" in spec


def test_saturation_is_one_outcome_on_every_backend(tiny_model) -> None:  # type: ignore[no-untyped-def]
    """Weights scaled to the format's limit drive every value to its bound: the pass must
    saturate (specs/exact.md §3.0), not overflow, and all backends must agree."""
    import copy

    from workloads.exact.quant import LOGITS, QKV, RESIDUAL, quantize_plain, quantize_rms

    loud = copy.deepcopy(tiny_model)
    for layer in loud.layers:
        for lin in (layer.qkv, layer.o, layer.gate_up, layer.down):
            lin.exp = 16
            lin.mult = torch.full_like(lin.mult, 1 << 16)
        layer.attn_norm = torch.full_like(layer.attn_norm, (1 << 24) - 1)
        layer.mlp_norm = torch.full_like(layer.mlp_norm, -((1 << 24) - 1))
    loud.embed.exp = 16
    prompt = encode_prompt(loud, PROMPTS[3])
    # checked=True asserts every declared width as the pass runs: the bounds hold at the extremes
    outs = [
        _logits(ExactRunner(loud, b, checked=True), prompt)
        for b in ("int8", "fp32", "fp64", "int64")
    ]
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    assert outs[0].abs().max() <= (1 << LOGITS[1]) - 1

    # the quantisers at the extremes of their inputs
    h = torch.tensor([[(1 << RESIDUAL[1]) - 1, -((1 << RESIDUAL[1]) - 1), 0, 1] * 16])
    a, _, kappa = quantize_rms(h, torch.full((64,), (1 << 24) - 1))
    assert a.abs().max() <= 4095 and int(kappa.min()) >= 12
    a, kappa = quantize_plain(torch.tensor([[(1 << 47) - 1, 3, -5]]), 24, 8)
    assert a.tolist() == [[4095, 0, 0]] and int(kappa) == 15 + 24 - 8
    q = torch.tensor([[(1 << QKV[1]) - 1] * 8])
    assert quantize_plain(q, QKV[0], 20)[0].max() == 4095


def test_verify_without_digests_gives_the_same_verdict(runner, honest) -> None:  # type: ignore[no-untyped-def]
    prompt, tokens = honest
    quick = verify(runner, prompt, SEED, tokens, MAX_NEW, 800, stop_at_eos=False, digests=False)
    assert quick.ok and quick.row_digests == []
    bad = [*tokens[:2], (tokens[2] + 7) % runner.config.vocab, *tokens[3:]]
    quick = verify(runner, prompt, SEED, bad, MAX_NEW, 800, stop_at_eos=False, digests=False)
    assert (quick.ok, quick.position, quick.expected) == (False, 2, tokens[2])


def test_checked_runs_assert_the_widths_and_change_nothing(tiny_model, runner) -> None:  # type: ignore[no-untyped-def]
    prompts = _prompts(tiny_model)
    checked = ExactRunner(tiny_model, "int8", checked=True)
    seeds = [SEED] * len(prompts)
    plain = generate(runner, prompts, seeds, MAX_NEW, 700, stop_at_eos=False)
    assert [
        g.digest for g in generate(checked, prompts, seeds, MAX_NEW, 700, stop_at_eos=False)
    ] == [g.digest for g in plain]
    from workloads.exact.arith import check_bound

    with pytest.raises(AssertionError, match="13 bits, bound 12"):
        check_bound(torch.tensor([4096]), 12, "codes")
