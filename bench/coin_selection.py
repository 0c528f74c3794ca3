"""How much waste does ``select_coins`` save over plain largest-first, and how fast is it?

A wallet of 10,000 coins with deterministic, log-uniform amounts between 10^4 and 10^9
units (a realistic spread: many small coins, a few large ones) pays a range of targets at
two fee regimes: fees equal to the long-term rate (waste is then only the changeless
excess or the cost of a change output) and fees at three times the long-term rate (each
input also adds waste). Sizes are the encoded ones of ``chain.policy``: 106 bytes an
input, 44 an output.

For each case it prints the time of ``select_coins`` and of ``largest_first`` (best of
``--repeat`` runs, milliseconds), the waste of each and the algorithm ``select_coins``
chose. The last line is ``ratio <mean waste of select_coins / mean waste of
largest_first>``: **lower is better**; 1.0 means no gain over the baseline, and it can
never exceed 1.0 since largest-first is one of the candidates ``select_coins`` weighs.

Run: ``.venv/bin/python bench/coin_selection.py [--coins N] [--repeat R] [--seed S]``
"""

from __future__ import annotations

import argparse
import functools
import random
import time
from collections.abc import Callable

from chain.policy import OUTPUT_SIZE, SPENDING_INPUT_SIZE
from wallet.coinselect import Candidate, Selection, SizeModel, largest_first, select_coins

SIZES = SizeModel(
    base=10 + OUTPUT_SIZE,  # the transaction's envelope and one payment output
    input=SPENDING_INPUT_SIZE,
    change_output=OUTPUT_SIZE,
    change_spend=SPENDING_INPUT_SIZE,
)
TARGETS = [
    50_000,
    123_457,
    1_000_000,
    4_999_999,
    25_000_000,
    100_000_000,
    333_333_333,
    1_000_000_000,
    2_718_281_828,
]
REGIMES = [(1_000, 1_000), (3_000, 1_000)]  # (fee rate, long-term fee rate), per 1000 bytes


def wallet(n: int, seed: int) -> list[Candidate]:
    """``n`` coins, amounts log-uniform in [10^4, 10^9], keys derived from their index."""
    rng = random.Random(seed)
    return [Candidate(i.to_bytes(4, "big") * 9, int(10 ** rng.uniform(4, 9))) for i in range(n)]


def timed(run: Callable[[], Selection], repeat: int) -> tuple[Selection, float]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return result, best * 1_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    pool = wallet(args.coins, args.seed)
    total = sum(c.amount for c in pool)
    print(f"{len(pool)} coins, {total} units in all; sizes {SIZES}")
    print(
        f"{'target':>13} {'rate':>5} {'lt':>5} {'algorithm':>13} {'inputs':>6} "
        f"{'ours ms':>8} {'lf ms':>7} {'waste ours':>10} {'waste lf':>8}"
    )
    ours_total = lf_total = cases = 0
    for rate, lt_rate in REGIMES:
        for target in TARGETS:

            def run(
                select: Callable[..., Selection],
                target: int = target,
                rate: int = rate,
                lt_rate: int = lt_rate,
            ) -> Selection:
                return select(
                    pool,
                    target,
                    rate,
                    SIZES,
                    long_term_fee_rate=lt_rate,
                    rng=random.Random(args.seed + target),
                )

            ours = functools.partial(run, select_coins)
            baseline = functools.partial(run, largest_first)
            sel, ours_ms = timed(ours, args.repeat)
            lf, lf_ms = timed(baseline, args.repeat)
            print(
                f"{target:>13} {rate:>5} {lt_rate:>5} {sel.algorithm:>13} {len(sel.inputs):>6} "
                f"{ours_ms:>8.1f} {lf_ms:>7.1f} {sel.waste:>10} {lf.waste:>8}"
            )
            ours_total += sel.waste
            lf_total += lf.waste
            cases += 1
    print(f"mean waste: ours {ours_total / cases:.1f}, largest-first {lf_total / cases:.1f}")
    print(f"ratio {ours_total / lf_total:.3f}")


if __name__ == "__main__":
    main()
