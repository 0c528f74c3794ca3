"""Job specs (chain/jobs.py): canonical bytes, job id, units and costs, refusals."""

from __future__ import annotations

import dataclasses

import pytest

from chain.encoding import pack
from chain.jobs import (
    GFLOP,
    InvalidJobSpec,
    JobError,
    JobSpec,
    Kind,
    check_job_spec,
    decode_job_spec,
    mlp_parameters,
)

EMBED = JobSpec(
    kind=Kind.EMBED,
    arch="bert-minilm-l6-h384",
    weights=b"\x11" * 32,
    inputs_root=b"\x22" * 32,
    items=10,
    params={"max_tokens": 128},
    unit_size=4,
    seed=9,
)
TRAIN = JobSpec(
    kind=Kind.TRAIN,
    arch="mlp-breast-cancer",
    weights=b"\x33" * 32,
    inputs_root=b"\x44" * 32,
    items=4,
    params={
        "dataset": b"\x55" * 32,
        "steps": 60,
        "checkpoint_every": 20,
        "batch_size": 32,
        "max_width": 32,
        "holdout_permille": 200,
    },
    unit_size=2,
)


def test_round_trip_and_job_id_binds_every_field() -> None:
    for spec in (EMBED, TRAIN):
        again = decode_job_spec(spec.encoded)
        assert again == spec and again.job_id == spec.job_id
    changed = [
        dataclasses.replace(EMBED, seed=10),
        dataclasses.replace(EMBED, unit_size=5),
        dataclasses.replace(EMBED, params={"max_tokens": 127}),
        dataclasses.replace(EMBED, inputs_root=b"\x23" * 32),
    ]
    assert len({s.job_id for s in [EMBED, *changed]}) == 5


def test_units_split_items_deterministically() -> None:
    assert EMBED.units == 3
    assert [list(EMBED.unit_items(u)) for u in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len({EMBED.unit_id(u) for u in range(3)}) == 3
    with pytest.raises(IndexError):
        EMBED.unit_items(3)


def test_costs_follow_the_flop_estimate() -> None:
    per_item = 2 * 22_713_216 * 128
    assert EMBED.item_flops() == per_item
    assert EMBED.unit_cost(0) == -(-4 * per_item // GFLOP)
    assert EMBED.unit_cost(2) == -(-2 * per_item // GFLOP)  # the short last unit costs less
    assert TRAIN.item_flops() == 6 * mlp_parameters(32) * 32 * 60
    assert TRAIN.unit_cost(0) == 1  # at least one benefit unit


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"arch": "gpt-5"}, JobError.ARCH),
        ({"arch": "llama-smollm2-135m"}, JobError.ARCH_KIND),
        ({"items": 0}, JobError.ITEMS),
        ({"unit_size": 0}, JobError.UNIT_SIZE),
        ({"params": {"max_tokens": 128, "top_p": 1}}, JobError.PARAM_UNKNOWN),
        ({"params": {}}, JobError.PARAM_MISSING),
        ({"params": {"max_tokens": 513}}, JobError.PARAM_RANGE),
        ({"params": {"max_tokens": b"x"}}, JobError.PARAM_RANGE),
        ({"dtype": "bf16"}, JobError.DTYPE),
        ({"tolerance": "lenient"}, JobError.TOLERANCE),
    ],
)
def test_bad_specs_are_refused_with_their_code(change: dict[str, object], code: JobError) -> None:
    bad = dataclasses.replace(EMBED, **change)  # type: ignore[arg-type]
    with pytest.raises(InvalidJobSpec) as info:
        check_job_spec(bad)
    assert info.value.code is code
    with pytest.raises(InvalidJobSpec) as again:  # the same through the canonical bytes
        decode_job_spec(bad.encoded)
    assert again.value.code is code


def test_training_checkpoints_cannot_be_sparser_than_the_run() -> None:
    bad = dataclasses.replace(TRAIN, params={**TRAIN.params, "checkpoint_every": 61})
    with pytest.raises(InvalidJobSpec) as info:
        check_job_spec(bad)
    assert info.value.code is JobError.PARAM_RANGE


def test_malformed_bytes_are_refused() -> None:
    wire = EMBED.to_wire()
    cases = {
        JobError.MALFORMED: [b"\xc1", pack(wire[:5]), pack([*wire[:5], "10", *wire[6:]])],
        JobError.VERSION: [pack([2, *wire[1:]])],
        JobError.KIND: [pack([1, "mine", *wire[2:]])],
        JobError.PARAM_ORDER: [
            pack([*wire[:6], [["max_tokens", 1], ["max_tokens", 2]], *wire[7:]]),
        ],
    }
    for code, blobs in cases.items():
        for blob in blobs:
            with pytest.raises(InvalidJobSpec) as info:
                decode_job_spec(blob)
            assert info.value.code is code, blob
    with pytest.raises(InvalidJobSpec):
        decode_job_spec(EMBED.encoded + b"\x00")  # trailing bytes: not canonical
