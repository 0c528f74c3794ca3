"""Jobs end to end without a network: describe, run, commit, audit.

The pipeline, as ``fc job run-local`` and ``fc job audit`` use it:

1. :func:`prepare_job` turns a researcher's job file (JSON: kind, model, inputs,
   parameters) into a canonical :class:`chain.jobs.JobSpec`: it imports the packaged model
   and the inputs into the store, so the spec names them by hash only.
2. :func:`run_job` runs every unit (or the ones asked for) with the kind's runner and
   commits to the outputs (``workloads.commit``): a :class:`JobResult` with unit roots and
   the batch root, plus provenance (device, threads, torch version).
3. :func:`audit_job` checks a result the way an auditor would (``workloads.audit``): exact
   checks on everything, re-execution of a sample chosen by the auditor's randomness.

A result is stored as one canonical msgpack file (:meth:`JobResult.encode`); the blobs it
names (inputs, training checkpoints) live in the store of the data directory.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from chain.encoding import pack, unpack_canonical
from chain.jobs import (
    ARCHITECTURES,
    DTYPES,
    KIND_NAMES,
    TOLERANCES,
    InvalidJobSpec,
    JobSpec,
    Kind,
    decode_job_spec,
)
from chain.merkle import merkle_root
from workloads import commit, tolerances
from workloads.audit import Verdict
from workloads.runtime import deterministic, device_name
from workloads.store import BlobError, BlobStore, import_breast_cancer, import_packaged_model

RESULT_VERSION = 1
MAX_RESULT_SIZE = 256 << 20
DEFAULT_SAMPLES = 4


def kind_module(kind: Kind) -> ModuleType:
    """The runner and auditor of a kind (imported on demand: each pulls in its model code)."""
    if kind is Kind.EMBED:
        from workloads import embed

        return embed
    if kind is Kind.GENERATE:
        from workloads import generate

        return generate
    if kind is Kind.SAMPLE:
        from workloads import sample

        return sample
    from workloads import train

    return train


def tolerance_for(spec: JobSpec) -> Any:
    return tolerances.PROFILES[spec.kind][spec.tolerance]


# -- describing a job -------------------------------------------------------------------


class JobFileError(ValueError):
    """A job file that cannot become a spec; the message says which field and why."""


DEFAULT_MODEL = {
    Kind.EMBED: "bert-minilm-l6-h384",
    Kind.GENERATE: "llama-smollm2-135m",
    Kind.TRAIN: "mlp-breast-cancer",
    Kind.SAMPLE: "exact-smollm2-135m",
}


def _item_blob(kind: Kind, item: Any, n: int) -> bytes:
    if kind is Kind.TRAIN:
        if not isinstance(item, dict) or set(item) != {"lr", "width"}:
            raise JobFileError(f'inputs[{n}]: a training item is {{"lr": "0.05", "width": 16}}')
        if not isinstance(item["lr"], str) or type(item["width"]) is not int:
            raise JobFileError(f"inputs[{n}]: lr is a decimal string, width an integer")
        return pack([item["lr"], item["width"]])
    if not isinstance(item, str) or not item:
        raise JobFileError(f"inputs[{n}]: {kind.value} items are non-empty strings")
    return item.encode("utf-8")


def prepare_job(store: BlobStore, description: dict[str, Any]) -> tuple[JobSpec, list[bytes]]:
    """A job file's contents to a checked spec and its input hashes (inputs stored)."""
    try:
        kind = Kind(description.get("kind"))
    except ValueError:
        raise JobFileError(
            f"kind {description.get('kind')!r}: expected one of {KIND_NAMES}"
        ) from None
    known = {"kind", "model", "inputs", "params", "unit_size", "seed", "tolerance", "dtype"}
    unknown = set(description) - known
    if unknown:
        raise JobFileError(f"unknown fields {sorted(unknown)} (known: {sorted(known)})")
    arch = description.get("model", DEFAULT_MODEL[kind])
    if arch not in ARCHITECTURES:
        raise JobFileError(f"model {arch!r} unknown (known: {sorted(ARCHITECTURES)})")
    inputs = description.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise JobFileError("inputs: a non-empty list of items")
    blobs = [_item_blob(kind, item, n) for n, item in enumerate(inputs)]
    params = description.get("params", {})
    if not isinstance(params, dict) or not all(type(v) is int for v in params.values()):
        raise JobFileError("params: an object of integer values")
    params = dict(params)
    if kind is Kind.TRAIN:
        params["dataset"] = import_breast_cancer(store)
        weights = hashlib.sha256(b"fc/mlp-breast-cancer/untrained").digest()
    elif kind is Kind.SAMPLE:
        from workloads.exact import load_exact_model
        from workloads.sample import MODEL_NAMES

        if arch not in MODEL_NAMES:
            raise JobFileError(
                f"model {arch!r} does not run sample jobs (use {sorted(MODEL_NAMES)})"
            )
        weights = load_exact_model(store, MODEL_NAMES[arch]).sha256
    else:
        weights = import_packaged_model(store, arch)
    hashes = [store.put(blob) for blob in blobs]
    spec = JobSpec(
        kind=kind,
        arch=arch,
        weights=weights,
        inputs_root=merkle_root(hashes),
        items=len(blobs),
        params=params,
        unit_size=int(description.get("unit_size", 8)),
        dtype=str(description.get("dtype", DTYPES[kind])),
        tolerance=str(description.get("tolerance", TOLERANCES[kind])),
        seed=int(description.get("seed", 0)),
    )
    spec = decode_job_spec(spec.encoded)  # every rule of chain.jobs, on the canonical bytes
    store.put(spec.encoded)
    return spec, hashes


