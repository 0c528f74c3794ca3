"""Exact seeded sampling and exact verification (specs/exact.md §4).

The rule that picks token ``j`` of a generation from its logit row ``L`` (int64, Q16):

* ``temperature_milli == 0`` (greedy): the largest logit; ties go to the lowest token id.
* otherwise, integer inverse-CDF sampling: ``d_v = floor((max L - L_v) * 1000 / T)``
  (Q16), weight ``w_v = EXP[min(round(d_v / 2^6), len(EXP) - 1)]`` (``exp(-d)`` in Q20,
  zero in the far tail), ``C`` the running sum of ``w`` over token ids, ``Z = C[-1]``;
  ``u`` the first 8 bytes (big-endian) of ``H("fc/exact-sample", len(seed) || seed ||
  j as u32)``; the token is the first id ``v`` with ``C_v > floor(u * Z / 2^64)``. This is
  an exact draw from the distribution ``w / Z``: one hash per position, no noise vector,
  and no id with zero weight can ever be drawn.

A generation is ``max_new`` tokens; with ``stop_at_eos`` it ends early at the first EOS,
which is then its last token. Verification re-runs the model once, teacher-forced over
prompt + tokens, and checks each token against the rule at its position: the result is
a pass or the first position that differs. Prefill and decode give the same integers,
so verification needs no generation loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from tokenizers import Tokenizer

from chain.hashing import tagged_hash
from workloads.exact.arith import round_shift
from workloads.exact.constants import MAX_SEED_BYTES, MAX_TEMPERATURE_MILLI
from workloads.exact.forward import ExactRunner
from workloads.exact.model import ExactModel
from workloads.exact.quant import LOGITS
from workloads.exact.tables import EXP_IN_BITS

TAG_SAMPLE = "fc/exact-sample"


# -- prompts ------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _tokenizer(tokenizer_json: bytes) -> Tokenizer:
    return Tokenizer.from_str(tokenizer_json.decode())


def encode_prompt(model: ExactModel, text: str, chat: bool = False) -> list[int]:
    """The prompt's token ids: the text as is, or wrapped in the model's chat template
    (system prompt, the text as the user's turn, then the assistant's turn opened)."""
    if chat:
        if not model.config.chat_system:
            raise ValueError(f"model {model.config.name} has no chat template")
        text = (
            f"<|im_start|>system\n{model.config.chat_system}<|im_end|>\n"
            f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
        )
    ids = _tokenizer(model.tokenizer_json).encode(text, add_special_tokens=False).ids
    if not ids:
        raise ValueError("the prompt is empty (0 tokens)")
    return list(ids)


def decode_text(model: ExactModel, tokens: Sequence[int]) -> str:
    """The generated text: the tokens before the first EOS, special tokens dropped."""
    eos = model.config.eos_token_id
    cut = list(tokens).index(eos) if eos in tokens else len(tokens)
    return _tokenizer(model.tokenizer_json).decode(list(tokens[:cut]), skip_special_tokens=True)


# -- the rule -----------------------------------------------------------------------------


def check_sampling_args(seed: bytes, temperature_milli: int, max_new: int) -> None:
    if not 1 <= len(seed) <= MAX_SEED_BYTES:
        raise ValueError(f"the seed must be 1 to {MAX_SEED_BYTES} bytes, not {len(seed)}")
    if not 0 <= temperature_milli <= MAX_TEMPERATURE_MILLI:
        raise ValueError(
            f"temperature_milli must be 0..{MAX_TEMPERATURE_MILLI}, not {temperature_milli}"
        )
    if max_new < 1:
        raise ValueError(f"max_new must be at least 1, not {max_new}")


def uniform64(seed: bytes, position: int) -> int:
    """The draw for generated position ``position``: a uniform 64-bit integer."""
    data = len(seed).to_bytes(1, "big") + seed + position.to_bytes(4, "big")
    return int.from_bytes(tagged_hash(TAG_SAMPLE, data)[:8], "big")


def choose(
    runner: ExactRunner, logits: torch.Tensor, temperature_milli: int, draws: Sequence[int]
) -> list[int]:
    """The token each logit row (int64 [n, vocab]) selects; ``draws[i]`` is row i's
    ``uniform64`` (unused when greedy)."""
    if temperature_milli == 0:
        return [int(t) for t in torch.argmax(logits, dim=-1)]  # first maximum: lowest id
    top = logits.amax(-1, keepdim=True)
    scaled = torch.div((top - logits) * 1000, temperature_milli, rounding_mode="floor")  # < 2^51
    index = round_shift(scaled, LOGITS[0] - EXP_IN_BITS).clamp(max=runner.exp_last)
    cumulative = torch.cumsum(torch.take(runner.exp_i64, index), dim=-1)  # < 2^20 * vocab
    totals = [int(z) for z in cumulative[:, -1]]
    targets = torch.tensor(
        [(u * z) >> 64 for u, z in zip(draws, totals, strict=True)],
        dtype=torch.int64,
        device=logits.device,
    )
    chosen = torch.searchsorted(cumulative, targets.unsqueeze(-1), right=True)
    return [int(t) for t in chosen[:, 0]]


def row_digest(row: torch.Tensor) -> bytes:
    """sha256 of one logit row as int64 little-endian bytes."""
    return hashlib.sha256(row.cpu().numpy().astype("<i8").tobytes()).digest()


def logits_digest(row_digests: Sequence[bytes]) -> bytes:
    """sha256 of the concatenated row digests: one figure for a whole generation."""
    return hashlib.sha256(b"".join(row_digests)).digest()


# -- generation ---------------------------------------------------------------------------


@dataclass
class Generation:
    tokens: list[int]
    row_digests: list[bytes] = field(default_factory=list)

    @property
    def digest(self) -> bytes:
        return logits_digest(self.row_digests)


def _check_prompt(runner: ExactRunner, prompt: Sequence[int], max_new: int) -> None:
    c = runner.config
    if not prompt:
        raise ValueError("the prompt is empty (0 tokens)")
    bad = [t for t in prompt if not 0 <= t < c.vocab]
    if bad:
        raise ValueError(f"prompt token {bad[0]} outside the vocabulary of {c.vocab}")
    if len(prompt) + max_new - 1 > c.max_positions:
        raise ValueError(
            f"prompt of {len(prompt)} tokens + {max_new} new tokens passes the model's "
            f"{c.max_positions} positions"
        )


def generate(
    runner: ExactRunner,
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[bytes],
    max_new: int,
    temperature_milli: int,
    stop_at_eos: bool = True,
    digests: bool = True,
) -> list[Generation]:
    """Generate for a batch of prompts (left-padded; every row's integers are those it
    would get alone). ``seeds[i]`` drives row i's draws."""
    if len(prompts) != len(seeds) or not prompts:
        raise ValueError("give one seed per prompt, at least one prompt")
    for prompt, seed in zip(prompts, seeds, strict=True):
        check_sampling_args(seed, temperature_milli, max_new)
        _check_prompt(runner, prompt, max_new)
    dev = runner.device
    n = len(prompts)
    width = max(len(p) for p in prompts)
    tokens = torch.zeros((n, width), dtype=torch.int64)
    valid = torch.zeros((n, width), dtype=torch.bool)
    for row, p in enumerate(prompts):
        tokens[row, width - len(p) :] = torch.tensor(list(p), dtype=torch.int64)
        valid[row, width - len(p) :] = True
    positions = (valid.cumsum(-1) - 1).clamp(min=0)
    cache = runner.new_cache(n, width + max_new - 1)
    logits = runner.forward(tokens.to(dev), positions.to(dev), valid.to(dev), cache, 1)[:, 0]
    out = [Generation([]) for _ in range(n)]
    done = [False] * n
    next_pos = positions[:, -1:].to(dev) + 1
    eos = runner.config.eos_token_id
    for step in range(max_new):
        draws = [uniform64(seed, step) for seed in seeds] if temperature_milli else [0] * n
        chosen = choose(runner, logits, temperature_milli, draws)
        for row in range(n):
            if done[row]:
                continue
            out[row].tokens.append(chosen[row])
            if digests:
                out[row].row_digests.append(row_digest(logits[row]))
            done[row] = stop_at_eos and chosen[row] == eos
        if all(done) or step == max_new - 1:
            break
        step_tokens = torch.tensor(chosen, dtype=torch.int64, device=dev).unsqueeze(1)
        step_valid = torch.ones((n, 1), dtype=torch.bool, device=dev)
        logits = runner.forward(step_tokens, next_pos, step_valid, cache, 1)[:, 0]
        next_pos = next_pos + 1
    return out


