"""The tolerance profile ``default`` for each kind (specs/tolerances.md).

Chosen from ``bench/calibrate.py``'s measurements: each threshold sits far above the
largest honest noise measured (threads, batch composition, re-runs; CUDA against CPU when
a GPU was lent) and far below the smallest tamper. ``specs/tolerances.md`` holds the
measurements and the separation; change a value here only together with that table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmbedTolerance:
    relative: float  # ||claimed - recomputed|| / ||recomputed|| per item


EMBED = EmbedTolerance(relative=3e-5)


@dataclass(frozen=True)
class GenerateTolerance:
    # Top-2 gap, in logit units (divided by T for sampled jobs, whose scores are
    # logits / T + noise), within which either of the two tokens is accepted.
    margin: float
    logprob: float  # |claimed - recomputed| log-probability of each generated token


@dataclass(frozen=True)
class TrainTolerance:
    replay: float  # ||replayed - claimed|| / ||claimed - start|| over a replayed segment
    metric: float  # |claimed - recomputed| / max(1, |recomputed|) of each final metric


GENERATE = GenerateTolerance(margin=1e-3, logprob=5e-4)
TRAIN = TrainTolerance(replay=1e-3, metric=1e-5)

# Exact work has no tolerance: an item passes only if every token is equal.
EXACT = None

PROFILES: dict[str, dict[str, object]] = {
    "sample": {"exact": EXACT},
    "embed": {"default": EMBED},
    "generate": {"default": GENERATE},
    "train": {"default": TRAIN},
}
