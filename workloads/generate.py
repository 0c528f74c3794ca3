"""The ``generate`` kind: verifiable text generation with SmolLM2-135M (fp32).

An item's input blob is a prompt in UTF-8. It is tokenised with the model's own tokenizer
exactly as ``tokenizer(text).input_ids`` does by default: no chat template, and for
SmolLM2 no BOS either (its tokenizer adds none). A prompt that is not UTF-8, is empty, or
is longer than ``max_prompt_tokens`` tokens is refused with :class:`ValueError`, never
truncated (truncating would change the work the researcher asked for).

The worker generates exactly ``max_new_tokens`` tokens, or fewer only if it produces EOS
(``tokenizer.eos_token_id``), which then is the last token. Each token is decided by a
rule anyone can recompute from the logits at that position:

* ``temperature_milli == 0``: greedy, ``argmax(logits)``;
* otherwise: Gumbel-max sampling, ``argmax(logits / T + g)`` where ``g`` is Gumbel noise
  drawn on the CPU from a ``torch.Generator`` seeded by a tagged hash of
  (spec.seed, job id, item index, position), so it is a pure function of the job.

Because the decision is a deterministic function of the logits, the auditor needs no
generation loop: one teacher-forced forward pass over prompt + claimed tokens gives the
logits of every position at once, and each claimed token must be the rule's choice there
(either of the top two where their scores are within ``tol.margin``: float noise may flip
a near-tie). The output also carries the log-probability of each chosen token (log_softmax
of the untempered fp32 logits), compared within ``tol.logprob``: that is the fingerprint
which ties the claim to this model, these weights and this precision, since a wrong model
usually still picks the same greedy tokens but moves every logprob.

Output bytes: ``pack([token_ids: [int, ...], logprobs: float32 little-endian bytes])``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from chain.encoding import pack, unpack_canonical
from chain.errors import DecodeError
from chain.hashing import tagged_hash
from chain.jobs import JobSpec
from workloads.audit import ItemCheck
from workloads.tolerances import GenerateTolerance

TAG_NOISE = "fc/generate-noise"
# The distance reported for a failure that is not a continuous figure (wrong token,
# wrong length, malformed bytes): far above any tolerance.
FAIL_DISTANCE = 1e6
DEFAULT_BATCH = 4


# -- inputs and the decision rule ---------------------------------------------------------


def encode_prompt(spec: JobSpec, blob: bytes, tokenizer: Any) -> list[int]:
    """The prompt's token ids; raises ValueError for a prompt the job cannot run."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"prompt is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    ids = list(tokenizer(text).input_ids)
    limit = spec.param("max_prompt_tokens")
    if not ids:
        raise ValueError("prompt is empty (0 tokens)")
    if len(ids) > limit:
        raise ValueError(f"prompt has {len(ids)} tokens, the job allows {limit}")
    return ids


def eos_id(runtime: Any) -> int:
    return int(runtime.tokenizer.eos_token_id)


def temperature(spec: JobSpec) -> float:
    return spec.param("temperature_milli") / 1000.0


def noise_seed(spec: JobSpec, index: int, position: int) -> int:
    data = (
        spec.seed.to_bytes(8, "big")
        + spec.job_id
        + index.to_bytes(4, "big")
        + position.to_bytes(4, "big")
    )
    return int.from_bytes(tagged_hash(TAG_NOISE, data)[:8], "big") >> 1  # < 2**63


