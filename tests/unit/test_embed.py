"""``embed``: honest variations pass the audit; every tamper is caught, with its distance.

Each tamper is a cheaper or different computation a worker might pass off as the job:
its outputs are committed with correct roots (the exact checks pass), so only
re-execution can catch them. The measured distances are printed (``pytest -s``) and
summarised in specs/tolerances.md by ``bench/calibrate.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from tests.workcheat import recommit
from workloads import embed
from workloads.job import audit_job, prepare_job, run_job
from workloads.models import Embedder
from workloads.store import BlobStore
from workloads.tampering import tampered_copy
from workloads.tolerances import EMBED

TEXTS = [
    "Tamoxifen lowers the risk of recurrence in oestrogen-receptor-positive breast cancer.",
    "BRCA1 and BRCA2 mutations raise the lifetime risk of breast and ovarian cancer.",
    "Screening mammography every two years from age fifty.",
    "HER2-positive tumours respond to trastuzumab.",
    "Sentinel lymph node biopsy guides staging.",
    "Neoadjuvant chemotherapy can shrink a tumour before surgery.",
    "Triple-negative breast cancer lacks ER, PR and HER2 expression.",
]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    store = BlobStore(tmp_path_factory.mktemp("store"))
    spec, hashes = prepare_job(
        store, {"kind": "embed", "inputs": TEXTS, "params": {"max_tokens": 64}, "unit_size": 3}
    )
    runtime = embed.load_runtime(store, spec)
    result = run_job(store, spec, hashes, runtime=runtime)
    return store, spec, hashes, runtime, result


def everything(spec) -> list[int]:  # type: ignore[no-untyped-def]
    return list(range(spec.items))


def test_honest_result_passes_and_sampling_is_the_auditors(job) -> None:  # type: ignore[no-untyped-def]
    store, spec, _, runtime, result = job
    verdict = audit_job(store, result, runtime=runtime, indices=everything(spec))
    assert verdict.passed, verdict.reasons
    samples = {
        tuple(c.index for c in audit_job(store, result, runtime=runtime, samples=2, seed=s).checks)
        for s in range(6)
    }
    assert len(samples) > 1  # different auditor seeds check different items


@pytest.mark.parametrize("variation", ["threads-1", "batch-1", "batch-7", "rerun"])
def test_honest_variations_are_never_flagged(job, variation: str) -> None:  # type: ignore[no-untyped-def]
    store, spec, hashes, runtime, _ = job
    threads = torch.get_num_threads()
    try:
        if variation == "threads-1":
            torch.set_num_threads(1)
        batch = {"batch-1": 1, "batch-7": 7}.get(variation)
        result = run_job(store, spec, hashes, runtime=runtime, batch_size=batch)
    finally:
        torch.set_num_threads(threads)
    verdict = audit_job(store, result, runtime=runtime, indices=everything(spec))
    print(f"honest {variation}: max relative error {verdict.max_distance:.2e}")
    assert verdict.passed, verdict.reasons


def _tampered_model(runtime: Embedder, how: str) -> Embedder:
    model = tampered_copy(runtime.model, how, lambda m: m.encoder.layer)
    return Embedder(model, runtime.tokenizer, runtime.device)


@pytest.mark.parametrize("how", ["another-model", "layer-x1.001", "bf16", "prompt-prefix"])
def test_tampered_computation_is_caught(job, how: str) -> None:  # type: ignore[no-untyped-def]
    store, spec, hashes, runtime, result = job
    cheat_runtime = runtime if how == "prompt-prefix" else _tampered_model(runtime, how)
    outputs = {}
    for u in result.units:
        indices = list(spec.unit_items(u.unit))
        inputs = [store.get(hashes[i]) for i in indices]
        if how == "prompt-prefix":
            inputs = [b"Note: " + blob for blob in inputs]
        outputs[u.unit] = embed.run_items(spec, indices, inputs, cheat_runtime)
    cheat = recommit(result, outputs)
    verdict = audit_job(store, cheat, runtime=runtime, indices=everything(spec))
    distances = [c.distance for c in verdict.checks]
    print(f"tamper {how}: smallest relative error {min(distances):.2e}")
    assert not verdict.passed
    assert all(not c.passed for c in verdict.checks)  # every item, not just some
    assert min(distances) > EMBED.relative


def test_reordered_items_are_caught(job) -> None:  # type: ignore[no-untyped-def]
    store, _, _, runtime, result = job
    unit = result.units[0]
    swapped = [unit.outputs[1], unit.outputs[0], *unit.outputs[2:]]
    naive = copy.deepcopy(result)
    naive.units[0].outputs = swapped  # roots left as they were
    verdict = audit_job(store, naive, runtime=runtime)
    assert not verdict.passed and "unit root" in verdict.reasons[0]
    assert verdict.checks == []  # refused before any model ran
    careful = recommit(result, {0: swapped})  # roots recomputed: re-execution catches it
    verdict = audit_job(store, careful, runtime=runtime, indices=[0, 1])
    assert not verdict.passed and [c.passed for c in verdict.checks] == [False, False]


def test_outputs_copied_from_another_unit_are_caught(job) -> None:  # type: ignore[no-untyped-def]
    store, spec, _, runtime, result = job
    copied = recommit(result, {1: list(result.units[0].outputs)})
    verdict = audit_job(store, copied, runtime=runtime, indices=list(spec.unit_items(1)))
    assert not verdict.passed
    assert all(not c.passed for c in verdict.checks)


def test_damaged_output_is_a_reasoned_failure(job) -> None:  # type: ignore[no-untyped-def]
    store, _, _, runtime, result = job
    broken = recommit(result, {0: [b"\x00" * 7, *result.units[0].outputs[1:]]})
    verdict = audit_job(store, broken, runtime=runtime, indices=[0])
    assert not verdict.passed and "1536 bytes" in verdict.reasons[0]


def test_missing_input_fails_the_exact_checks(job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, _, runtime, result = job
    verdict = audit_job(BlobStore(tmp_path), result, runtime=runtime)
    assert not verdict.passed and "unavailable" in verdict.reasons[0]