# -- verification -------------------------------------------------------------------------


@dataclass
class Verdict:
    """The outcome of :func:`verify`. On failure, ``position`` is the first generated
    position whose claim is wrong: a token that differs from the rule's (``claimed`` and
    ``expected`` both set), an out-of-vocabulary token (``claimed`` set), a token after an
    EOS (the EOS's position + 1), a missing token (the claim's length) or a surplus one
    (``max_new``). ``row_digests`` are the logit rows the pass computed."""

    ok: bool
    position: int | None = None
    expected: int | None = None
    claimed: int | None = None
    reason: str = ""
    row_digests: list[bytes] = field(default_factory=list)

    @property
    def digest(self) -> bytes:
        return logits_digest(self.row_digests)


def verify(
    runner: ExactRunner,
    prompt: Sequence[int],
    seed: bytes,
    tokens: Sequence[int],
    max_new: int,
    temperature_milli: int,
    stop_at_eos: bool = True,
    digests: bool = True,
) -> Verdict:
    """Check a claimed generation with one teacher-forced pass. ``digests=False`` skips
    hashing the logit rows (a node checking a block needs only the verdict)."""
    check_sampling_args(seed, temperature_milli, max_new)
    _check_prompt(runner, prompt, max_new)
    c = runner.config
    tokens = list(tokens)
    if not tokens:
        return Verdict(False, 0, reason="no tokens claimed")
    bad = [j for j, t in enumerate(tokens) if not 0 <= t < c.vocab]
    if bad:
        return Verdict(
            False,
            bad[0],
            claimed=tokens[bad[0]],
            reason=f"token {tokens[bad[0]]} outside the vocabulary",
        )
    if len(tokens) > max_new:
        return Verdict(
            False, max_new, reason=f"{len(tokens)} tokens claimed, at most {max_new} allowed"
        )
    checked = tokens
    eos = c.eos_token_id
    if stop_at_eos and eos in tokens[:-1]:
        cut = tokens.index(eos)
        checked = tokens[: cut + 1]  # check up to the EOS; what follows it is the fault
    dev = runner.device
    seq = list(prompt) + checked[:-1]
    x = torch.tensor([seq], dtype=torch.int64, device=dev)
    cache = runner.new_cache(1, len(seq))
    logits = runner.forward(
        x,
        torch.arange(len(seq), device=dev)[None],
        torch.ones_like(x, dtype=torch.bool),
        cache,
        len(checked),
    )[0]
    draws = (
        [uniform64(seed, j) for j in range(len(checked))]
        if temperature_milli
        else [0] * len(checked)
    )
    expected = choose(runner, logits, temperature_milli, draws)
    row_digests = [row_digest(row) for row in logits] if digests else []
    for j, (claimed, want) in enumerate(zip(checked, expected, strict=True)):
        if claimed != want:
            reason = f"token {claimed} claimed, the rule gives {want}"
            return Verdict(False, j, want, claimed, reason, row_digests)
    if len(checked) < len(tokens):
        reason = f"tokens continue after EOS at position {len(checked) - 1}"
        return Verdict(False, len(checked), reason=reason, row_digests=row_digests)
    if len(tokens) < max_new and not (stop_at_eos and tokens[-1] == eos):
        reason = f"{len(tokens)} tokens claimed without EOS, {max_new} required"
        return Verdict(False, len(tokens), reason=reason, row_digests=row_digests)
    return Verdict(True, row_digests=row_digests)