def load_job_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise JobFileError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise JobFileError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise JobFileError(f"{path}: a job file is a JSON object")
    return data


# -- results ------------------------------------------------------------------------------


@dataclass
class UnitResult:
    unit: int
    outputs: list[bytes]
    root: bytes


@dataclass
class JobResult:
    spec: JobSpec
    input_hashes: list[bytes]
    units: list[UnitResult]
    batch_root: bytes
    provenance: str  # device and software that produced it

    def encode(self) -> bytes:
        return pack(
            [
                RESULT_VERSION,
                self.spec.encoded,
                self.input_hashes,
                [[u.unit, u.outputs, u.root] for u in self.units],
                self.batch_root,
                self.provenance,
            ]
        )

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.encode())


class ResultError(ValueError):
    """A result file that does not decode."""


def decode_result(data: bytes) -> JobResult:
    try:
        f = unpack_canonical(data, MAX_RESULT_SIZE)
        version, spec_bytes, hashes, units, root, provenance = f
        if version != RESULT_VERSION:
            raise ResultError(f"result version {version!r}, expected {RESULT_VERSION}")
        spec = decode_job_spec(spec_bytes)
        return JobResult(
            spec,
            list(hashes),
            [UnitResult(int(u), list(outs), bytes(r)) for u, outs, r in units],
            bytes(root),
            str(provenance),
        )
    except ResultError:
        raise
    except InvalidJobSpec as exc:
        raise ResultError(f"the result's job spec is invalid: {exc}") from None
    except Exception as exc:
        raise ResultError(f"not a job result file: {exc}") from None


def load_result(path: Path) -> JobResult:
    try:
        return decode_result(Path(path).read_bytes())
    except FileNotFoundError:
        raise ResultError(f"{path}: no such file") from None


# -- running -------------------------------------------------------------------------------


def run_job(
    store: BlobStore,
    spec: JobSpec,
    input_hashes: list[bytes],
    *,
    device: str = "cpu",
    threads: int | None = None,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    runtime: Any = None,
) -> JobResult:
    """Run every unit of ``spec`` and commit to the outputs."""
    dev = deterministic(device, threads)
    module = kind_module(spec.kind)
    if runtime is None:
        runtime = module.load_runtime(store, spec, device)
    units = []
    for unit in range(spec.units):
        indices = spec.unit_items(unit)
        inputs = [store.get(input_hashes[i]) for i in indices]
        outputs = module.run_items(
            spec, list(indices), inputs, runtime, batch_size=batch_size, progress=progress
        )
        unit_hashes = [input_hashes[i] for i in indices]
        root = commit.unit_root(spec.unit_id(unit), indices, unit_hashes, outputs)
        units.append(UnitResult(unit, outputs, root))
    return JobResult(
        spec,
        list(input_hashes),
        units,
        commit.batch_root([u.root for u in units]),
        device_name(dev),
    )


