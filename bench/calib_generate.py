"""Calibrate the ``generate`` audit: honest float noise against tampering (SmolLM2, CPU).

``measure()`` generates for a few short prompts (greedy) and compares:

* honest variations (re-run, 1 vs 2 threads, batch 1 vs 3, and the incremental KV-cache
  loop vs one teacher-forced prefill) with the reference run: the largest absolute
  logprob difference and the largest relative logit difference
  (``max|a - b| / max|b|`` over all generated positions);
* tampers: the relative logit difference of a teacher-forced pass of the tampered worker
  over the same tokens against the genuine one (0 where the worker ran the genuine model
  and cheated on the tokens instead), whether ``check_items`` flagged every item, and its
  largest distance.

Run standalone: ``.venv/bin/python -m bench.calib_generate`` prints the JSON.
"""

from __future__ import annotations

import copy
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from chain.jobs import JobSpec, Kind
from workloads import generate as g
from workloads.models import load_causal_lm
from workloads.store import BlobStore, import_packaged_model
from workloads.tolerances import GENERATE

ARCH = "llama-smollm2-135m"
PROMPTS = [
    b"The capital of France is",
    b"Once upon a time, in a small village by the sea,",
    b"def fibonacci(n):",
    b"The three primary colours are",
]
MAX_NEW = 16
TOL = GENERATE  # the default profile (specs/tolerances.md)