def gumbel_noise(spec: JobSpec, index: int, position: int, vocab: int) -> torch.Tensor:
    """Gumbel(0, 1) noise for one position of one item, float64 on the CPU."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(noise_seed(spec, index, position))
    u = torch.rand(vocab, generator=gen, dtype=torch.float64)
    u = u.clamp(min=1e-300)  # rand is in [0, 1): keep log finite
    return -torch.log(-torch.log(u))


def scores(spec: JobSpec, index: int, position: int, logits: torch.Tensor) -> torch.Tensor:
    """The figure whose argmax is the token at ``position`` (logits: fp32, one row)."""
    t = temperature(spec)
    if t == 0:
        return logits.double()
    noise = gumbel_noise(spec, index, position, logits.shape[-1])
    return logits.double().cpu() / t + noise


# -- output bytes -------------------------------------------------------------------------


def encode_output(tokens: Sequence[int], logprobs: Sequence[float]) -> bytes:
    lp = np.asarray(logprobs, dtype="<f4").tobytes()
    return pack([[int(t) for t in tokens], lp])


def decode_output(data: bytes, max_new: int, vocab: int) -> tuple[list[int], np.ndarray]:
    """Token ids and float32 logprobs; raises ValueError saying what is wrong."""
    try:
        value = unpack_canonical(data, 64 + 14 * max_new)
    except DecodeError as exc:
        raise ValueError(f"output is not canonical msgpack: {exc.detail}") from None
    if type(value) is not list or len(value) != 2:
        raise ValueError("output is not [tokens, logprobs]")
    tokens, lp = value
    if type(tokens) is not list or not all(type(t) is int for t in tokens):
        raise ValueError("tokens are not a list of ints")
    if type(lp) is not bytes or len(lp) != 4 * len(tokens):
        raise ValueError(f"logprobs are not {len(tokens)} float32 values")
    if not tokens:
        raise ValueError("no tokens generated")
    if len(tokens) > max_new:
        raise ValueError(f"{len(tokens)} tokens, the job allows {max_new}")
    bad = [t for t in tokens if not 0 <= t < vocab]
    if bad:
        raise ValueError(f"token id {bad[0]} outside the vocabulary")
    arr = np.frombuffer(lp, dtype="<f4").astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("a logprob is not finite")
    return tokens, arr


# -- the worker ---------------------------------------------------------------------------


def _forward(model: Any, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any):
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=pos,
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[:, -1, :].float(), out.cache


@torch.inference_mode()
def _generate_batch(
    spec: JobSpec, indices: Sequence[int], prompts: Sequence[list[int]], runtime: Any
) -> list[bytes]:
    from transformers import DynamicCache

    model = runtime.model
    dev = next(model.parameters()).device
    eos = eos_id(runtime)
    max_new = spec.param("max_new_tokens")
    n = len(prompts)
    width = max(len(p) for p in prompts)
    ids = torch.full((n, width), eos, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for row, p in enumerate(prompts):  # left padding: every prompt ends at the last column
        ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[row, width - len(p) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    ids, mask, pos = ids.to(dev), mask.to(dev), pos.to(dev)
    logits, cache = _forward(model, ids, mask, pos, DynamicCache(config=model.config))
    tokens: list[list[int]] = [[] for _ in range(n)]
    logprobs: list[list[float]] = [[] for _ in range(n)]
    done = [False] * n
    last_pos = pos[:, -1:]
    for step in range(max_new):
        logp = torch.log_softmax(logits, dim=-1)
        chosen = []
        for row in range(n):
            if done[row]:
                chosen.append(eos)
                continue
            tok = int(torch.argmax(scores(spec, indices[row], step, logits[row])))
            tokens[row].append(tok)
            logprobs[row].append(float(logp[row, tok]))
            done[row] = tok == eos
            chosen.append(tok)
        if all(done) or step == max_new - 1:
            break
        last_pos = last_pos + 1
        mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=dev)], dim=1)
        step_ids = torch.tensor(chosen, dtype=torch.long, device=dev).unsqueeze(1)
        logits, cache = _forward(model, step_ids, mask, last_pos, cache)
    return [encode_output(t, lp) for t, lp in zip(tokens, logprobs, strict=True)]


def run_items(
    spec: JobSpec,
    indices: Sequence[int],
    inputs: Sequence[bytes],
    runtime: Any,
    *,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[bytes]:
    """Generate for each item, in batches of ``batch_size`` prompts (left-padded, grouped
    by length); ``progress`` is called after each batch with the number of items it finished.
    Raises ValueError for a prompt the job cannot run (see :func:`encode_prompt`)."""
    if len(indices) != len(inputs):
        raise ValueError("indices and inputs differ in length")
    prompts = [encode_prompt(spec, blob, runtime.tokenizer) for blob in inputs]
    size = max(1, batch_size or DEFAULT_BATCH)
    # Group prompts of similar length so little of a batch is padding; output order kept.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[bytes | None] = [None] * len(prompts)
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        batch = _generate_batch(
            spec, [indices[i] for i in rows], [prompts[i] for i in rows], runtime
        )
        for i, out in zip(rows, batch, strict=True):
            outputs[i] = out
        if progress is not None:
            progress(len(rows))
    return [out for out in outputs if out is not None]


# -- the auditor --------------------------------------------------------------------------


@torch.inference_mode()
def teacher_forced_logits(runtime: Any, prompt: list[int], tokens: Sequence[int]) -> torch.Tensor:
    """fp32 logits at every generated position: row j scores the choice of tokens[j]."""
    model = runtime.model
    dev = next(model.parameters()).device
    seq = torch.tensor([prompt + list(tokens[:-1])], dtype=torch.long, device=dev)
    # Only the last len(tokens) positions score generated tokens: skip the LM head elsewhere.
    logits = model(input_ids=seq, use_cache=False, logits_to_keep=len(tokens)).logits[0]
    return logits.float().cpu()


def _check_one(
    spec: JobSpec, index: int, blob: bytes, output: bytes, runtime: Any, tol: Any
) -> tuple[bool, float, str]:
    max_new = spec.param("max_new_tokens")
    eos = eos_id(runtime)
    vocab = int(runtime.model.config.vocab_size)
    try:
        prompt = encode_prompt(spec, blob, runtime.tokenizer)
    except ValueError as exc:
        return False, FAIL_DISTANCE, f"prompt refused: {exc}"
    try:
        tokens, claimed = decode_output(output, max_new, vocab)
    except ValueError as exc:
        return False, FAIL_DISTANCE, f"malformed output: {exc}"
    early = [j for j, t in enumerate(tokens[:-1]) if t == eos]
    if early:
        return False, FAIL_DISTANCE, f"EOS at position {early[0]} is not the last token"
    if len(tokens) < max_new and tokens[-1] != eos:
        return (
            False,
            FAIL_DISTANCE,
            f"{len(tokens)} tokens without EOS, the job asks for {max_new}",
        )
    logits = teacher_forced_logits(runtime, prompt, tokens)
    logp = torch.log_softmax(logits, dim=-1).double()
    # tol.margin is in logit units; scores are logits / T (+ noise), so scale it alike.
    t = temperature(spec)
    margin = tol.margin / t if t > 0 else tol.margin
    worst, worst_at = 0.0, -1
    for j, tok in enumerate(tokens):
        s = scores(spec, index, j, logits[j])
        top = torch.topk(s, 2)
        best, second = int(top.indices[0]), int(top.indices[1])
        gap = float(top.values[0] - top.values[1])
        if tok != best and not (tok == second and gap <= margin):
            rule = "greedy" if temperature(spec) == 0 else "seeded sampling"
            return (
                False,
                FAIL_DISTANCE,
                f"position {j}: token {tok} is not the {rule} choice {best} "
                f"(score gap {float(top.values[0] - s[tok]):.3g}, margin {margin:.3g})",
            )
        err = abs(float(logp[j, tok]) - float(claimed[j]))
        if not err <= worst:  # also catches NaN
            worst, worst_at = err, j
    if not worst <= tol.logprob:
        return (
            False,
            worst,
            f"position {worst_at}: logprob {claimed[worst_at]:.6f} claimed, "
            f"{float(logp[worst_at, tokens[worst_at]]):.6f} recomputed "
            f"(|diff| {worst:.3g} > {tol.logprob:g})",
        )
    return True, worst, ""


def check_items(
    spec: JobSpec,
    indices: Sequence[int],
    inputs: Sequence[bytes],
    outputs: Sequence[bytes],
    runtime: Any,
    tol: Any,
) -> list[ItemCheck]:
    """Re-execute the sampled items by one teacher-forced pass each and judge the claims."""
    if not len(indices) == len(inputs) == len(outputs):
        raise ValueError("indices, inputs and outputs differ in length")
    checks = []
    for index, blob, output in zip(indices, inputs, outputs, strict=True):
        passed, distance, reason = _check_one(spec, index, blob, output, runtime, tol)
        unit = index // spec.unit_size
        checks.append(ItemCheck(unit, index, passed, distance, reason))
    return checks


def load_runtime(store: Any, spec: JobSpec, device: str = "cpu") -> Any:
    from workloads.models import load_causal_lm

    return load_causal_lm(store, spec.weights, device)


__all__ = [
    "FAIL_DISTANCE",
    "GenerateTolerance",
    "check_items",
    "decode_output",
    "encode_output",
    "encode_prompt",
    "gumbel_noise",
    "load_runtime",
    "run_items",
    "teacher_forced_logits",
]
