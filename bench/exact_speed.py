"""How fast is the integer-only SmolLM2 against the fp32 model, and what do checks cost?

Eight short cancer-knowledge questions in the chat template (``encode_prompt(...,
chat=True)``); the fp32 model gets the very same token ids. Both decode greedily for
exactly ``--new-tokens`` tokens per prompt (the integer model with ``stop_at_eos=False``,
the fp32 loop ignoring EOS), left-padded batches like the project's runners, with
``--threads`` CPU threads (default 1) or on ``--device cuda``. Measured in the same run:

* decode tokens/s of the integer model (``workloads.exact.generate``, int8 backend,
  no digests) and of the fp32 model (transformers SmolLM2 from ``load_causal_lm``, a
  plain KV-cache loop mirroring ``workloads.generate``), at batch 1 (the prompts one by
  one) and batch 8 (all at once). The first forward call (prefill, which also yields the
  first token) is timed apart; decode tokens/s is ``batch * (new - 1)`` over the time
  after it (the ``new - 1`` one-token forward passes and the choice of every token);
* the teacher-forced ``verify`` of one generation against that generation (digests on);
* the cost of one ``sampling.choose`` at temperature 700 on a [1, 49152] and on an
  [8, 49152] logit row block (with ``uniform64`` draws), against a decode step.

Also checked: the integer tokens are the same at batch 1 and batch 8 (they must be), and
how far the integer and fp32 greedy continuations agree. ``--profile`` adds a per-phase
split and torch.profiler's top operators of the integer decode step.
The last line is ``ratio <integer decode tok/s / fp32 decode tok/s at batch 8>``.

Run: ``.venv/bin/python bench/exact_speed.py [--threads 1] [--new-tokens 32]
[--device cpu|cuda] [--store DIR] [--profile]`` (``--store`` keeps the derived models
between runs; by default a temporary store is used and the integer model derived, ~40 s).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

import workloads.exact.forward as exact_forward
from workloads.exact import ExactRunner, encode_prompt, generate, load_exact_model, verify
from workloads.exact.sampling import choose, uniform64
from workloads.models import load_causal_lm
from workloads.runtime import deterministic, device_name
from workloads.store import BlobStore, import_packaged_model

QUESTIONS = [
    "What is the difference between a benign and a malignant tumour?",
    "Why do mutations in the BRCA1 gene raise the risk of breast cancer?",
    "How does mammography screening help to find breast cancer early?",
    "What happens in a phase III clinical trial of a new cancer drug?",
    "Explain how immune checkpoint inhibitors help the body fight cancer.",
    "What does the stage of a cancer describe?",
    "Why does chemotherapy often cause hair loss?",
    "Name three lifestyle factors that increase the risk of cancer.",
]
SEED = b"exact-speed"


class Clock:
    """perf_counter that waits for the device first."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


# -- the integer model ----------------------------------------------------------------------


class TimedRunner:
    """Times the first ``forward`` call (the prefill) of each generation apart."""

    def __init__(self, runner: ExactRunner, clock: Clock) -> None:
        self.runner = runner
        self.clock = clock
        self.prefill = 0.0
        self._first = True
        inner = runner.forward

        @functools.wraps(inner)
        def forward(*args: Any, **kwargs: Any) -> torch.Tensor:
            if not self._first:
                return inner(*args, **kwargs)
            self._first = False
            started = clock()
            out = inner(*args, **kwargs)
            self.prefill += clock() - started
            return out

        runner.forward = forward  # type: ignore[method-assign]

    def generate(
        self, prompts: Sequence[list[int]], new: int, digests: bool = False
    ) -> tuple[list[list[int]], float, float]:
        """Tokens of each prompt, prefill seconds, total seconds."""
        self._first = True
        self.prefill = 0.0
        started = self.clock()
        gens = generate(
            self.runner,
            prompts,
            [SEED] * len(prompts),
            new,
            0,
            stop_at_eos=False,
            digests=digests,
        )
        total = self.clock() - started
        return [g.tokens for g in gens], self.prefill, total


# -- the fp32 model ---------------------------------------------------------------------------


