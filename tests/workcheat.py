"""Helpers for tamper tests: results a cheating worker could produce, roots and all."""

from __future__ import annotations

from workloads import commit
from workloads.job import JobResult, UnitResult


def recommit(result: JobResult, outputs: dict[int, list[bytes]]) -> JobResult:
    """``result`` with some units' outputs replaced and every root recomputed, as a
    careful cheater would do so that the exact checks pass."""
    spec = result.spec
    units = []
    for u in result.units:
        outs = outputs.get(u.unit, u.outputs)
        indices = spec.unit_items(u.unit)
        hashes = [result.input_hashes[i] for i in indices]
        units.append(
            UnitResult(u.unit, outs, commit.unit_root(spec.unit_id(u.unit), indices, hashes, outs))
        )
    return JobResult(
        spec, result.input_hashes, units, commit.batch_root([u.root for u in units]), "cheat"
    )
