"""Bitwise identity of exact work across threads, backends, instruction sets, batching
and prefill vs decode (specs/exact.md §8). Each configuration runs in its own process
and prints the digest of every logit row and the tokens of a greedy and a sampled
generation; the table shows whether each equals the reference (int8, 1 thread).

    .venv/bin/python bench/exact_identity.py [--model smollm2|tiny] [--new-tokens 32] [--store DIR]

Last line: ``ratio <identical configurations / configurations>`` (1.0 when all agree).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "What are the first-line treatments for HER2-positive breast cancer?",
    "Explain how a CAR-T cell recognises a tumour.",
    "Which blood test helps monitor prostate cancer?",
    "Why do some tumours become resistant to chemotherapy?",
]
SEED = bytes.fromhex("1d" * 32)

# name -> (threads, backend, env, mode)
CONFIGS: dict[str, tuple[int, str, dict[str, str], str]] = {
    "int8, 1 thread (reference)": (1, "int8", {}, "single"),
    "int8, 2 threads": (2, "int8", {}, "single"),
    "fp32 BLAS, 1 thread": (1, "fp32", {}, "single"),
    "fp32 BLAS, 2 threads": (2, "fp32", {}, "single"),
    "fp64 BLAS, 1 thread": (1, "fp64", {}, "single"),
    "int64 (no BLAS), 2 threads": (2, "int64", {}, "single"),
    "int8, ATEN_CPU_CAPABILITY=default": (1, "int8", {"ATEN_CPU_CAPABILITY": "default"}, "single"),
    "fp32, ATEN_CPU_CAPABILITY=default": (2, "fp32", {"ATEN_CPU_CAPABILITY": "default"}, "single"),
    "int8, padded batch of 4": (2, "int8", {}, "batch"),
    "int8, verify pass (prefill) vs decode": (2, "int8", {}, "verify"),
}


def child(args: argparse.Namespace) -> None:
    import torch

    from workloads.exact import ExactRunner, encode_prompt, generate, load_exact_model, verify
    from workloads.store import BlobStore

    threads, backend, _, mode = CONFIGS.get(args.child, (1, "int8", {}, args.child))
    torch.set_num_threads(threads)
    device = "cuda" if mode == "cuda" else "cpu"
    model = load_exact_model(BlobStore(Path(args.store)), args.model)
    runner = ExactRunner(model, backend, device)
    prompts = [encode_prompt(model, p, chat=True) for p in PROMPTS]
    out = {}
    for temp in (0, 700):
        if mode == "batch":
            gen = generate(runner, prompts, [SEED] * 4, args.new_tokens, temp, stop_at_eos=False)[0]
            out[str(temp)] = [gen.tokens, [d.hex() for d in gen.row_digests]]
        else:
            gen = generate(runner, prompts[:1], [SEED], args.new_tokens, temp, stop_at_eos=False)[0]
            digests = gen.row_digests
            if mode == "verify":
                verdict = verify(
                    runner, prompts[0], SEED, gen.tokens, args.new_tokens, temp, stop_at_eos=False
                )
                assert verdict.ok, verdict.reason
                digests = verdict.row_digests
            out[str(temp)] = [gen.tokens, [d.hex() for d in digests]]
    if mode == "long":
        text = " ".join(
            f"Patient {i} received chemotherapy cycle {i % 6 + 1} and reported fatigue."
            for i in range(80)
        )
        long = encode_prompt(model, text)[:900]
        gen = generate(runner, [long], [SEED], 8, 700, stop_at_eos=False)[0]
        verdict = verify(runner, long, SEED, gen.tokens, 8, 700, stop_at_eos=False)
        out["900"] = [verdict.ok and verdict.row_digests == gen.row_digests]
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2", choices=["smollm2", "tiny"])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument(
        "--store", default=None, help="blob store (default: a cache under the temp dir)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cuda", action="store_true", help="also run int8 on CUDA")
    args = parser.parse_args()
    args.store = args.store or str(Path(tempfile.gettempdir()) / "fc-bench-store")
    if args.child:
        child(args)
        return
    configs = dict(CONFIGS)
    configs["int8, 900-token prompt: prefill vs decode"] = (2, "int8", {}, "long")
    if args.cuda:
        configs["int8 on CUDA (_int_mm)"] = (1, "int8", {}, "cuda")
    results: dict[str, dict] = {}
    for name, (_, _, env, _) in configs.items():
        started = time.perf_counter()
        cmd = [
            sys.executable,
            __file__,
            "--model",
            args.model,
            "--new-tokens",
            str(args.new_tokens),
            "--store",
            args.store,
            "--child",
            name if name in CONFIGS else configs[name][3],
        ]
        done = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT, check=False
        )
        if done.returncode != 0:
            print(f"{name}: FAILED\n{done.stderr[-3000:]}")
            results[name] = {}
            continue
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  ran {name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    reference = results["int8, 1 thread (reference)"]
    print(
        f"model {args.model}, {args.new_tokens} new tokens, prompt 0 of {len(PROMPTS)}; each row its own process"
    )
    print(f"{'configuration':45s} {'greedy digest':18s} {'sampled digest':18s} same")
    same_count = 0
    for name, res in results.items():
        if "900" in res:
            ok = bool(res["900"][0])
            print(f"{name:45s} {'(rows of verify == rows of decode)':37s} {'yes' if ok else 'NO'}")
        else:
            import hashlib

            def digest(temp: str, res: dict = res) -> str:
                return (
                    hashlib.sha256("".join(res[temp][1]).encode()).hexdigest()[:16] if res else "-"
                )

            ok = bool(res) and res == reference
            print(f"{name:45s} {digest('0'):18s} {digest('700'):18s} {'yes' if ok else 'NO'}")
        same_count += ok
    print(f"ratio {same_count / len(results):.3f}")


if __name__ == "__main__":
    main()