@torch.inference_mode()
def fp32_generate(
    model: Any, prompts: Sequence[list[int]], new: int, eos: int, clock: Clock
) -> tuple[list[list[int]], float, float]:
    """Greedy, exactly ``new`` tokens per prompt (EOS ignored), left-padded as
    ``workloads.generate`` does; tokens, prefill seconds, total seconds."""
    from transformers import DynamicCache

    dev = next(model.parameters()).device
    n = len(prompts)
    width = max(len(p) for p in prompts)
    started = clock()
    ids = torch.full((n, width), eos, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[row, width - len(p) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    ids, mask, pos = ids.to(dev), mask.to(dev), pos.to(dev)
    cache: Any = DynamicCache(config=model.config)

    def step(x: torch.Tensor, m: torch.Tensor, p: torch.Tensor, c: Any) -> tuple[Any, Any]:
        out = model(
            input_ids=x, attention_mask=m, position_ids=p, cache=c, use_cache=True, logits_to_keep=1
        )
        return out.logits[:, -1, :].float(), out.cache

    logits, cache = step(ids, mask, pos, cache)
    prefill = clock() - started
    tokens: list[list[int]] = [[] for _ in range(n)]
    last = pos[:, -1:]
    for i in range(new):
        chosen = torch.argmax(logits, dim=-1)
        for row, t in enumerate(chosen.tolist()):
            tokens[row].append(t)
        if i == new - 1:
            break
        last = last + 1
        mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=dev)], dim=1)
        logits, cache = step(chosen[:, None], mask, last, cache)
    return tokens, prefill, clock() - started


# -- helpers ----------------------------------------------------------------------------------

Gen = Callable[[Sequence[list[int]], int], tuple[list[list[int]], float, float]]


