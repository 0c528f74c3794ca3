"""The block lottery: every draw is an exact sampled generation (specs/pob.md).

A block is won by a **draw**: the integer model of specs/exact.md answers one question
from an active lottery job, with a seed taken from the candidate header, and the hash of
its tokens is hashed once more against the target::

    seed   = H_fc/draw(magic || encode([version, prev, merkle, benefit, time, target,
                                        height, worker_key, counter]))
    job, i = choose_prompt(seed, active jobs at the parent)
    tokens = ExactSample(model, chat(job.prompts[i]), seed, max_new, temperature,
                         stop_at_eos = false)
    win   <=> int(H_fc/pow(seed || H_fc/tokens(tokens))) <= target

The header carries the worker key, the counter and the tokens (4 bytes each, big-endian).
Checking the shape and the hash is cheap and needs no state (:func:`check_work_shape`,
:func:`check_work_pow`); checking that the tokens are *the* generation for that seed
needs the model, so it is a function passed in (:data:`WorkVerifier`), and the only
thing consensus takes from it is a boolean decided by integer equality
(:func:`check_work`). Producing draws goes the same way through a :data:`Sampler`. Nothing
here imports torch or touches a file.

Lottery jobs are ``sample`` job specs (chain/jobs.py) whose model, ``max_new_tokens``
and temperature are the network's (:class:`LotteryParams`), so every draw on a network
costs the same. The standing job over the shipped cancer-knowledge set is active from
genesis; stewards add more with a signed ``job-submit`` (:func:`check_job_submit`), and a
new job becomes drawable only ``activation_delay`` blocks after it confirms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from chain.encoding import pack
from chain.errors import InvalidBlock, InvalidTransaction, Reject
from chain.hashing import sha256, tagged_hash
from chain.jobs import InvalidJobSpec, JobSpec, Kind, decode_job_spec
from chain.merkle import merkle_root
from chain.schnorr import verify
from chain.transaction import Transaction

TAG_DRAW = "fc/draw"  # the seed of a draw: the header without its work outputs
TAG_TOKENS = "fc/tokens"  # the hash of a draw's tokens
TAG_POW = "fc/pow"  # the lottery hash compared with the target
TAG_STEWARD = "fc/steward-job"  # what a steward signs to admit a lottery job

TOKEN_BYTES = 4  # each token id in a header: u32, big-endian
MAX_WORK_TOKENS = 256  # no network's max_new_tokens may exceed this (bounds a header)
MAX_LOTTERY_PROMPTS = 1024  # prompts one steward job may carry
MAX_PROMPT_BYTES = 400  # UTF-8 bytes of one prompt (bounds its tokens: one per byte at most)
LOTTERY_UNIT_SIZE = 16  # unit size of every lottery job spec


@dataclass(frozen=True)
class LotteryParams:
    """What a network's draws are: the model, their length and temperature, the standing
    prompt set, who may add more, and how long a new set waits (specs/pob.md §4)."""

    arch: str  # a chain/jobs.py architecture of kind ``sample``
    model_hash: bytes  # sha256 of the canonical integer artifact (specs/exact.md §6)
    vocab: int  # tokens are < vocab
    max_new_tokens: int  # every draw generates exactly this many tokens
    max_prompt_tokens: int  # a chat-formatted prompt is at most this long
    temperature_milli: int
    activation_delay: int  # a steward job is drawable this many blocks after it confirms
    standing_root: bytes  # Merkle root of the shipped prompt set (its job's inputs_root)
    standing_items: int  # prompts in the shipped set
    standing_sha256: bytes  # sha256 of the shipped file, so a node can refuse a bad copy
    stewards: tuple[bytes, ...]  # x-only keys allowed to admit lottery jobs

    def __post_init__(self) -> None:
        assert 1 <= self.max_new_tokens <= MAX_WORK_TOKENS
        assert 0 < self.vocab <= 2 ** (8 * TOKEN_BYTES)
        # A prompt of MAX_PROMPT_BYTES bytes is at most that many tokens (byte-level BPE),
        # and the chat template adds fewer than 64.
        assert self.max_prompt_tokens >= MAX_PROMPT_BYTES + 64

    def job_spec(self, inputs_root: bytes, items: int) -> JobSpec:
        """The one shape a lottery job may have on this network."""
        return JobSpec(
            kind=Kind.SAMPLE,
            arch=self.arch,
            weights=self.model_hash,
            inputs_root=inputs_root,
            items=items,
            params={
                "max_new_tokens": self.max_new_tokens,
                "max_prompt_tokens": self.max_prompt_tokens,
                "stop_at_eos": 0,
                "temperature_milli": self.temperature_milli,
            },
            unit_size=LOTTERY_UNIT_SIZE,
            dtype="int",
            tolerance="exact",
        )

    @property
    def standing_job(self) -> LotteryJob:
        spec = self.job_spec(self.standing_root, self.standing_items)
        return LotteryJob(spec.job_id, spec, None, 0, 0)


class LotteryJob(NamedTuple):
    """A job the lottery may draw from. ``prompts`` is None for the standing set, whose
    texts ship with the software (pinned by ``standing_sha256``); a steward's job carries
    its prompts on chain."""

    job_id: bytes
    spec: JobSpec
    prompts: tuple[str, ...] | None
    confirmed_height: int
    active_from: int  # first block height that may draw from it

    @property
    def items(self) -> int:
        return self.spec.items


class DrawTask(NamedTuple):
    """One draw to compute or check: which prompt, under which seed."""

    job: LotteryJob
    prompt_index: int
    seed: bytes


Sampler = Callable[[Sequence[DrawTask]], list[bytes]]
"""Computes draws: for each task, its ``max_new_tokens`` tokens as header bytes."""

WorkVerifier = Callable[[DrawTask, bytes], bool]
"""True exactly when the token bytes are the generation the task's seed gives."""


