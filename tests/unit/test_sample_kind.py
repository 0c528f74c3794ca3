"""The ``sample`` kind: exact work run and audited as a job, with no tolerance.

An honest result passes an audit of every item; a result whose tokens were changed, made
with another seed, or copied from another item fails at the first position that differs.
Spec refusals: a sample job must run integers ("int") under the "exact" profile.
"""

from __future__ import annotations

import pytest

from chain.encoding import pack
from chain.jobs import InvalidJobSpec, JobError, JobSpec, Kind, decode_job_spec
from workloads import sample
from workloads.job import JobFileError, audit_job, prepare_job, run_job

PROMPTS = [
    "Mismatch repair deficiency predicts",
    "The first question a pathologist asks about a biopsy is",
    "KRAS G12C inhibitors",
    "Screening for lung cancer with low-dose CT",
    "Tamoxifen works by",
]


def _job(temperature: int = 700, stop_at_eos: int = 0) -> dict:  # type: ignore[type-arg]
    return {
        "kind": "sample",
        "model": "exact-tiny",
        "inputs": PROMPTS,
        "params": {
            "max_prompt_tokens": 32,
            "max_new_tokens": 8,
            "temperature_milli": temperature,
            "stop_at_eos": stop_at_eos,
        },
        "unit_size": 2,
        "seed": 11,
    }


@pytest.fixture(scope="module")
def honest(exact_store, tiny_model):  # type: ignore[no-untyped-def]
    spec, hashes = prepare_job(exact_store, _job())
    return spec, run_job(exact_store, spec, hashes)


def test_honest_sample_job_passes_a_full_audit(exact_store, tiny_model, honest) -> None:  # type: ignore[no-untyped-def]
    spec, result = honest
    assert spec.kind is Kind.SAMPLE and spec.dtype == "int" and spec.tolerance == "exact"
    assert spec.weights == tiny_model.sha256 and spec.units == 3
    outputs = [o for u in result.units for o in u.outputs]
    assert all(len(sample.decode_output(o, 8)) == 8 for o in outputs)
    verdict = audit_job(exact_store, result, indices=list(range(spec.items)))
    assert verdict.passed, verdict.reasons
    assert [c.distance for c in verdict.checks] == [0.0] * spec.items


def _tampered(result, index: int, tokens: list[int]):  # type: ignore[no-untyped-def]
    """The result with item ``index``'s output replaced and every root recomputed, so
    only re-execution can tell."""
    from workloads import commit
    from workloads.job import JobResult, UnitResult

    spec = result.spec
    units = []
    for u in result.units:
        outs = list(u.outputs)
        for pos, i in enumerate(spec.unit_items(u.unit)):
            if i == index:
                outs[pos] = pack([tokens])
        items = spec.unit_items(u.unit)
        root = commit.unit_root(
            spec.unit_id(u.unit), items, [result.input_hashes[i] for i in items], outs
        )
        units.append(UnitResult(u.unit, outs, root))
    batch = commit.batch_root([u.root for u in units])
    return JobResult(spec, result.input_hashes, units, batch, result.provenance)


def test_changed_token_another_seed_or_copied_output_fail(exact_store, honest) -> None:  # type: ignore[no-untyped-def]
    from workloads.exact import encode_prompt, generate

    spec, result = honest
    outputs = [o for u in result.units for o in u.outputs]
    tokens = sample.decode_output(outputs[3], 8)
    changed = [*tokens[:4], (tokens[4] + 1) % 49152, *tokens[5:]]
    runtime = sample.load_runtime(exact_store, spec)
    prompt = encode_prompt(runtime.model, PROMPTS[3])
    other_seed = generate(runtime, [prompt], [b"another seed"], 8, 700, stop_at_eos=False)[0].tokens
    assert other_seed != tokens
    for bad in (changed, sample.decode_output(outputs[2], 8), other_seed):
        verdict = audit_job(exact_store, _tampered(result, 3, bad), indices=[3])
        assert not verdict.passed
        assert "position" in verdict.reasons[0]
    verdict = audit_job(exact_store, _tampered(result, 3, changed), indices=[3])
    assert "position 4" in verdict.reasons[0]


def test_sample_specs_must_be_integer_and_exact(exact_store, honest) -> None:  # type: ignore[no-untyped-def]
    spec, _ = honest
    for field, value, code in (
        ("dtype", "fp32", JobError.DTYPE),
        ("tolerance", "default", JobError.TOLERANCE),
    ):
        wrong = JobSpec(**{**spec.__dict__, field: value})
        with pytest.raises(InvalidJobSpec) as exc:
            decode_job_spec(wrong.encoded)
        assert exc.value.code is code
    with pytest.raises(JobFileError, match="does not run sample jobs"):
        prepare_job(exact_store, {**_job(), "model": "llama-smollm2-135m"})