def run_batches(gen: Gen, prompts: list[list[int]], batch: int, new: int) -> dict[str, Any]:
    tokens: list[list[int]] = []
    prefill = total = 0.0
    for start in range(0, len(prompts), batch):
        t, p, s = gen(prompts[start : start + batch], new)
        tokens += t
        prefill += p
        total += s
    decode = total - prefill
    made = len(prompts) * (new - 1)
    return {
        "tokens": tokens,
        "prefill": prefill,
        "decode": decode,
        "total": total,
        "decode_tps": made / decode,
        "total_tps": len(prompts) * new / total,
        "step_ms": decode / ((len(prompts) // batch) * (new - 1)) * 1000,
    }


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return min(runs, key=lambda r: r["decode"])


def time_per_call(fn: Callable[[], Any], repeats: int, clock: Clock) -> float:
    fn()
    started = clock()
    for _ in range(repeats):
        fn()
    return (clock() - started) / repeats


def agreement(a: list[list[int]], b: list[list[int]]) -> tuple[int, int, int]:
    """(identical rows, tokens before the first divergence summed, total tokens)."""
    same = prefix = total = 0
    for x, y in zip(a, b, strict=True):
        n = 0
        while n < min(len(x), len(y)) and x[n] == y[n]:
            n += 1
        same += x == y
        prefix += n
        total += len(x)
    return same, prefix, total


def profile_decode(runner: ExactRunner, prompts: list[list[int]], steps: int, clock: Clock) -> None:
    """Per-phase split and torch.profiler top operators of integer decode steps."""
    phases: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            out = fn(*args, **kwargs)
            phases[name] += clock() - started
            return out

        return wrapper

    dev = runner.device
    current = ["?"]  # the linear layer whose matmul runs

    def matmul_by_layer(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            out = fn(*args, **kwargs)
            phases[f"matmul {current[0]}"] += clock() - started
            return out

        return wrapper

    # which linear layer a ``_linear`` call multiplies: its prepared weight, found by
    # identity among the arguments (or a layer name passed as a string)
    names = {id(runner.head): "head"}
    for layer in runner.layers:
        for name in ("qkv", "o", "gate_up", "down"):
            item = layer.get(name) if isinstance(layer, dict) else getattr(layer, name, None)
            names[id(item)] = name

    def linear_named(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current[0] = "?"
            for x in (*args, *kwargs.values()):
                if isinstance(x, str) or id(x) in names:
                    current[0] = x if isinstance(x, str) else names[id(x)]
            return fn(*args, **kwargs)

        return wrapper

    def one_step(logits: torch.Tensor, pos: torch.Tensor, cache: Any) -> torch.Tensor:
        batch = logits.shape[0]
        chosen = choose(runner, logits, 0, [0] * batch)
        x = torch.tensor(chosen, dtype=torch.int64, device=dev)[:, None]
        ones = torch.ones((batch, 1), dtype=torch.bool, device=dev)
        return runner.forward(x, pos, ones, cache, 1)[:, 0]

    saved = {
        name: getattr(exact_forward, name) for name in ("quantize_rms", "quantize_plain", "rescale")
    }
    backend_matmul = runner.backend.matmul
    try:
        for name, fn in saved.items():
            setattr(exact_forward, name, timed(name, fn))
        runner.backend.matmul = matmul_by_layer(backend_matmul)  # type: ignore[method-assign]
        runner._linear = linear_named(runner._linear)  # type: ignore[method-assign]
        runner._attention = timed("attention", runner._attention)  # type: ignore[method-assign]
        runner._rope = timed("rope", runner._rope)  # type: ignore[method-assign]
        runner._visible = timed("visibility mask", runner._visible)  # type: ignore[method-assign]
        for batch in (1, len(prompts)):
            rows = prompts[:batch]
            width = max(len(p) for p in rows)
            tokens = torch.zeros((batch, width), dtype=torch.int64)
            valid = torch.zeros((batch, width), dtype=torch.bool)
            for r, p in enumerate(rows):
                tokens[r, width - len(p) :] = torch.tensor(p)
                valid[r, width - len(p) :] = True
            positions = (valid.cumsum(-1) - 1).clamp(min=0).to(dev)
            cache = runner.new_cache(batch, width + 2 * steps + 2)
            logits = runner.forward(tokens.to(dev), positions, valid.to(dev), cache, 1)[:, 0]
            pos = positions[:, -1:] + 1
            phases.clear()
            started = clock()
            for _ in range(steps):
                logits = one_step(logits, pos, cache)
                pos = pos + 1
            total = clock() - started
            print(
                f"\ninteger decode step, batch {batch}, {steps} steps: "
                f"{total / steps * 1000:.1f} ms per step (timers synchronise; a little slower)"
            )
            for name, seconds in sorted(phases.items(), key=lambda kv: -kv[1]):
                print(f"  {name:<22}{seconds / steps * 1000:8.2f} ms  {seconds / total:6.1%}")
            rest = total - sum(phases.values())
            print(
                f"  {'other (silu, residual)':<22}{rest / steps * 1000:8.2f} ms  {rest / total:6.1%}"
            )
            activities = [torch.profiler.ProfilerActivity.CPU]
            if dev.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            with torch.profiler.profile(activities=activities) as prof:
                for _ in range(steps):
                    logits = one_step(logits, pos, cache)
                    pos = pos + 1
            sort = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
            print(prof.key_averages().table(sort_by=sort, row_limit=10, max_name_column_width=28))
    finally:
        for name, fn in saved.items():
            setattr(exact_forward, name, fn)
        for name in ("_linear", "_attention", "_rope", "_visible"):
            runner.__dict__.pop(name, None)
        runner.backend.__dict__.pop("matmul", None)


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=1, help="best of N timed runs")
    parser.add_argument("--store", type=Path, default=None, help="a store dir to keep models")
    parser.add_argument("--profile", action="store_true", help="profile integer decode steps")
    args = parser.parse_args()
    new = args.new_tokens
    if new < 2:
        parser.error("--new-tokens must be at least 2 (one prefill token, then decode)")
    dev = deterministic(args.device, threads=args.threads)
    clock = Clock(dev)

    with tempfile.TemporaryDirectory(prefix="fc-exact-speed-") as tmp:
        store = BlobStore(args.store or Path(tmp))
        weights = import_packaged_model(store, "llama-smollm2-135m")
        fp32 = load_causal_lm(store, weights, args.device).model.eval()
        exact = load_exact_model(store, "smollm2")
    runner = ExactRunner(exact, backend="int8", device=args.device)
    timed = TimedRunner(runner, clock)
    eos = exact.config.eos_token_id
    prompts = [encode_prompt(exact, q, chat=True) for q in QUESTIONS]

    def int_gen(p: Sequence[list[int]], n: int) -> tuple[list[list[int]], float, float]:
        return timed.generate(p, n)

    def fp_gen(p: Sequence[list[int]], n: int) -> tuple[list[list[int]], float, float]:
        return fp32_generate(fp32, p, n, eos, clock)

    int_gen(prompts[:2], 3)  # warm-ups: first-call allocations and kernel choices
    fp_gen(prompts[:2], 3)
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for batch in (1, len(prompts)):
        for name, gen in (("integer", int_gen), ("fp32", fp_gen)):
            results[name, batch] = best(
                [run_batches(gen, prompts, batch, new) for _ in range(args.repeats)]
            )

    # verification of one generation against the generation itself (digests on, as a node)
    gen_tokens, _, gen_seconds = timed.generate(prompts[:1], new, digests=True)
    started = clock()
    verdict = verify(runner, prompts[0], SEED, gen_tokens[0], new, 0, stop_at_eos=False)
    verify_seconds = clock() - started
    assert verdict.ok, verdict.reason

    # sampling: one choose at temperature 700, real logits of the eight prompts
    width = max(len(p) for p in prompts)
    tokens = torch.zeros((len(prompts), width), dtype=torch.int64)
    valid = torch.zeros((len(prompts), width), dtype=torch.bool)
    for r, p in enumerate(prompts):
        tokens[r, width - len(p) :] = torch.tensor(p)
        valid[r, width - len(p) :] = True
    positions = (valid.cumsum(-1) - 1).clamp(min=0)
    cache = runner.new_cache(len(prompts), width)
    logits = runner.forward(tokens.to(dev), positions.to(dev), valid.to(dev), cache, 1)[:, 0]
    draws = [uniform64(SEED, 0)] * len(prompts)
    reps = 200
    choose1 = time_per_call(lambda: choose(runner, logits[:1], 700, draws[:1]), reps, clock)
    choose8 = time_per_call(lambda: choose(runner, logits, 700, draws), reps, clock)
    greedy8 = time_per_call(lambda: choose(runner, logits, 0, [0] * 8), reps, clock)
    draw_cost = time_per_call(lambda: uniform64(SEED, 7), 2000, clock)

    where = device_name(dev) if dev.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    lengths = [len(p) for p in prompts]
    print(
        f"{len(prompts)} chat prompts ({min(lengths)}-{max(lengths)} tokens), greedy, {new} new "
        f"tokens each, EOS ignored; {where}; best of {args.repeats}"
    )
    print(
        f"{'model':<9}{'batch':>6}{'prefill s':>11}{'decode s':>10}{'ms/step':>9}"
        f"{'decode tok/s':>14}{'total tok/s':>13}"
    )
    for (name, batch), r in sorted(
        results.items(), key=lambda kv: (kv[0][1], kv[0][0] != "integer")
    ):
        print(
            f"{name:<9}{batch:>6}{r['prefill']:>11.3f}{r['decode']:>10.3f}{r['step_ms']:>9.1f}"
            f"{r['decode_tps']:>14.1f}{r['total_tps']:>13.1f}"
        )
    for batch in (1, len(prompts)):
        ratio = results["integer", batch]["decode_tps"] / results["fp32", batch]["decode_tps"]
        print(f"integer/fp32 decode tok/s at batch {batch}: {ratio:.3f}")

    int1, int8_ = results["integer", 1]["tokens"], results["integer", len(prompts)]["tokens"]
    fp1, fp8 = results["fp32", 1]["tokens"], results["fp32", len(prompts)]["tokens"]
    same, _, _ = agreement(int1, int8_)
    print(f"integer tokens batch 1 == batch 8: {same}/{len(prompts)} rows identical")
    same, _, _ = agreement(fp1, fp8)
    print(f"fp32 tokens batch 1 == batch 8: {same}/{len(prompts)} rows identical")
    same, prefix, total = agreement(int1, fp1)
    print(
        f"integer vs fp32 greedy (batch 1): {same}/{len(prompts)} rows identical, "
        f"{prefix}/{total} tokens before the first divergence"
    )
    step_ms = results["integer", 1]["step_ms"]
    print(
        f"verify (one teacher-forced pass, {len(prompts[0])}+{new} tokens): "
        f"{verify_seconds * 1000:.0f} ms vs generation {gen_seconds * 1000:.0f} ms "
        f"(digests on): {verify_seconds / gen_seconds:.3f} of generation"
    )
    print(
        f"choose, temperature 700: [1, {logits.shape[-1]}] {choose1 * 1000:.3f} ms "
        f"({choose1 * 1000 / step_ms:.1%} of a batch-1 decode step), "
        f"[8, {logits.shape[-1]}] {choose8 * 1000:.3f} ms ({choose8 / 8 * 1000:.3f} ms per row); "
        f"greedy [8] {greedy8 * 1000:.3f} ms; uniform64 {draw_cost * 1e6:.1f} us"
    )
    if args.profile:
        profile_decode(runner, prompts, min(8, new), clock)
    final = (
        results["integer", len(prompts)]["decode_tps"] / results["fp32", len(prompts)]["decode_tps"]
    )
    print(f"ratio {final:.3f}")


if __name__ == "__main__":
    main()