# -- the draw -----------------------------------------------------------------------------
def draw_seed(magic: bytes, header_fields: list[Any]) -> bytes:
    """specs/pob.md §2: the seed of a draw, from the network magic and the header without its work
    outputs (``BlockHeader.draw_wire``). It covers the parent and the Merkle root, so a
    draw is worth nothing on another fork, with other transactions, or on another network."""
    return tagged_hash(TAG_DRAW, magic + pack(header_fields))


def encode_tokens(tokens: Sequence[int]) -> bytes:
    return b"".join(t.to_bytes(TOKEN_BYTES, "big") for t in tokens)


def decode_tokens(data: bytes) -> list[int]:
    return [
        int.from_bytes(data[i : i + TOKEN_BYTES], "big") for i in range(0, len(data), TOKEN_BYTES)
    ]


def pow_value(seed: bytes, tokens: bytes) -> int:
    """specs/pob.md §2: the number compared with the target: ``H_fc/pow(seed || H_fc/tokens(tokens))``."""
    out = tagged_hash(TAG_TOKENS, tokens)
    return int.from_bytes(tagged_hash(TAG_POW, seed + out), "big")


def active_jobs(jobs: Sequence[LotteryJob], height: int) -> list[LotteryJob]:
    """specs/pob.md §4: the jobs a block at ``height`` draws from, in the canonical order: by the
    height they became drawable, then by job id."""
    live = [j for j in jobs if j.active_from <= height]
    return sorted(live, key=lambda j: (j.active_from, j.job_id))


