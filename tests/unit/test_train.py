"""The ``train`` kind: honest runs pass the replay audit, every tamper tried is caught.

Small on purpose (60 steps, a checkpoint every 20, batch 32, widths 16/32) so the whole file
runs in a few seconds on two cores. Each test asserts the verdict and records the measured
distance (``record_property``; shown with ``-rA`` or in the JUnit XML).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from chain.encoding import pack
from chain.hashing import sha256
from chain.jobs import JobSpec, Kind, check_job_spec
from workloads import train as T
from workloads.store import BlobStore, import_breast_cancer
from workloads.tampering import FixedChoice
from workloads.tolerances import TRAIN

TOL = TRAIN  # the default profile (specs/tolerances.md)
CONFIGS = [("0.05", 16), ("0.1", 32)]
SEED = 7


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BlobStore:
    return BlobStore(tmp_path_factory.mktemp("train-store"))


@pytest.fixture(scope="module")
def spec(store: BlobStore) -> JobSpec:
    params = {
        "dataset": import_breast_cancer(store),
        "steps": 60,
        "checkpoint_every": 20,
        "batch_size": 32,
        "max_width": 64,
        "holdout_permille": 200,
    }
    s = JobSpec(Kind.TRAIN, "mlp-breast-cancer", bytes(32), bytes(32), 4, params, 2, seed=SEED)
    check_job_spec(s)
    return s


@pytest.fixture(scope="module")
def runtime(store: BlobStore, spec: JobSpec) -> T.TrainRuntime:
    return T.load_runtime(store, spec)


@pytest.fixture(scope="module")
def inputs() -> list[bytes]:
    return [T.pack_input(lr, w) for lr, w in CONFIGS]


@pytest.fixture(scope="module")
def honest(spec: JobSpec, runtime: T.TrainRuntime, inputs: list[bytes]) -> list[bytes]:
    return T.run_items(spec, range(len(inputs)), inputs, runtime)


SEGMENTS = 3  # 60 steps / 20


def all_segments(spec, index, blob, output, runtime):  # type: ignore[no-untyped-def]
    return [
        T.measure_item(spec, index, blob, output, runtime, FixedChoice(k)) for k in range(SEGMENTS)
    ]


def verdicts(spec, index, blob, output, runtime):  # type: ignore[no-untyped-def]
    return [
        T.check_items(spec, [index], [blob], [output], runtime, TOL, FixedChoice(k))[0]
        for k in range(SEGMENTS)
    ]


# -- inputs, data, encodings ---------------------------------------------------------------


def test_parse_input_accepts_and_refuses(spec: JobSpec, runtime: T.TrainRuntime) -> None:
    cfg = T.parse_input(spec, T.pack_input("0.05", 16))
    assert (cfg.lr, cfg.width, cfg.lr_text) == (0.05, 16, "0.05")
    assert T.parse_input(spec, T.pack_input("10", 64)).lr == 10.0
    for lr, width, words in [
        ("0.05", 65, "max_width"),
        ("0.05", 0, "outside"),
        ("0", 16, "outside (0, 10]"),
        ("0.000", 16, "outside (0, 10]"),
        ("10.5", 16, "outside (0, 10]"),
        ("-0.1", 16, "plain decimal"),
        ("1e-3", 16, "plain decimal"),
        ("nan", 16, "plain decimal"),
        ("inf", 16, "plain decimal"),
        (" 0.1", 16, "plain decimal"),
    ]:
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("]", r"\]")):
            T.parse_input(spec, T.pack_input(lr, width))
    for bad in (pack(["0.05", True]), pack(["0.05"]), pack([0.05, 16]), b"\xc1"):
        with pytest.raises(ValueError):
            T.parse_input(spec, bad)
    with pytest.raises(ValueError, match="max_width"):
        T.run_items(spec, [0], [T.pack_input("0.1", 65)], runtime)


def test_split_is_seeded_and_standardised_on_train_only(
    spec: JobSpec, runtime: T.TrainRuntime, store: BlobStore
) -> None:
    n_hold = 569 * 200 // 1000
    assert runtime.x_hold.shape == (n_hold, 30)
    assert runtime.x_train.shape == (569 - n_hold, 30)
    assert float(runtime.x_train.mean(0).abs().max()) < 1e-5
    assert float(runtime.x_hold.mean(0).abs().max()) > 1e-3  # not re-standardised on holdout
    again = T.load_runtime(store, spec)
    assert torch.equal(again.x_train, runtime.x_train)
    assert torch.equal(again.y_hold, runtime.y_hold)


def test_checkpoint_roundtrip_and_refusals(spec: JobSpec, runtime: T.TrainRuntime) -> None:
    state = T.initial_state(SEED, 0, 16, runtime.device)
    state = T.run_steps(spec, 0, T.Config("0.05", 0.05, 16), runtime, state, 0, 3)
    blob = T.encode_checkpoint(3, state)
    back = T.decode_checkpoint(blob, 3, 16, runtime.device)
    for a, b in zip([*state[0], *state[1]], [*back[0], *back[1]], strict=True):
        assert torch.equal(a, b)
    assert any(float(m.abs().sum()) > 0 for m in back[1])  # momentum is carried
    with pytest.raises(ValueError, match="step"):
        T.decode_checkpoint(blob, 4, 16, runtime.device)
    with pytest.raises(ValueError, match="shape"):
        T.decode_checkpoint(blob, 3, 32, runtime.device)
    assert T.checkpoint_steps(spec) == [0, 20, 40, 60]


# -- honest runs -------------------------------------------------------------------------


def test_honest_runs_pass_every_segment(
    spec: JobSpec,
    runtime: T.TrainRuntime,
    inputs: list[bytes],
    honest: list[bytes],
    record_property: pytest.RecordProperty,
) -> None:
    worst = 0.0
    for i, (blob, out) in enumerate(zip(inputs, honest, strict=True)):
        for check in verdicts(spec, i, blob, out, runtime):
            assert check.passed, check.reason
            assert (check.unit, check.index) == (i // spec.unit_size, i)
            worst = max(worst, check.distance)
        hashes, m = T.decode_output(spec, out)
        assert len(hashes) == 4 and all(runtime.store.has(h) for h in hashes)
        assert 0.9 < m[2] <= 1.0 and m[0] < 0.3  # it learnt something
    record_property("distance", worst)
    assert worst <= TOL.replay


def test_rerun_is_identical_and_progress_reported(
    spec: JobSpec, runtime: T.TrainRuntime, inputs: list[bytes], honest: list[bytes]
) -> None:
    seen: list[int] = []
    again = T.run_items(spec, range(len(inputs)), inputs, runtime, progress=seen.append)
    assert again == honest
    assert seen == [1, 2]
    checks = T.check_items(spec, range(len(inputs)), inputs, again, runtime, TOL)  # system rng
    assert all(c.passed for c in checks)


def test_threads_one_versus_two(
    spec: JobSpec,
    runtime: T.TrainRuntime,
    inputs: list[bytes],
    record_property: pytest.RecordProperty,
) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = T.run_items(spec, range(len(inputs)), inputs, runtime)
        torch.set_num_threads(2)
        two = T.run_items(spec, range(len(inputs)), inputs, runtime)
        # the auditor at 1 thread checks the worker's 2-thread run
        torch.set_num_threads(1)
        worst = 0.0
        for i, blob in enumerate(inputs):
            for m in all_segments(spec, i, blob, two[i], runtime):
                worst = max(worst, m.init, m.replay, m.metric)
            assert all(c.passed for c in verdicts(spec, i, blob, two[i], runtime))
            assert all(c.passed for c in verdicts(spec, i, blob, one[i], runtime))
    finally:
        torch.set_num_threads(before)
    record_property("distance", worst)
    record_property("bitwise_equal", one == two)


def test_diverging_run_is_a_legitimate_result(
    spec: JobSpec, runtime: T.TrainRuntime, record_property: pytest.RecordProperty
) -> None:
    blob = T.pack_input("10", 32)
    (out,) = T.run_items(spec, [2], [blob], runtime)
    assert math.isnan(float(T.decode_output(spec, out)[1][0]))
    checks = verdicts(spec, 2, blob, out, runtime)
    assert all(c.passed for c in checks), [c.reason for c in checks]
    record_property("distance", max(c.distance for c in checks))


# -- tampers -------------------------------------------------------------------------------

EVERY_SEGMENT_TAMPERS = {
    # one update skipped in each segment (steps 5, 25, 45)
    "skipped-step": T.Deviation(skip_steps=frozenset({5, 25, 45})),
    "lr-x0.99": T.Deviation(lr_scale=0.99),
    "wrong-data-order": T.Deviation(order_seed=SEED + 1),
    "wrong-seed-init": T.Deviation(init_seed=SEED + 1),
}


@pytest.mark.parametrize("name", sorted(EVERY_SEGMENT_TAMPERS))
def test_tamper_detected_whatever_segment(
    name: str,
    spec: JobSpec,
    runtime: T.TrainRuntime,
    inputs: list[bytes],
    record_property: pytest.RecordProperty,
) -> None:
    smallest = math.inf
    for i, blob in enumerate(inputs):
        out = T.run_item(spec, i, blob, runtime, EVERY_SEGMENT_TAMPERS[name])
        for check in verdicts(spec, i, blob, out, runtime):
            assert not check.passed, f"{name} not detected"
            assert check.distance > TOL.replay
            smallest = min(smallest, check.distance)
            expected = "initialisation" if name == "wrong-seed-init" else "replay of segment"
            assert expected in check.reason
    record_property("distance", smallest)


def test_single_segment_tamper_caught_when_sampled(
    spec: JobSpec,
    runtime: T.TrainRuntime,
    inputs: list[bytes],
    record_property: pytest.RecordProperty,
) -> None:
    blob = inputs[1]
    out = T.run_item(spec, 1, blob, runtime, T.Deviation(skip_steps=frozenset({25})))
    caught, *_ = T.check_items(spec, [1], [blob], [out], runtime, TOL, FixedChoice(1))
    assert not caught.passed and "segment(s) [1]" in caught.reason
    record_property("distance", caught.distance)
    # the other segments replay cleanly from the (tampered) checkpoints they start at,
    # which is why the auditor's segment must be unpredictable
    for k in (0, 2):
        (missed,) = T.check_items(spec, [1], [blob], [out], runtime, TOL, FixedChoice(k))
        assert missed.passed
    # with a real rng the tampered segment is found in about a third of audits
    hits = sum(
        not T.check_items(spec, [1], [blob], [out], runtime, TOL, random.Random(s))[0].passed
        for s in range(12)
    )
    assert 0 < hits < 12


def test_fabricated_checkpoint_missing_from_store(
    spec: JobSpec, runtime: T.TrainRuntime, inputs: list[bytes], honest: list[bytes]
) -> None:
    hashes, m = T.decode_output(spec, honest[0])
    fake = sha256(b"a checkpoint nobody computed")
    assert not runtime.store.has(fake)
    forged = T.encode_output([*hashes[:2], fake, hashes[3]], m)
    for check in verdicts(spec, 0, inputs[0], forged, runtime):
        assert not check.passed and "checkpoint 2" in check.reason and "missing" in check.reason
        assert check.distance == math.inf


def test_made_up_metrics(
    spec: JobSpec,
    runtime: T.TrainRuntime,
    inputs: list[bytes],
    honest: list[bytes],
    record_property: pytest.RecordProperty,
) -> None:
    hashes, m = T.decode_output(spec, honest[0])
    for made_up in (m + np.array([0, 0, 0.01], "f4"), m * np.array([0.9, 1, 1], "f4")):
        forged = T.encode_output(hashes, made_up)
        for check in verdicts(spec, 0, inputs[0], forged, runtime):
            assert not check.passed and "metrics" in check.reason
            record_property("distance", check.distance)


def test_nan_poisoning_caught_whatever_segment(
    spec: JobSpec, runtime: T.TrainRuntime, inputs: list[bytes], honest: list[bytes]
) -> None:
    """Claiming NaN from checkpoint 1 on would make later segments replay for free; the
    auditor always replays the segment where a run first turned non-finite."""
    hashes, _ = T.decode_output(spec, honest[1])
    nan_state = T.initial_state(SEED, 1, 32, runtime.device)
    nan_state = ([w * math.nan for w in nan_state[0]], [m * math.nan for m in nan_state[1]])
    poisoned = [hashes[0]] + [
        runtime.store.put(T.encode_checkpoint(step, nan_state)) for step in (20, 40, 60)
    ]
    out = T.encode_output(poisoned, T.metrics(nan_state[0], runtime))
    assert all(not c.passed for c in verdicts(spec, 1, inputs[1], out, runtime))


def test_malformed_output_fails_with_reason(
    spec: JobSpec, runtime: T.TrainRuntime, inputs: list[bytes], honest: list[bytes]
) -> None:
    hashes, m = T.decode_output(spec, honest[0])
    for bad, words in [
        (b"\x00", "output"),
        (T.encode_output(hashes[:3], m), "4 32-byte"),
        (T.encode_output(hashes, m[:2]), "metrics"),
    ]:
        (check,) = T.check_items(spec, [0], [inputs[0]], [bad], runtime, TOL, FixedChoice(0))
        assert not check.passed and words in check.reason
    # a checkpoint of another item (the wrong width) is refused
    other, _ = T.decode_output(spec, honest[1])
    forged = T.encode_output([hashes[0], other[1], *hashes[2:]], m)
    (check,) = T.check_items(spec, [0], [inputs[0]], [forged], runtime, TOL, FixedChoice(0))
    assert not check.passed and "shape" in check.reason