# -- auditing ------------------------------------------------------------------------------


def exact_checks(store: BlobStore, result: JobResult, verdict: Verdict) -> list[bytes] | None:
    """Part 1 of the audit: inputs, shapes and every root. Returns the input blobs."""
    spec = result.spec
    if len(result.input_hashes) != spec.items:
        verdict.fail(f"{len(result.input_hashes)} input hashes for {spec.items} items")
        return None
    if merkle_root(result.input_hashes) != spec.inputs_root:
        verdict.fail("the input hashes do not match the spec's inputs_root")
        return None
    try:
        inputs = [store.get(h) for h in result.input_hashes]
    except BlobError as exc:
        verdict.fail(f"an input is unavailable: {exc}")
        return None
    if [u.unit for u in result.units] != list(range(spec.units)):
        verdict.fail(f"the result must hold units 0..{spec.units - 1} in order")
        return None
    for u in result.units:
        indices = spec.unit_items(u.unit)
        if len(u.outputs) != len(indices):
            verdict.fail(f"unit {u.unit}: {len(u.outputs)} outputs for {len(indices)} items")
            continue
        hashes = [result.input_hashes[i] for i in indices]
        if commit.unit_root(spec.unit_id(u.unit), indices, hashes, u.outputs) != u.root:
            verdict.fail(
                f"unit {u.unit}: the outputs do not hash to the unit root "
                "(items reordered, copied from another unit, or altered)"
            )
    if commit.batch_root([u.root for u in result.units]) != result.batch_root:
        verdict.fail("the unit roots do not hash to the batch root")
    return inputs if verdict.passed else None


def choose_sample(spec: JobSpec, samples: int, rng: random.Random) -> list[int]:
    """Item indices to re-execute, drawn with the auditor's own randomness."""
    return sorted(rng.sample(range(spec.items), min(samples, spec.items)))


def audit_job(
    store: BlobStore,
    result: JobResult,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int | None = None,
    device: str = "cpu",
    runtime: Any = None,
    indices: list[int] | None = None,
) -> Verdict:
    """Audit ``result``: exact checks, then re-execution of sampled items.

    ``seed`` fixes the auditor's randomness (for reproducible tests); by default it comes
    from the operating system, so the worker cannot predict the sample. ``indices``
    overrides the sample (a full audit, or a test aiming at one item).
    """
    verdict = Verdict(True)
    inputs = exact_checks(store, result, verdict)
    if inputs is None:
        return verdict
    spec = result.spec
    rng = random.Random(secrets.randbits(64) if seed is None else seed)
    chosen = indices if indices is not None else choose_sample(spec, samples, rng)
    deterministic(device)
    module = kind_module(spec.kind)
    if runtime is None:
        runtime = module.load_runtime(store, spec, device)
    outputs = {
        i: out
        for u in result.units
        for i, out in zip(spec.unit_items(u.unit), u.outputs, strict=True)
    }
    tol = tolerance_for(spec)
    chosen_inputs = [inputs[i] for i in chosen]
    chosen_outputs = [outputs[i] for i in chosen]
    if spec.kind is Kind.TRAIN:
        checks = module.check_items(spec, chosen, chosen_inputs, chosen_outputs, runtime, tol, rng)
    else:
        checks = module.check_items(spec, chosen, chosen_inputs, chosen_outputs, runtime, tol)
    for check in checks:
        verdict.checks.append(check)
        if not check.passed:
            verdict.fail(check.reason or f"item {check.index} failed re-execution")
    return verdict
