"""Calibrate the ``train`` kind's tolerances: honest noise against tampers.

Runs a small sweep (widths 16/64, learning rates 0.01/0.1/1) of ``mlp-breast-cancer``
(300 steps, a checkpoint every 50, batch 32) and measures, for every configuration and every
segment, the distances :mod:`workloads.train` compares with its tolerances:

* honest: a re-run, 2 threads checked at 1, and a worker computing in float64 (a stand-in for
  another machine's rounding: an upper bound on what fp32 hardware differences should give).
  Runs whose loss blows up (lr 1 here) are reported apart: their dynamics are chaotic, and
  the float64 stand-in drifts from the fp32 replay by up to ~7e-3 within 50 steps;
* tampers: one skipped update per segment, lr x0.99 (and x0.999, milder than the brief asks),
  batch order from another seed, initialisation from another seed, a checkpoint missing from
  the store, made-up metrics.

Each entry is ``(name, distance)``: the worst honest figure, the *smallest* tamper figure over
configurations and segments (replay/init distances for training tampers, the metric distance
for metrics). ``python bench/calib_train.py`` prints the JSON (infinity as "inf").
"""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from chain.hashing import sha256
from chain.jobs import JobSpec, Kind
from workloads import train as T
from workloads.store import BlobStore, import_breast_cancer
from workloads.tampering import FixedChoice
from workloads.tolerances import TRAIN

SEED = 11
STEPS, EVERY, BATCH = 300, 50, 32
CONFIGS = [(lr, w) for w in (16, 64) for lr in ("0.01", "0.1", "1")]
PROPOSED = TRAIN
DIVERGED_LOSS = 1e3  # a final train loss above this marks a diverging run


def _all_segments(spec: JobSpec, rt: T.TrainRuntime, i: int, blob: bytes, out: bytes) -> list[Any]:
    n = len(T.checkpoint_steps(spec)) - 1
    return [T.measure_item(spec, i, blob, out, rt, FixedChoice(k)) for k in range(n)]


def _replay_figure(ms: list[Any]) -> float:
    return max(max(m.init, m.replay) for m in ms)


def measure() -> dict[str, Any]:
    shm = Path("/dev/shm")
    # a RAM-backed store when there is one: the bench measures compute, not fsync
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        store = BlobStore(Path(tmp))
        params = {
            "dataset": import_breast_cancer(store),
            "steps": STEPS,
            "checkpoint_every": EVERY,
            "batch_size": BATCH,
            "max_width": 64,
            "holdout_permille": 200,
        }
        spec = JobSpec(
            Kind.TRAIN,
            "mlp-breast-cancer",
            bytes(32),
            bytes(32),
            len(CONFIGS),
            params,
            6,
            seed=SEED,
        )
        rt = T.load_runtime(store, spec)
        inputs = [T.pack_input(lr, w) for lr, w in CONFIGS]
        idx = list(range(len(inputs)))
        threads = torch.get_num_threads()

        torch.set_num_threads(1)
        start = time.perf_counter()
        honest = T.run_items(spec, idx, inputs, rt)
        worker = (time.perf_counter() - start) / len(inputs)
        start = time.perf_counter()
        checks = T.check_items(spec, idx, inputs, honest, rt, PROPOSED, random.Random(1))
        audit = (time.perf_counter() - start) / len(inputs)
        assert all(c.passed for c in checks), [c.reason for c in checks]

        honest_rows: dict[str, float] = {}

        def note(rows: dict[str, float], name: str, value: float, worst: bool) -> None:
            old = rows.get(name)
            rows[name] = value if old is None else (max(old, value) if worst else min(old, value))

        rerun = T.run_items(spec, idx, inputs, rt)
        torch.set_num_threads(2)
        two = T.run_items(spec, idx, inputs, rt)
        torch.set_num_threads(1)
        f64 = [
            T.run_item(spec, i, b, rt, T.Deviation(compute_dtype=torch.float64))
            for i, b in zip(idx, inputs, strict=True)
        ]
        diverged = [not float(T.decode_output(spec, out)[1][0]) < DIVERGED_LOSS for out in honest]
        for name, outs in (("rerun", rerun), ("threads-2-vs-1", two), ("float64-worker", f64)):
            for i, b in enumerate(inputs):
                ms = _all_segments(spec, rt, i, b, outs[i])
                which = " (diverging runs)" if diverged[i] else ""
                note(honest_rows, f"{name} replay{which}", _replay_figure(ms), True)
                note(honest_rows, f"{name} metric", max(m.metric for m in ms), True)
        honest_rows["rerun bitwise equal"] = float(rerun == honest)
        honest_rows["threads bitwise equal"] = float(two == honest)

        marks = T.checkpoint_steps(spec)
        skips = frozenset(m + 7 for m in marks[:-1])  # one update skipped per segment
        deviations = {
            "skipped-step": T.Deviation(skip_steps=skips),
            "lr-x0.99": T.Deviation(lr_scale=0.99),
            "lr-x0.999": T.Deviation(lr_scale=0.999),
            "wrong-data-order": T.Deviation(order_seed=SEED + 1),
            "wrong-seed-init": T.Deviation(init_seed=SEED + 1),
        }
        tamper_rows: dict[str, float] = {}
        for name, dev in deviations.items():
            for i, b in enumerate(inputs):
                out = T.run_item(spec, i, b, rt, dev)
                note(
                    tamper_rows,
                    name,
                    min(max(m.init, m.replay) for m in _all_segments(spec, rt, i, b, out)),
                    False,
                )
        for i, b in enumerate(inputs):
            hashes, met = T.decode_output(spec, honest[i])
            gone = [*hashes[:2], sha256(b"never stored"), *hashes[3:]]
            (c,) = T.check_items(spec, [i], [b], [T.encode_output(gone, met)], rt, PROPOSED)
            note(tamper_rows, "missing-checkpoint", c.distance, False)
            for label, fake in (
                (
                    "made-up accuracy +1 example",
                    met + np.array([0, 0, 1 / rt.y_hold.shape[0]], "f4"),
                ),
                ("made-up train loss x0.99", met * np.array([0.99, 1, 1], "f4")),
            ):
                forged = T.encode_output(hashes, fake)
                ms = _all_segments(spec, rt, i, b, forged)
                note(tamper_rows, label, min(m.metric for m in ms), False)
        torch.set_num_threads(threads)

    return {
        "setup": {
            "steps": STEPS,
            "checkpoint_every": EVERY,
            "batch_size": BATCH,
            "configs": CONFIGS,
            "torch": torch.__version__,
            "diverging configs": [c for c, d in zip(CONFIGS, diverged, strict=True) if d],
        },
        "honest": sorted(honest_rows.items()),
        "tampers": sorted(tamper_rows.items()),
        "tolerance": {"replay": PROPOSED.replay, "metric": PROPOSED.metric},
        "worker_per_item_seconds": worker,
        "audit_per_item_seconds": audit,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    print(json.dumps(_jsonable(measure()), indent=2))
