"""The block lottery's model side: compute draws and check them (specs/pob.md §2–3).

``chain/`` decides which prompt a header's seed picks and whether a draw meets the
target; it hands the model work to the two functions made here, as
``chain.lottery.Sampler`` and ``chain.lottery.WorkVerifier``:

* :meth:`ExactLottery.sample` generates a batch of draws (one left-padded batch through
  the integer model, each row bit-identical to a lone run), exactly ``max_new_tokens``
  tokens each with EOS an ordinary token;
* :meth:`ExactLottery.verify` checks one draw with a single teacher-forced pass.

Prompts come from the job: a steward's job carries its texts on chain; the standing job's
texts are the shipped file, refused unless its sha256 is the one the network pins. Every
prompt is asked in the model's chat template.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from chain.lottery import DrawTask, LotteryParams, decode_tokens, encode_tokens
from chain.params import ChainParams
from workloads.exact.prompts import load_prompt_set, prompt_set_root, prompt_set_sha256
from workloads.store import BlobStore

# The integer model each lottery architecture names (workloads/exact/artifacts.py).
MODEL_FOR_ARCH = {"exact-tiny": "tiny", "exact-smollm2-135m": "smollm2"}


class LotteryError(Exception):
    """The lottery cannot run here (model or prompt set missing or not the pinned one)."""


def standing_prompts(lottery: LotteryParams) -> tuple[str, ...]:
    """The shipped standing prompt set, checked against the network's pins."""
    if prompt_set_sha256() != lottery.standing_sha256:
        raise LotteryError("the shipped standing prompt set does not match its pinned sha256")
    prompts = tuple(load_prompt_set())
    if prompt_set_root(prompts) != lottery.standing_root or len(prompts) != lottery.standing_items:
        raise LotteryError("the shipped standing prompt set does not match its pinned root")
    return prompts


class ExactLottery:
    """The network's lottery model, loaded once, with its sampler and verifier."""

    def __init__(
        self,
        params: ChainParams,
        store: BlobStore,
        device: str = "cpu",
        backend: str = "int8",
        threads: int | None = 1,
    ) -> None:
        """``threads``: torch's intra-op threads for this process (None leaves torch's
        default). One is the default: a block's check is one short pass, and several
        processes on one machine (a test network) that each spin a thread per core slow
        one another down many times over."""
        import torch

        from workloads.exact.artifacts import load_exact_model, model_hash
        from workloads.exact.forward import ExactRunner

        if threads is not None:
            torch.set_num_threads(threads)

        self.lottery = params.lottery
        name = MODEL_FOR_ARCH.get(self.lottery.arch)
        if name is None or model_hash(name) != self.lottery.model_hash:
            raise LotteryError(f"no integer model for lottery architecture {self.lottery.arch}")
        self.model = load_exact_model(store, name)
        self.runner = ExactRunner(self.model, backend=backend, device=device)
        self._standing = standing_prompts(self.lottery)
        self._encoded: dict[tuple[bytes, int], list[int]] = {}
        self._lock = threading.Lock()

    def prompt_text(self, task: DrawTask) -> str:
        prompts = task.job.prompts if task.job.prompts is not None else self._standing
        return prompts[task.prompt_index]

    def prompt_tokens(self, task: DrawTask) -> list[int]:
        """The chat-formatted prompt's tokens (cached: a prompt is drawn many times)."""
        from workloads.exact.sampling import encode_prompt

        key = (task.job.job_id, task.prompt_index)
        with self._lock:
            tokens = self._encoded.get(key)
        if tokens is None:
            tokens = encode_prompt(self.model, self.prompt_text(task), chat=True)
            # Admission bounds a prompt to MAX_PROMPT_BYTES, and a byte-level BPE token
            # covers at least one byte, so this holds for every admitted prompt.
            assert len(tokens) <= self.lottery.max_prompt_tokens, len(tokens)
            with self._lock:
                if len(self._encoded) > 100_000:
                    self._encoded.clear()
                self._encoded[key] = tokens
        return tokens

    def sample(self, tasks: Sequence[DrawTask]) -> list[bytes]:
        """``chain.lottery.Sampler``: the tokens of each draw, as header bytes."""
        from workloads.exact.sampling import generate

        if not tasks:
            return []
        generations = generate(
            self.runner,
            [self.prompt_tokens(t) for t in tasks],
            [t.seed for t in tasks],
            self.lottery.max_new_tokens,
            self.lottery.temperature_milli,
            stop_at_eos=False,
            digests=False,
        )
        return [encode_tokens(g.tokens) for g in generations]

    def verify(self, task: DrawTask, tokens: bytes) -> bool:
        """``chain.lottery.WorkVerifier``: are these the draw's tokens? Integer equality."""
        from workloads.exact.sampling import verify

        verdict = verify(
            self.runner,
            self.prompt_tokens(task),
            task.seed,
            decode_tokens(tokens),
            self.lottery.max_new_tokens,
            self.lottery.temperature_milli,
            stop_at_eos=False,
            digests=False,
        )
        return verdict.ok

    def answer(self, task: DrawTask, tokens: bytes) -> str:
        """The useful part of a draw: its text up to the first EOS."""
        from workloads.exact.sampling import decode_text

        ids = decode_tokens(tokens)
        eos = self.model.config.eos_token_id
        if eos in ids:
            ids = ids[: ids.index(eos)]
        return decode_text(self.model, ids)


_shared: dict[tuple[str, str, str], ExactLottery] = {}


def shared_lottery(params: ChainParams, store_dir: Path, device: str = "cpu") -> ExactLottery:
    """One lottery per network, store and device in a process (a model is ~100 MB)."""
    key = (params.name, str(store_dir), device)
    if key not in _shared:
        _shared[key] = ExactLottery(params, BlobStore(store_dir), device)
    return _shared[key]
