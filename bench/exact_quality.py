# The evaluation text bench/data/exact_quality.txt was written for this project (original prose).
"""How much quality does the integer-only SmolLM2 lose against the fp32 model?

Both models score the same text (``bench/data/exact_quality.txt``: about half oncology,
genetics, screening, trials and pharmacology, half general prose, ~2,700 SmolLM2 tokens),
cut into the same non-overlapping windows of ``--window`` tokens (no BOS; every window
starts with an empty context, so its first token is not scored; a short last window is
kept). Per scored position, each model's next-token distribution is compared:

* perplexity of each model on the text (and on its medical and general halves);
* mean KL(fp32 || integer) per token, in nats;
* top-1 agreement: the integer model's argmax equals the fp32 model's argmax.

The integer model is ``workloads.exact`` ("smollm2", ``--backend``, default int8), its
logits int64 Q16 taken as ``float64 / 65536``; the fp32 model is the transformers
SmolLM2-135M from ``load_causal_lm`` (fp32, eval). Both run on the CPU with ``--threads``.
The last line is ``ratio <integer perplexity / fp32 perplexity>``.

Run: ``.venv/bin/python bench/exact_quality.py [--threads 2] [--windows N] [--store DIR]``
(``--store`` keeps the derived models between runs; by default a temporary store is
used and the integer model is derived into it, ~40 s).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from tokenizers import Tokenizer

from workloads.exact import ExactRunner, load_exact_model
from workloads.models import load_causal_lm
from workloads.runtime import deterministic
from workloads.store import BlobStore, import_packaged_model

TEXT = Path(__file__).resolve().parent / "data" / "exact_quality.txt"
GENERAL_STARTS = "The river that runs through the old market town"  # first general paragraph
Q16 = 65536.0


def tokenize(model_tokenizer_json: bytes, text: str) -> tuple[list[int], int]:
    """The text's token ids (no special tokens) and the index of the first token of the
    general half."""
    enc = Tokenizer.from_str(model_tokenizer_json.decode()).encode(text, add_special_tokens=False)
    split_char = text.index(GENERAL_STARTS)
    split = next(i for i, (start, _) in enumerate(enc.offsets) if start >= split_char)
    return list(enc.ids), split


def integer_logprobs(runner: ExactRunner, window: torch.Tensor) -> torch.Tensor:
    """float64 [T-1, vocab] log-probabilities of the integer model for positions 1..T-1."""
    t = window.shape[0]
    cache = runner.new_cache(1, t)
    logits = runner.forward(
        window[None],
        torch.arange(t)[None],
        torch.ones((1, t), dtype=torch.bool),
        cache,
        t,
    )[0, :-1]
    return torch.log_softmax(logits.to(torch.float64) / Q16, dim=-1)


@torch.inference_mode()
def fp32_logprobs(model, window: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """float64 [T-1, vocab] log-probabilities of the fp32 model for positions 1..T-1."""
    logits = model(input_ids=window[None], use_cache=False).logits[0, :-1]
    return torch.log_softmax(logits.to(torch.float64), dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=int, default=512, help="tokens per window")
    parser.add_argument("--windows", type=int, default=None, help="score only the first N")
    parser.add_argument("--backend", default="int8", help="integer matmul backend")
    parser.add_argument("--store", type=Path, default=None, help="a store dir to keep models")
    args = parser.parse_args()
    if (args.windows is not None and args.windows < 1) or args.window < 2:
        parser.error("--windows must be at least 1 and --window at least 2")
    deterministic("cpu", threads=args.threads)

    with tempfile.TemporaryDirectory(prefix="fc-exact-quality-") as tmp:
        store = BlobStore(args.store or Path(tmp))
        started = time.perf_counter()
        weights = import_packaged_model(store, "llama-smollm2-135m")
        fp32 = load_causal_lm(store, weights).model.eval()
        exact = load_exact_model(store, "smollm2")
        load_seconds = time.perf_counter() - started
    runner = ExactRunner(exact, backend=args.backend)

    text = TEXT.read_text()
    ids, split = tokenize(exact.tokenizer_json, text)
    starts = [s for s in range(0, len(ids), args.window) if len(ids) - s >= 2]
    if args.windows is not None:
        starts = starts[: args.windows]

    warm = torch.tensor(ids[:16], dtype=torch.int64)  # first-call costs out of the timings
    integer_logprobs(runner, warm)
    fp32_logprobs(fp32, warm)

    # per scored position: target index in the text, both NLLs, KL, argmax agreement
    nll_int: list[torch.Tensor] = []
    nll_fp: list[torch.Tensor] = []
    kls: list[torch.Tensor] = []
    agree: list[torch.Tensor] = []
    where: list[torch.Tensor] = []
    t_int = t_fp = 0.0
    for s in starts:
        window = torch.tensor(ids[s : s + args.window], dtype=torch.int64)
        targets = window[1:]
        started = time.perf_counter()
        lp_int = integer_logprobs(runner, window)
        t_int += time.perf_counter() - started
        started = time.perf_counter()
        lp_fp = fp32_logprobs(fp32, window)
        t_fp += time.perf_counter() - started
        nll_int.append(-lp_int.gather(-1, targets[:, None])[:, 0])
        nll_fp.append(-lp_fp.gather(-1, targets[:, None])[:, 0])
        kls.append((lp_fp.exp() * (lp_fp - lp_int)).sum(-1))
        agree.append(lp_int.argmax(-1) == lp_fp.argmax(-1))
        where.append(torch.arange(s + 1, s + window.shape[0]))
        del lp_int, lp_fp

    n_int, n_fp = torch.cat(nll_int), torch.cat(nll_fp)
    kl, same, pos = torch.cat(kls), torch.cat(agree), torch.cat(where)
    medical = pos < split
    scored = int(pos.numel())

    def ppl(nll: torch.Tensor, mask: torch.Tensor) -> float:
        return math.exp(float(nll[mask].mean())) if bool(mask.any()) else float("nan")

    everything = torch.ones_like(medical)
    print(
        f"text: {len(ids)} tokens ({split} medical, {len(ids) - split} general); "
        f"{len(starts)} windows of <= {args.window}; {scored} scored positions; "
        f"{torch.get_num_threads()} threads; integer backend {args.backend}"
    )
    print(
        f"{'part':<10}{'tokens':>8}{'ppl fp32':>11}{'ppl int':>11}{'ratio':>9}"
        f"{'KL nats':>10}{'top-1':>8}"
    )
    for name, mask in (("all", everything), ("medical", medical), ("general", ~medical)):
        count = int(mask.sum())
        if not count:
            continue
        p_fp, p_int = ppl(n_fp, mask), ppl(n_int, mask)
        print(
            f"{name:<10}{count:>8}{p_fp:>11.4f}{p_int:>11.4f}{p_int / p_fp:>9.4f}"
            f"{float(kl[mask].mean()):>10.5f}{float(same[mask].float().mean()):>8.4f}"
        )
    print(
        f"KL per token: median {float(kl.median()):.5f}, p99 {float(kl.quantile(0.99)):.4f}, "
        f"max {float(kl.max()):.4f} nats; mean |NLL int - NLL fp32| "
        f"{float((n_int - n_fp).abs().mean()):.4f} nats"
    )
    print(
        f"time: load {load_seconds:.1f} s; integer {t_int:.2f} s "
        f"({scored / t_int:.0f} tok/s); fp32 {t_fp:.2f} s ({scored / t_fp:.0f} tok/s); "
        f"integer/fp32 time {t_int / t_fp:.2f}x"
    )
    print(f"ratio {ppl(n_int, everything) / ppl(n_fp, everything):.4f}")


if __name__ == "__main__":
    main()
