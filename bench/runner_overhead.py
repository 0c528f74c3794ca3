"""How much does our runner cost over a plain torch loop, and what does an audit cost?

Measured in the same run, on the same model (MiniLM-L6, fp32, CPU unless ``--device``):

* **ours**: ``workloads.job.run_job`` on an embed job of ``--items`` texts: reading inputs
  from the store, tokenising, the forward passes, pooling, canonical output bytes, leaves,
  unit roots and the batch root;
* **plain**: a bare loop over the same texts in the same batches: tokenise, forward,
  mean-pool, normalise — what anyone would write with no commitments at all.

Each is run ``--repeats`` times (best kept, after a warm-up). Also printed: the audit's
cost per sampled item (one-by-one re-execution) against the worker's cost per item, and
for ``generate`` (SmolLM2-135M) the teacher-forced prefill check of a generation against
the generation itself. The last line is ``ratio <ours items/s / plain items/s>``.

Run: ``.venv/bin/python bench/runner_overhead.py [--items 256] [--batch 32] [--no-generate]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from workloads import embed
from workloads.job import audit_job, prepare_job, run_job
from workloads.runtime import deterministic
from workloads.store import BlobStore

WORDS = [
    "tumour",
    "receptor",
    "biopsy",
    "screening",
    "mutation",
    "therapy",
    "recurrence",
    "staging",
    "marker",
    "survival",
    "lymph",
    "node",
    "dose",
    "trial",
    "cohort",
    "imaging",
    "risk",
    "ductal",
    "lobular",
    "invasive",
    "hormone",
]


def texts(n: int) -> list[str]:
    """Deterministic sentences of 8 to 40 words (varied lengths, as real inputs are)."""
    out = []
    for i in range(n):
        length = 8 + (i * 7) % 33
        out.append(" ".join(WORDS[(i * 3 + k * 5) % len(WORDS)] for k in range(length)))
    return out


@torch.inference_mode()
def plain_loop(runtime: embed.Embedder, items: list[str], batch: int, max_tokens: int) -> int:
    done = 0
    for start in range(0, len(items), batch):
        enc = runtime.tokenizer(
            items[start : start + batch],
            padding=True,
            truncation=True,
            max_length=max_tokens,
            return_tensors="pt",
        ).to(runtime.device)
        hidden = runtime.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        done += torch.nn.functional.normalize(pooled, dim=1).shape[0]
    return done


def best_of(repeats: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def generation_figures(store: BlobStore, device: str) -> None:
    from workloads import generate
    from workloads.tolerances import GENERATE

    prompts = [
        "The main risk factors for breast cancer are",
        "A biopsy is recommended when",
        "Screening guidelines for women over fifty",
    ]
    spec, hashes = prepare_job(
        store,
        {
            "kind": "generate",
            "inputs": prompts,
            "params": {"max_prompt_tokens": 64, "max_new_tokens": 24, "temperature_milli": 0},
            "unit_size": 3,
        },
    )
    runtime = generate.load_runtime(store, spec, device)
    inputs = [store.get(h) for h in hashes]
    indices = list(range(len(prompts)))
    generate.run_items(spec, indices[:1], inputs[:1], runtime)  # warm-up
    started = time.perf_counter()
    outputs = generate.run_items(spec, indices, inputs, runtime, batch_size=1)
    gen = time.perf_counter() - started
    started = time.perf_counter()
    checks = generate.check_items(spec, indices, inputs, outputs, runtime, GENERATE)
    check = time.perf_counter() - started
    assert all(c.passed for c in checks), [c.reason for c in checks]
    print(
        f"generate: {len(prompts)} x 24 tokens in {gen:.2f} s; prefill check {check:.2f} s"
        f" ({check / gen:.3f} of generation)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-generate", action="store_true")
    args = parser.parse_args()
    deterministic(args.device)
    with tempfile.TemporaryDirectory(prefix="fc-runner-bench-") as tmp:
        store = BlobStore(Path(tmp))
        items = texts(args.items)
        spec, hashes = prepare_job(
            store,
            {"kind": "embed", "inputs": items, "params": {"max_tokens": 128}, "unit_size": 64},
        )
        runtime = embed.load_runtime(store, spec, args.device)
        plain_loop(runtime, items[: args.batch], args.batch, 128)  # warm-up
        ours = best_of(
            args.repeats,
            lambda: run_job(store, spec, hashes, runtime=runtime, batch_size=args.batch),
        )
        plain = best_of(args.repeats, lambda: plain_loop(runtime, items, args.batch, 128))
        result = run_job(store, spec, hashes, runtime=runtime, batch_size=args.batch)
        started = time.perf_counter()
        verdict = audit_job(store, result, runtime=runtime, samples=16, seed=1)
        audit = time.perf_counter() - started
        assert verdict.passed, verdict.reasons
        worker_per_item = ours / args.items
        print(f"embed, {args.items} texts, batch {args.batch}, {torch.get_num_threads()} threads")
        print(f"ours:  {args.items / ours:8.1f} items/s  ({ours:.3f} s)")
        print(f"plain: {args.items / plain:8.1f} items/s  ({plain:.3f} s)")
        print(
            f"audit: {audit / 16 * 1000:.1f} ms per sampled item (exact checks included)"
            f" vs worker {worker_per_item * 1000:.1f} ms per item"
            f" ({audit / 16 / worker_per_item:.1f}x: the auditor runs items one by one)"
        )
        if not args.no_generate:
            generation_figures(store, args.device)
        print(f"ratio {plain / ours:.3f}")


if __name__ == "__main__":
    main()
