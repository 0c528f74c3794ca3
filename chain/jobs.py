"""Job specs: what a unit of useful work is, in canonical bytes (specs/jobs.md).

A researcher describes a job once; its canonical encoding is hashed into the **job id**,
and the job splits deterministically into **units** of ``unit_size`` items, each with a
cost in **benefit units** computed from a FLOP estimate in integers. Everything here is
exact: the floating-point work and its judgement live in ``workloads/``, never here.

::

    job_spec = [version: u8 = 1, kind: str, arch: str, weights: bin32,
                inputs_root: bin32, items: u32, params: [[name: str, value: int|bin|str], ...],
                unit_size: u32, dtype: str, tolerance: str, seed: u64]

``params`` are sorted by name, each name allowed for the kind exactly once (§2 of
specs/jobs.md lists them with their ranges). A spec that breaks any of this raises
:class:`InvalidJobSpec` with a stable code, so a tool or peer can tell *why* it was
refused. A ``job-submit`` transaction carries a spec today only for a steward's lottery
job (chain/lottery.py, where any refusal is the consensus code ``bad-job-spec``); research
jobs on chain, with these codes as consensus reject codes, come with Proof of Benefit
part 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chain.encoding import UINT32_MAX, UINT64_MAX, pack, unpack_canonical
from chain.errors import DecodeError
from chain.hashing import tagged_hash

TAG_JOB = "fc/job"
TAG_UNIT = "fc/unit"
JOB_SPEC_VERSION = 1
MAX_JOB_SPEC_SIZE = 4096
MAX_ITEMS = 1_000_000
MAX_UNIT_SIZE = 4096
GFLOP = 10**9  # one benefit unit


class JobError(StrEnum):
    """Stable codes for refused job specs (specs/jobs.md §3)."""

    MALFORMED = "job-malformed"
    VERSION = "job-version"
    KIND = "job-kind-unknown"
    ARCH = "job-arch-unknown"
    ARCH_KIND = "job-arch-kind-mismatch"
    ITEMS = "job-items-range"
    UNIT_SIZE = "job-unit-size-range"
    PARAM_UNKNOWN = "job-param-unknown"
    PARAM_MISSING = "job-param-missing"
    PARAM_ORDER = "job-param-order"
    PARAM_RANGE = "job-param-range"
    DTYPE = "job-dtype-unsupported"
    TOLERANCE = "job-tolerance-unknown"


class InvalidJobSpec(ValueError):
    def __init__(self, code: JobError, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail


class Kind(StrEnum):
    EMBED = "embed"
    GENERATE = "generate"
    TRAIN = "train"
    SAMPLE = "sample"  # exact work: integer-only sampling, checked by equality (specs/exact.md)


KIND_NAMES = ", ".join(k.value for k in Kind)


@dataclass(frozen=True)
class Architecture:
    """A model architecture jobs may name, and what it costs to run."""

    kind: Kind
    parameters: int  # weights in the model (0 where they depend on the job: mlp_parameters)


# Parameter counts are those of the packaged models (counted once from the weights).
# ``mlp-breast-cancer``: 30 inputs -> width hidden (ReLU) -> 2 logits, so
# 30w + w + 2w + 2 = 33w + 2 weights; its cost uses ``parameters_for_width``.
ARCHITECTURES: dict[str, Architecture] = {
    "bert-minilm-l6-h384": Architecture(Kind.EMBED, 22_713_216),
    "llama-smollm2-135m": Architecture(Kind.GENERATE, 134_515_008),
    "mlp-breast-cancer": Architecture(Kind.TRAIN, 0),  # depends on width: mlp_parameters
    # The integer models of specs/exact.md; a sample job's ``weights`` is the artifact hash.
    "exact-smollm2-135m": Architecture(Kind.SAMPLE, 134_515_008),
    "exact-tiny": Architecture(Kind.SAMPLE, 3_219_456),
}
MLP_FEATURES = 30


def mlp_parameters(width: int) -> int:
    return (MLP_FEATURES + 1) * width + (width + 1) * 2


@dataclass(frozen=True)
class ParamRule:
    lo: int = 0
    hi: int = UINT32_MAX
    bytes_len: int | None = None  # a bin value of exactly this length instead of an int
    default: int | bytes | None = None  # absent from the spec only where a default exists


# Allowed parameters per kind, by name (specs/jobs.md §2).
PARAMS: dict[Kind, dict[str, ParamRule]] = {
    Kind.EMBED: {
        "max_tokens": ParamRule(1, 512),
    },
    Kind.GENERATE: {
        "max_prompt_tokens": ParamRule(1, 1024),
        "max_new_tokens": ParamRule(1, 512),
        # 0: greedy. Otherwise sampling at temperature / 1000 with Gumbel noise seeded
        # from (seed, item, position), so one teacher-forced pass can check every token.
        "temperature_milli": ParamRule(0, 10_000),
    },
    Kind.SAMPLE: {
        "max_prompt_tokens": ParamRule(1, 1024),
        "max_new_tokens": ParamRule(1, 1024),
        # 0: greedy; otherwise exact inverse-CDF sampling at temperature / 1000
        "temperature_milli": ParamRule(0, 65535),
        "stop_at_eos": ParamRule(0, 1),  # 0: exactly max_new_tokens tokens, EOS ordinary
    },
    Kind.TRAIN: {
        "dataset": ParamRule(bytes_len=32),  # sha256 of the dataset blob in the store
        "steps": ParamRule(1, 100_000),
        "checkpoint_every": ParamRule(1, 100_000),
        "batch_size": ParamRule(1, 4096),
        "max_width": ParamRule(1, 4096),  # no config of the sweep may be wider
        "holdout_permille": ParamRule(50, 500),
    },
}
# Float work runs fp32 and is audited within the calibrated "default" profile; exact work
# runs in integers and is checked by equality.
DTYPES = {Kind.EMBED: "fp32", Kind.GENERATE: "fp32", Kind.TRAIN: "fp32", Kind.SAMPLE: "int"}
TOLERANCES = {
    Kind.EMBED: "default",
    Kind.GENERATE: "default",
    Kind.TRAIN: "default",
    Kind.SAMPLE: "exact",
}


@dataclass(frozen=True)
class JobSpec:
    kind: Kind
    arch: str
    weights: bytes  # sha256 of the model weights blob
    inputs_root: bytes  # merkle_root over the sha256 of each item blob, in order
    items: int
    params: Mapping[str, int | bytes]
    unit_size: int
    dtype: str = "fp32"
    tolerance: str = "default"
    seed: int = 0

    def to_wire(self) -> list[Any]:
        return [
            JOB_SPEC_VERSION,
            self.kind.value,
            self.arch,
            self.weights,
            self.inputs_root,
            self.items,
            [[name, self.params[name]] for name in sorted(self.params)],
            self.unit_size,
            self.dtype,
            self.tolerance,
            self.seed,
        ]

    @property
    def encoded(self) -> bytes:
        return pack(self.to_wire())

    @property
    def job_id(self) -> bytes:
        return tagged_hash(TAG_JOB, self.encoded)

    def param(self, name: str) -> int:
        value = self.params[name]
        assert isinstance(value, int)
        return value

    @property
    def units(self) -> int:
        return -(-self.items // self.unit_size)

    def unit_items(self, unit: int) -> range:
        """The item indices of unit ``unit``: consecutive, the last unit possibly shorter."""
        if not 0 <= unit < self.units:
            raise IndexError(f"unit {unit} outside 0..{self.units - 1}")
        start = unit * self.unit_size
        return range(start, min(start + self.unit_size, self.items))

    def unit_id(self, unit: int) -> bytes:
        self.unit_items(unit)  # range check
        return tagged_hash(TAG_UNIT, self.job_id + unit.to_bytes(4, "big"))

    def item_flops(self) -> int:
        """FLOP estimate for one item (specs/jobs.md §4): 2·P per token of a forward
        pass; 6·P per example of a training step (forward and backward)."""
        arch = ARCHITECTURES[self.arch]
        if self.kind is Kind.EMBED:
            return 2 * arch.parameters * self.param("max_tokens")
        if self.kind in (Kind.GENERATE, Kind.SAMPLE):
            tokens = self.param("max_prompt_tokens") + self.param("max_new_tokens")
            return 2 * arch.parameters * tokens
        weights = mlp_parameters(self.param("max_width"))
        return 6 * weights * self.param("batch_size") * self.param("steps")

    def unit_cost(self, unit: int) -> int:
        """Benefit units of a unit: its FLOPs in GFLOP, rounded up, at least 1."""
        flops = len(self.unit_items(unit)) * self.item_flops()
        return max(1, -(-flops // GFLOP))


def check_job_spec(spec: JobSpec) -> None:
    """Every rule of specs/jobs.md §3 that needs only the spec itself."""
    if spec.kind not in PARAMS:
        raise InvalidJobSpec(JobError.KIND, f"kind {spec.kind!r} is not one of {KIND_NAMES}")
    arch = ARCHITECTURES.get(spec.arch)
    if arch is None:
        raise InvalidJobSpec(
            JobError.ARCH, f"architecture {spec.arch!r} unknown (known: {sorted(ARCHITECTURES)})"
        )
    if arch.kind is not spec.kind:
        raise InvalidJobSpec(
            JobError.ARCH_KIND, f"{spec.arch} runs {arch.kind.value} jobs, not {spec.kind.value}"
        )
    if len(spec.weights) != 32 or len(spec.inputs_root) != 32:
        raise InvalidJobSpec(JobError.MALFORMED, "weights and inputs_root are 32-byte hashes")
    if not 1 <= spec.items <= MAX_ITEMS:
        raise InvalidJobSpec(JobError.ITEMS, f"{spec.items} items outside 1..{MAX_ITEMS}")
    if not 1 <= spec.unit_size <= MAX_UNIT_SIZE:
        raise InvalidJobSpec(
            JobError.UNIT_SIZE, f"unit size {spec.unit_size} outside 1..{MAX_UNIT_SIZE}"
        )
    rules = PARAMS[spec.kind]
    for name in spec.params:
        if name not in rules:
            raise InvalidJobSpec(
                JobError.PARAM_UNKNOWN,
                f"{spec.kind.value} jobs take no parameter {name!r} (they take {sorted(rules)})",
            )
    for name, rule in rules.items():
        if name not in spec.params:
            raise InvalidJobSpec(JobError.PARAM_MISSING, f"parameter {name!r} is required")
        value = spec.params[name]
        if rule.bytes_len is not None:
            if type(value) is not bytes or len(value) != rule.bytes_len:
                raise InvalidJobSpec(JobError.PARAM_RANGE, f"{name} must be {rule.bytes_len} bytes")
        elif type(value) is not int or not rule.lo <= value <= rule.hi:
            raise InvalidJobSpec(
                JobError.PARAM_RANGE, f"{name}={value!r} outside {rule.lo}..{rule.hi}"
            )
    if spec.kind is Kind.TRAIN and spec.param("checkpoint_every") > spec.param("steps"):
        raise InvalidJobSpec(JobError.PARAM_RANGE, "checkpoint_every exceeds steps")
    if spec.dtype != DTYPES[spec.kind]:
        raise InvalidJobSpec(
            JobError.DTYPE, f"dtype {spec.dtype!r}: {spec.kind.value} jobs run {DTYPES[spec.kind]}"
        )
    if spec.tolerance != TOLERANCES[spec.kind]:
        raise InvalidJobSpec(
            JobError.TOLERANCE,
            f"tolerance profile {spec.tolerance!r}: {spec.kind.value} jobs use {TOLERANCES[spec.kind]!r}",
        )
    if not 0 <= spec.seed <= UINT64_MAX:
        raise InvalidJobSpec(JobError.MALFORMED, "seed is a u64")


def decode_job_spec(data: bytes) -> JobSpec:
    """Canonical bytes to a checked spec; raises :class:`InvalidJobSpec`."""
    try:
        f = unpack_canonical(data, MAX_JOB_SPEC_SIZE)
    except DecodeError as exc:
        raise InvalidJobSpec(JobError.MALFORMED, exc.detail) from None
    if type(f) is not list or len(f) != 11:
        raise InvalidJobSpec(JobError.MALFORMED, "a job spec is an array of 11 fields")
    if f[0] != JOB_SPEC_VERSION:
        raise InvalidJobSpec(JobError.VERSION, f"version {f[0]!r}, expected {JOB_SPEC_VERSION}")
    types = [int, str, str, bytes, bytes, int, list, int, str, str, int]
    for n, (value, expected) in enumerate(zip(f, types, strict=True)):
        if type(value) is not expected:
            raise InvalidJobSpec(JobError.MALFORMED, f"field {n} must be {expected.__name__}")
    try:
        kind = Kind(f[1])
    except ValueError:
        raise InvalidJobSpec(JobError.KIND, f"kind {f[1]!r} is not one of {KIND_NAMES}") from None
    params: dict[str, int | bytes] = {}
    names = []
    for pair in f[6]:
        if (
            type(pair) is not list
            or len(pair) != 2
            or type(pair[0]) is not str
            or type(pair[1]) not in (int, bytes)
        ):
            raise InvalidJobSpec(JobError.MALFORMED, "params are [name, int or bytes] pairs")
        names.append(pair[0])
        params[pair[0]] = pair[1]
    if names != sorted(set(names)):
        raise InvalidJobSpec(JobError.PARAM_ORDER, "params must be sorted by name, each once")
    spec = JobSpec(kind, f[2], f[3], f[4], f[5], params, f[7], f[8], f[9], f[10])
    check_job_spec(spec)
    return spec