class _Recorder:
    """Wraps a model and keeps the last-position logits of every forward call."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.logits: list[torch.Tensor] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __call__(self, **kwargs: Any) -> Any:
        out = self._model(**kwargs)
        self.logits.append(out.logits[:, -1, :].float().clone())
        return out


def _spec(weights: bytes, temperature_milli: int = 0, seed: int = 0) -> JobSpec:
    params = {
        "max_prompt_tokens": 64,
        "max_new_tokens": MAX_NEW,
        "temperature_milli": temperature_milli,
    }
    return JobSpec(Kind.GENERATE, ARCH, weights, b"\0" * 32, len(PROMPTS), params, 4, seed=seed)


def _decode(outputs: list[bytes]) -> list[tuple[list[int], Any]]:
    return [g.decode_output(o, MAX_NEW, 49152) for o in outputs]


def _tf_logits(runtime: Any, spec: JobSpec, claims, inputs=PROMPTS) -> list[torch.Tensor]:
    out = []
    for blob, (tokens, _) in zip(inputs, claims, strict=True):
        prompt = g.encode_prompt(spec, blob, runtime.tokenizer)
        out.append(g.teacher_forced_logits(runtime, prompt, tokens))
    return out


def _rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        n = min(len(x), len(y))
        x, y = x[:n].double(), y[:n].double()
        worst = max(worst, float((x - y).abs().max() / y.abs().max()))
    return worst


def _logprob_diff(a, b) -> float:
    worst = 0.0
    for (ta, la), (tb, lb) in zip(a, b, strict=True):
        n = 0
        while n < min(len(ta), len(tb)) and ta[n] == tb[n]:
            n += 1
        if n:
            worst = max(worst, float(abs(la[:n] - lb[:n]).max()))
    return worst


def _incremental_logits(spec: JobSpec, runtime: Any) -> list[torch.Tensor]:
    rec = _Recorder(runtime.model)
    worker = SimpleNamespace(model=rec, tokenizer=runtime.tokenizer)
    per_item = []
    for i, blob in enumerate(PROMPTS):
        rec.logits.clear()
        g.run_items(spec, [i], [blob], worker, batch_size=1)
        per_item.append(torch.cat(rec.logits, dim=0))
    return per_item


def measure() -> dict[str, Any]:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        store = BlobStore(Path(tmp))
        weights = import_packaged_model(store, ARCH)
        runtime = load_causal_lm(store, weights)
    spec = _spec(weights)
    indices = range(len(PROMPTS))

    start = time.perf_counter()
    ref_out = g.run_items(spec, indices, PROMPTS, runtime, batch_size=1)
    generate_seconds = time.perf_counter() - start
    ref = _decode(ref_out)
    start = time.perf_counter()
    checks = g.check_items(spec, indices, PROMPTS, ref_out, runtime, TOL)
    prefill_seconds = time.perf_counter() - start
    assert all(c.passed for c in checks), [c.reason for c in checks]
    ref_logits = _tf_logits(runtime, spec, ref)

    honest: list[tuple[str, float, float]] = []
    again = _decode(g.run_items(spec, indices, PROMPTS, runtime, batch_size=1))
    honest.append(
        ("rerun", _logprob_diff(again, ref), _rel(_tf_logits(runtime, spec, again), ref_logits))
    )
    torch.set_num_threads(1)
    try:
        one = _decode(g.run_items(spec, indices, PROMPTS, runtime, batch_size=1))
        one_logits = _tf_logits(runtime, spec, ref)
    finally:
        torch.set_num_threads(2)
    honest.append(("threads_1_vs_2", _logprob_diff(one, ref), _rel(one_logits, ref_logits)))
    batched_out = g.run_items(spec, indices, PROMPTS, runtime, batch_size=4)
    batched = _decode(batched_out)
    honest.append(("batch_4_vs_1", _logprob_diff(batched, ref), 0.0))
    inc = _incremental_logits(spec, runtime)
    honest.append(("kv_cache_loop_vs_prefill", _logprob_diff(ref, ref), _rel(inc, ref_logits)))
    # Batched generation's logits, through the recorder, against the reference prefill.
    rec = _Recorder(runtime.model)
    g.run_items(
        spec,
        indices,
        PROMPTS,
        SimpleNamespace(model=rec, tokenizer=runtime.tokenizer),
        batch_size=4,
    )
    lens = [len(g.encode_prompt(spec, p, runtime.tokenizer)) for p in PROMPTS]
    order = sorted(range(len(PROMPTS)), key=lambda i: lens[i])
    stacked = torch.stack(rec.logits, dim=1)  # rows in sorted order
    batch_logits = [None] * len(PROMPTS)
    for row, i in enumerate(order):
        batch_logits[i] = stacked[row]
    honest[2] = ("batch_4_vs_1", honest[2][1], _rel(batch_logits, ref_logits))
    honest_audit = max(
        c.distance
        for outs in (ref_out, batched_out)
        for c in g.check_items(spec, indices, PROMPTS, outs, runtime, TOL)
    )

    tampers: list[tuple[str, float, bool, float]] = []

    def judge(name: str, claimed: list[bytes], worker: Any = None, inputs=PROMPTS) -> None:
        cs = g.check_items(spec, indices, PROMPTS, claimed, runtime, TOL)
        claims = _decode(claimed) if all(_ok(c) for c in claimed) else None
        rel = 0.0
        if worker is not None and claims is not None:
            rel = _rel(_tf_logits(worker, spec, claims, inputs), _tf_logits(runtime, spec, claims))
        tampers.append((name, rel, all(not c.passed for c in cs), max(c.distance for c in cs)))

    def model_tamper(name: str, change) -> None:
        model = copy.deepcopy(runtime.model)
        change(model)
        worker = SimpleNamespace(model=model.eval(), tokenizer=runtime.tokenizer)
        judge(name, g.run_items(spec, indices, PROMPTS, worker, batch_size=4), worker)
        del worker, model
        gc.collect()

    def drop_layers(m):
        m.model.layers = m.model.layers[:-2]
        m.config.num_hidden_layers -= 2

    def scale_layer(m, layer=15, factor=1.001):
        with torch.no_grad():
            for p in m.model.layers[layer].parameters():
                p.mul_(factor)

    model_tamper("two_layers_fewer", drop_layers)
    model_tamper("layer15_x1.001", scale_layer)
    model_tamper("layer0_x1.001", lambda m: scale_layer(m, 0))
    model_tamper("layer8_x1.0001", lambda m: scale_layer(m, 8, 1.0001))
    model_tamper("bf16", lambda m: m.to(torch.bfloat16))

    noted = [b"Note: " + p for p in PROMPTS]
    judge("prompt_prefix", g.run_items(spec, indices, noted, runtime, batch_size=4), runtime, noted)

    invented = runtime.tokenizer(
        " the quick brown fox jumps over the lazy dog and then runs far away"
    ).input_ids[:MAX_NEW]
    fake = []
    for blob in PROMPTS:
        prompt = g.encode_prompt(spec, blob, runtime.tokenizer)
        logp = torch.log_softmax(g.teacher_forced_logits(runtime, prompt, invented), dim=-1)
        fake.append(g.encode_output(invented, [float(logp[j, t]) for j, t in enumerate(invented)]))
    judge("invented_text_genuine_logprobs", fake)
    judge("truncated_by_3", [g.encode_output(t[:-3], lp[:-3]) for t, lp in ref])
    sampled = _spec(weights, 700, seed=1)
    wrong = g.run_items(_spec(weights, 700, seed=2), indices, PROMPTS, runtime, batch_size=4)
    cs = g.check_items(sampled, indices, PROMPTS, wrong, runtime, TOL)
    tampers.append(
        ("sampled_wrong_seed", 0.0, all(not c.passed for c in cs), max(c.distance for c in cs))
    )

    n = len(PROMPTS)
    return {
        "prompts": n,
        "max_new_tokens": MAX_NEW,
        "threads": torch.get_num_threads(),
        "honest_columns": ["name", "max_abs_logprob_diff", "max_rel_logit_diff"],
        "honest": honest,
        "honest_audit_distance": honest_audit,
        "tamper_columns": [
            "name",
            "rel_logit_diff_teacher_forced",
            "all_flagged",
            "max_audit_distance",
        ],
        "tampers": tampers,
        "tolerance": {"margin": TOL.margin, "logprob": TOL.logprob},
        "prefill_seconds": prefill_seconds,
        "generate_seconds": generate_seconds,
        "audit_per_item_seconds": prefill_seconds / n,
        "worker_per_item_seconds": generate_seconds / n,
    }


def _ok(output: bytes) -> bool:
    try:
        g.decode_output(output, MAX_NEW, 49152)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))
