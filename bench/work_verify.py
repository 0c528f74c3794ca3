"""What does checking a lottery draw cost against making one? (specs/exact.md §4.3-4.4)

A block will be won by an exact draw: ``max_new`` tokens sampled by the integer SmolLM2
from a cancer-knowledge question in the chat template, with EOS an ordinary token (so
every draw costs the same). Every node re-checks the winning draw with one teacher-forced
pass. This bench measures, in the same run and on the same questions and seeds, the time
of one draw (batch 1, and per draw in a batch of ``--batch``, as a miner would run them)
and the time of its verification, on ``--threads`` CPU threads.

    .venv/bin/python bench/work_verify.py [--new-tokens 64] [--draws 6] [--batch 8] [--threads 1]

Last line: ``ratio <verify time / draw time at batch 1>`` (goal <= 0.15).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = [
    "How does HER2 amplification change the treatment of breast cancer?",
    "What makes pancreatic cancer hard to detect early?",
    "Why do KRAS mutations resist targeted therapy?",
    "How do PD-1 inhibitors restore T cell activity against tumours?",
    "What is the role of BRCA1 in homologous recombination?",
    "How is minimal residual disease measured in leukaemia?",
    "Which lifestyle factors most reduce colorectal cancer risk?",
    "What does a Gleason score describe?",
]
TEMPERATURE = 700


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--draws", type=int, default=6, help="draws timed at batch 1")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="smollm2", choices=["smollm2", "tiny"])
    parser.add_argument("--store", default=None, help="blob store (default: a temporary one)")
    args = parser.parse_args()

    import torch

    from workloads.exact import ExactRunner, encode_prompt, generate, load_exact_model, verify
    from workloads.store import BlobStore

    torch.set_num_threads(args.threads)
    store = BlobStore(Path(args.store or tempfile.mkdtemp(prefix="fc-work-verify-")))
    model = load_exact_model(store, args.model)
    runner = ExactRunner(model, "int8")
    prompts = [encode_prompt(model, q, chat=True) for q in QUESTIONS]
    seeds = [bytes([i]) * 32 for i in range(len(prompts))]
    generate(runner, prompts[:1], seeds[:1], 2, TEMPERATURE, stop_at_eos=False)  # warm up

    draw_s, verify_s = [], []
    for i in range(args.draws):
        p, s = prompts[i % len(prompts)], seeds[i % len(seeds)]
        started = time.perf_counter()
        out = generate(
            runner, [p], [s], args.new_tokens, TEMPERATURE, stop_at_eos=False, digests=False
        )[0]
        draw_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        verdict = verify(
            runner, p, s, out.tokens, args.new_tokens, TEMPERATURE, stop_at_eos=False, digests=False
        )
        verify_s.append(time.perf_counter() - started)
        assert verdict.ok, verdict.reason

    n = args.batch
    batch_prompts = [prompts[i % len(prompts)] for i in range(n)]
    started = time.perf_counter()
    generate(
        runner,
        batch_prompts,
        [seeds[i % len(seeds)] for i in range(n)],
        args.new_tokens,
        TEMPERATURE,
        stop_at_eos=False,
        digests=False,
    )
    batch_per_draw = (time.perf_counter() - started) / n

    draw, check = statistics.median(draw_s), statistics.median(verify_s)
    lengths = [len(p) for p in prompts]
    print(
        f"model {args.model}, {args.new_tokens} new tokens at T={TEMPERATURE / 1000}, prompts {min(lengths)}-{max(lengths)} tokens (chat), {args.threads} thread(s)"
    )
    print(
        f"draw, batch 1:          {draw * 1000:8.0f} ms  (median of {args.draws}; {args.new_tokens / draw:.1f} tok/s)"
    )
    print(
        f"draw, batch {n} (each):   {batch_per_draw * 1000:8.0f} ms  ({args.new_tokens / batch_per_draw:.1f} tok/s per miner)"
    )
    print(f"verify (one pass):      {check * 1000:8.0f} ms  (median of {args.draws})")
    print(f"verify / draw at batch {n}: {check / batch_per_draw:.3f}")
    print(f"ratio {check / draw:.3f}")


if __name__ == "__main__":
    main()