def choose_prompt(seed: bytes, jobs: Sequence[LotteryJob]) -> tuple[LotteryJob, int]:
    """specs/pob.md §2: the seed picks a job uniformly, then a prompt of it uniformly. Neither is
    claimed by the header, so there is nothing about the choice to check."""
    if not jobs:
        raise ValueError("no active lottery job (the standing job is always active)")
    value = int.from_bytes(seed, "big")
    job = jobs[value % len(jobs)]
    return job, (value // len(jobs)) % job.items


# -- validity ------------------------------------------------------------------------------
def check_work_shape(tokens: bytes, lottery: LotteryParams) -> None:
    """specs/pob.md §3 rule 1 (context-free): exactly ``max_new_tokens`` tokens, each in the vocabulary."""
    if len(tokens) != lottery.max_new_tokens * TOKEN_BYTES:
        raise InvalidBlock(
            Reject.BAD_WORK_SHAPE,
            f"{len(tokens)} token bytes, expected {lottery.max_new_tokens * TOKEN_BYTES}",
        )
    for position, token in enumerate(decode_tokens(tokens)):
        if token >= lottery.vocab:
            raise InvalidBlock(
                Reject.BAD_WORK_SHAPE, f"token {token} at {position} outside the vocabulary"
            )


def check_work_pow(seed: bytes, tokens: bytes, target: int) -> None:
    """specs/pob.md §3 rule 2 (context-free, two hashes): the draw meets the target."""
    if pow_value(seed, tokens) > target:
        raise InvalidBlock(Reject.BAD_WORK_POW, "the draw does not meet the target")


def check_work(
    seed: bytes, tokens: bytes, jobs: Sequence[LotteryJob], verifier: WorkVerifier
) -> DrawTask:
    """specs/pob.md §3 rule 3 (contextual): the tokens are the exact generation for the seed's prompt
    among the jobs active at the parent. The verifier runs the model; consensus takes
    only its yes or no."""
    job, index = choose_prompt(seed, jobs)
    task = DrawTask(job, index, seed)
    if not verifier(task, tokens):
        raise InvalidBlock(
            Reject.BAD_WORK,
            f"tokens are not the draw of job {job.job_id.hex()[:16]} prompt {index}",
        )
    return task


# -- steward jobs ----------------------------------------------------------------------------
def steward_message(magic: bytes, job_id: bytes) -> bytes:
    """What a steward signs to admit a lottery job on one network."""
    return tagged_hash(TAG_STEWARD, magic + job_id)


def check_prompt_text(text: str) -> None:
    """A lottery prompt: 1..MAX_PROMPT_BYTES bytes of UTF-8 with no control character
    (U+0000–U+001F, U+007F–U+009F) and no space at either end.

    The rule names code points, not Unicode categories: a category test (``isprintable``)
    follows the interpreter's Unicode tables, which grow with each Python release, and
    two nodes on different versions would disagree about a block."""
    size = len(text.encode("utf-8"))
    if not 1 <= size <= MAX_PROMPT_BYTES:
        raise ValueError(f"{size} bytes, outside 1..{MAX_PROMPT_BYTES}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        raise ValueError("a control character")
    if text[0] == " " or text[-1] == " ":
        raise ValueError("a space at either end")


def prompts_root(prompts: Sequence[str]) -> bytes:
    """The Merkle root over the sha256 of each prompt's UTF-8 bytes: a job's inputs_root."""
    return merkle_root([sha256(p.encode("utf-8")) for p in prompts])


class JobSubmit(NamedTuple):
    spec: JobSpec
    prompts: tuple[str, ...]
    steward: bytes
    signature: bytes


def parse_job_submit(tx: Transaction) -> tuple[bytes, list[str], bytes, bytes]:
    """The fields of a (shape-checked, chain/kinds.py) job-submit payload."""
    spec, prompts, steward, signature = tx.payload
    return spec, prompts, steward, signature


def check_job_submit(tx: Transaction, magic: bytes, lottery: LotteryParams) -> JobSubmit:
    """specs/pob.md §4: a steward's lottery job is a sample job of the network's one shape, over the
    prompts it carries, signed by a steward. Raises ``InvalidTransaction``."""
    raw_spec, raw_prompts, steward, signature = parse_job_submit(tx)
    try:
        spec = decode_job_spec(raw_spec)
    except InvalidJobSpec as exc:
        raise InvalidTransaction(Reject.JOB_SPEC, str(exc)) from None
    if spec.encoded != raw_spec:
        raise InvalidTransaction(Reject.JOB_SPEC, "job spec is not in canonical form")
    expected = lottery.job_spec(spec.inputs_root, spec.items)
    if spec != expected:
        raise InvalidTransaction(
            Reject.JOB_LOTTERY,
            "a lottery job must use the network's model, max_new_tokens, temperature and shape",
        )
    prompts = tuple(raw_prompts)
    if len(prompts) != spec.items:
        raise InvalidTransaction(
            Reject.JOB_PROMPTS, f"{len(prompts)} prompts for a job of {spec.items} items"
        )
    for n, text in enumerate(prompts):
        try:
            check_prompt_text(text)
        except ValueError as exc:
            raise InvalidTransaction(Reject.JOB_PROMPTS, f"prompt {n}: {exc}") from None
    if len(set(prompts)) != len(prompts):
        raise InvalidTransaction(Reject.JOB_PROMPTS, "a prompt appears twice")
    if prompts_root(prompts) != spec.inputs_root:
        raise InvalidTransaction(Reject.JOB_PROMPTS, "prompts do not hash to the inputs root")
    if steward not in lottery.stewards:
        raise InvalidTransaction(Reject.JOB_STEWARD, "key is not a steward of this network")
    if not verify(steward, signature, steward_message(magic, spec.job_id)):
        raise InvalidTransaction(Reject.JOB_STEWARD, "steward signature invalid")
    return JobSubmit(spec, prompts, steward, signature)
