"""The ``sample`` kind: exact work as a job (specs/jobs.md §2, specs/exact.md).

An item's input blob is a prompt in UTF-8, used as is (no chat template: a job that wants
one puts it in its prompts), refused if empty, not UTF-8 or longer than
``max_prompt_tokens``. The worker samples ``max_new_tokens`` tokens with the integer model
the spec names by artifact hash: greedy at temperature 0, otherwise exact inverse-CDF
sampling keyed by the item's seed ``H("fc/sample-item", job id || index as u32)``; with
``stop_at_eos`` = 1 a sequence may end early at EOS.

Output bytes: ``pack([token ids])``. There is no tolerance: the auditor re-runs the model
once, teacher-forced, and an item passes only if every token is exactly the rule's choice
(distance 0), otherwise it fails at the first position that differs. This is how the
lottery's non-winning draws become records (exact batches): any seat re-checks them
bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chain.encoding import pack, unpack_canonical
from chain.errors import DecodeError
from chain.hashing import tagged_hash
from chain.jobs import JobSpec
from workloads.audit import ItemCheck

TAG_ITEM_SEED = "fc/sample-item"
FAIL_DISTANCE = 1e6
DEFAULT_BATCH = 8
MODEL_NAMES = {"exact-smollm2-135m": "smollm2", "exact-tiny": "tiny"}


def item_seed(spec: JobSpec, index: int) -> bytes:
    return tagged_hash(TAG_ITEM_SEED, spec.job_id + index.to_bytes(4, "big"))


def _prompt(spec: JobSpec, blob: bytes, runtime: Any) -> list[int]:
    from workloads.exact import encode_prompt

    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"prompt is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    ids = encode_prompt(runtime.model, text) if text else []
    if not ids:
        raise ValueError("prompt is empty (0 tokens)")
    if len(ids) > spec.param("max_prompt_tokens"):
        raise ValueError(
            f"prompt has {len(ids)} tokens, the job allows {spec.param('max_prompt_tokens')}"
        )
    return ids


def encode_output(tokens: Sequence[int]) -> bytes:
    return pack([[int(t) for t in tokens]])  # type: ignore[no-any-return]


def decode_output(data: bytes, max_new: int) -> list[int]:
    """The token ids of an output; raises ValueError saying what is wrong."""
    try:
        value = unpack_canonical(data, 16 + 10 * max_new)
    except DecodeError as exc:
        raise ValueError(f"output is not canonical msgpack: {exc.detail}") from None
    if type(value) is not list or len(value) != 1 or type(value[0]) is not list:
        raise ValueError("output is not [tokens]")
    if not all(type(t) is int for t in value[0]):
        raise ValueError("tokens are not a list of ints")
    return list(value[0])


def run_items(
    spec: JobSpec,
    indices: Sequence[int],
    inputs: Sequence[bytes],
    runtime: Any,
    *,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[bytes]:
    """Sample for each item, in batches of ``batch_size`` prompts (each row's integers are
    those it gets alone, so batching is the worker's choice)."""
    from workloads.exact import generate

    if len(indices) != len(inputs):
        raise ValueError("indices and inputs differ in length")
    prompts = [_prompt(spec, blob, runtime) for blob in inputs]
    size = max(1, batch_size or DEFAULT_BATCH)
    outputs: list[bytes] = []
    for start in range(0, len(prompts), size):
        rows = range(start, min(start + size, len(prompts)))
        drawn = generate(
            runtime,
            [prompts[i] for i in rows],
            [item_seed(spec, indices[i]) for i in rows],
            spec.param("max_new_tokens"),
            spec.param("temperature_milli"),
            stop_at_eos=bool(spec.param("stop_at_eos")),
            digests=False,
        )
        outputs += [encode_output(g.tokens) for g in drawn]
        if progress is not None:
            progress(len(rows))
    return outputs


def check_items(
    spec: JobSpec,
    indices: Sequence[int],
    inputs: Sequence[bytes],
    outputs: Sequence[bytes],
    runtime: Any,
    tol: Any,
) -> list[ItemCheck]:
    """Verify each sampled item exactly: one teacher-forced pass, integer equality."""
    from workloads.exact import verify

    if not len(indices) == len(inputs) == len(outputs):
        raise ValueError("indices, inputs and outputs differ in length")
    max_new = spec.param("max_new_tokens")
    checks = []
    for index, blob, output in zip(indices, inputs, outputs, strict=True):
        unit = index // spec.unit_size
        try:
            prompt = _prompt(spec, blob, runtime)
            tokens = decode_output(output, max_new)
        except ValueError as exc:
            checks.append(ItemCheck(unit, index, False, FAIL_DISTANCE, str(exc)))
            continue
        verdict = verify(
            runtime,
            prompt,
            item_seed(spec, index),
            tokens,
            max_new,
            spec.param("temperature_milli"),
            stop_at_eos=bool(spec.param("stop_at_eos")),
            digests=False,
        )
        reason = "" if verdict.ok else f"position {verdict.position}: {verdict.reason}"
        checks.append(
            ItemCheck(unit, index, verdict.ok, 0.0 if verdict.ok else FAIL_DISTANCE, reason)
        )
    return checks


def load_runtime(store: Any, spec: JobSpec, device: str = "cpu") -> Any:
    """The runner of the integer model the spec names; refuses a weights hash that is not
    that model's pinned artifact."""
    from workloads.exact import ExactRunner, load_exact_model
    from workloads.store import BlobError

    name = MODEL_NAMES[spec.arch]
    model = load_exact_model(store, name)
    if model.sha256 != spec.weights:
        raise BlobError(
            f"{spec.arch}: weights {spec.weights.hex()[:16]} are not the pinned artifact {model.sha256.hex()[:16]}"
        )
    return ExactRunner(model, "int8", device)
