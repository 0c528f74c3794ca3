"""Audit by re-execution: what an auditor concludes about a worker's result.

An audit has two parts (specs/jobs.md §6):

1. **Exact checks**, on everything: the spec decodes and is valid, every input blob is in
   the store and hashes into the spec's ``inputs_root``, every output is well formed, and
   the leaves rebuilt from (unit id, index, input hash, output) give the claimed unit roots
   and batch root. Reordered or copied outputs fail here.
2. **Re-execution** of a sample of items chosen with the *auditor's* randomness (the
   worker cannot know which), compared with the claimed outputs within the job's tolerance
   profile. A worker who fakes a fraction f of n items escapes s samples with probability
   about (1 - f)^s.

The verdict lists every check made with its measured distance, so a failed audit says
exactly which item broke which rule, by how much.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ItemCheck:
    unit: int
    index: int
    passed: bool
    distance: float  # the figure compared with the tolerance (kind-specific)
    reason: str = ""  # one line; empty when passed


@dataclass
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: list[ItemCheck] = field(default_factory=list)

    @property
    def max_distance(self) -> float:
        return max((c.distance for c in self.checks), default=0.0)

    def fail(self, reason: str) -> None:
        self.passed = False
        self.reasons.append(reason)
