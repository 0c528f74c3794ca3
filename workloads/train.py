"""The ``train`` kind: seeded, checkpointed training runs that an auditor can replay.

A train job is a hyper-parameter sweep of a small classifier (``mlp-breast-cancer``) on
scikit-learn's breast-cancer data. Each **item** is one configuration,
``pack([lr: str, width: int])``; the worker trains it and returns

    output = pack([checkpoint_hashes: [bin32, ...], metrics: bin12])

where ``metrics`` is float32 little-endian ``[final train loss, holdout loss, holdout accuracy]``
computed from the final checkpoint, and every checkpoint blob lies in the BlobStore.

Everything a run depends on is fixed by the job spec and the item index:

* **split**: a permutation of the 569 rows from a CPU ``torch.Generator`` seeded with
  ``derive_seed("split", spec.seed)``; its first ``569 * holdout_permille // 1000`` rows are the
  holdout, the rest the training split. Features are standardised with the mean and standard
  deviation (float64, population, 0 replaced by 1) of the training split only.
* **initialisation**: ``W1 (width,30), b1 (width), W2 (2,width), b2 (2)``, drawn in that order as
  ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's ``nn.Linear`` default range) from a CPU
  generator seeded with ``derive_seed("init", spec.seed, index)``.
* **batch order**: ``batch = min(batch_size, n_train)`` and ``per_epoch = n_train // batch``
  (the remainder of each epoch is dropped, so every batch has the same size). Step ``t`` is batch
  ``t % per_epoch`` of epoch ``t // per_epoch``, whose order is a permutation of the training
  rows from a CPU generator seeded with ``derive_seed("order", spec.seed, index, epoch)``.
* **optimiser**: SGD with momentum 0.9 (no dampening, no Nesterov, no weight decay), the
  momentum buffers starting at zero: ``m = 0.9*m + g; w = w - lr*m``. Momentum rather than plain
  SGD because it is what sweeps use in practice, and it makes the resumable state larger than the
  weights, which the checkpoint format must therefore carry. Loss: mean cross-entropy, fp32.

``derive_seed`` is the first 8 bytes (big-endian, top bit cleared) of
``tagged_hash("fc/train/seed", pack([purpose, *numbers]))``, so no two generators share a seed.

**Checkpoints** are taken after steps ``0, c, 2c, ...`` and after the last step
(``c = checkpoint_every``); checkpoint ``k`` holds the state after ``min(k*c, steps)`` steps::

    checkpoint = pack(["fc/train-checkpoint/1", step: int,
                       [[name, shape: [int, ...], float32 LE bytes] for W1, b1, W2, b2],
                       [[name, shape, float32 LE bytes] for the four momentum buffers]])

**Audit** (:func:`check_items`) for each sampled item: every checkpoint must be in the store and
decode with the right step and shapes; checkpoint 0 must equal the seeded initialisation (and
zero momentum); one segment ``k``, chosen with the auditor's ``rng``, is replayed from
checkpoint ``k`` and compared with checkpoint ``k+1``; the metrics are recomputed from the final
checkpoint. The replay distance is

    d = max(||w_replay - w_claimed|| / ||w_replay - w_k||,  ||m_replay - m_claimed|| / ||m_replay - m_k||)

(``w``: the four weight tensors flattened together; ``m``: the four momentum buffers). The
denominators are the *auditor's own* update over the segment, so a worker cannot make its error
look small by claiming a huge update. The initialisation distance is
``||s_claimed - s_init|| / ||s_init||`` with ``s`` weights and momentum flattened together.
Both are compared with ``tol.replay``.
A diverged run (NaN or inf in a checkpoint) is a legitimate result: its non-finite entries
must match the replay's exactly, the finite ones are compared as usual, and the segment where it
first diverged is always replayed too. Metrics are compared as
``max |claimed - recomputed| / max(1, |recomputed|)`` (absolute below 1, relative for the huge
losses of a diverging run) with ``tol.metric``.

Limits: one segment per audit, so a tamper confined to one of ``n`` segments is caught with
probability ``1/n`` per audit (bench/calib_train.py and the tests show both sides). A run that
diverges (lr ~1 and above here) is chaotic: another machine's rounding can move its replay past
the tolerance (a float64 worker drifted 6.6e-3 in 50 steps), so such configurations may fail an
audit on other hardware; stable runs drift at most ~1.5e-5.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from chain.encoding import pack, unpack_canonical
from chain.errors import DecodeError
from chain.hashing import sha256, tagged_hash
from chain.jobs import MLP_FEATURES, JobSpec
from workloads.audit import ItemCheck
from workloads.store import BlobError, load_breast_cancer_blob
from workloads.tolerances import TrainTolerance

MOMENTUM = 0.9
CLASSES = 2
CHECKPOINT_TAG = "fc/train-checkpoint/1"
SEED_TAG = "fc/train/seed"
MAX_INPUT_SIZE = 256
MAX_LR = Decimal(10)
_LR_RE = re.compile(r"[0-9]{1,2}(\.[0-9]{1,12})?")
PARAM_NAMES = ("W1", "b1", "W2", "b2")


@dataclass(frozen=True)
class Deviation:
    """Ways a worker can depart from the honest run. For calibration and tests only: the
    honest path (``run_items``) never sets one. ``compute_dtype=float64`` is an *honest* noise
    proxy (another machine's rounding), the rest are tampers."""

    lr_scale: float = 1.0
    skip_steps: frozenset[int] = field(default_factory=frozenset)  # batch drawn, no update
    order_seed: int | None = None  # batch order from this job seed instead of spec.seed
    init_seed: int | None = None  # initialisation from this job seed instead of spec.seed
    compute_dtype: torch.dtype = torch.float32


# -- seeds, config, data -------------------------------------------------------------


def derive_seed(purpose: str, *numbers: int) -> int:
    digest = tagged_hash(SEED_TAG, pack([purpose, *numbers]))
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


@dataclass(frozen=True)
class Config:
    lr_text: str
    lr: float
    width: int


def parse_input(spec: JobSpec, blob: bytes) -> Config:
    """Decode one sweep configuration; raise ValueError with a clear message if it is bad."""
    try:
        value = unpack_canonical(blob, MAX_INPUT_SIZE)
    except DecodeError as exc:
        raise ValueError(f"train input is not canonical msgpack: {exc}") from None
    if type(value) is not list or len(value) != 2:
        raise ValueError("train input must be [lr: str, width: int]")
    lr_text, width = value
    if type(lr_text) is not str or not _LR_RE.fullmatch(lr_text):
        raise ValueError(f"learning rate {lr_text!r} must be a plain decimal string like '0.05'")
    try:
        lr_dec = Decimal(lr_text)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes this
        raise ValueError(f"learning rate {lr_text!r} is not a decimal") from None
    if not 0 < lr_dec <= MAX_LR:
        raise ValueError(f"learning rate {lr_text} outside (0, {MAX_LR}]")
    if type(width) is not int:
        raise ValueError(f"width {width!r} must be an integer")
    max_width = spec.param("max_width")
    if not 1 <= width <= max_width:
        raise ValueError(f"width {width} outside 1..{max_width} (the job's max_width)")
    return Config(lr_text, float(lr_dec), width)


def pack_input(lr: str, width: int) -> bytes:
    return pack([lr, width])


def _load_arrays(store: Any, spec: JobSpec) -> tuple[np.ndarray, np.ndarray]:
    dataset = spec.params["dataset"]
    if type(dataset) is not bytes:
        raise ValueError("the dataset parameter must be a 32-byte hash")
    return load_breast_cancer_blob(store.get(dataset))


@dataclass
class TrainRuntime:
    store: Any  # BlobStore: put / get / has
    device: torch.device
    x_train: torch.Tensor  # standardised float32 (n_train, 30)
    y_train: torch.Tensor  # int64 (n_train,)
    x_hold: torch.Tensor
    y_hold: torch.Tensor

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])


def load_runtime(store: Any, spec: JobSpec, device: str = "cpu") -> TrainRuntime:
    x, y = _load_arrays(store, spec)
    if x.ndim != 2 or x.shape[1] != MLP_FEATURES or y.shape != (x.shape[0],):
        raise ValueError(f"dataset has shape {x.shape}/{y.shape}, expected (n, 30)/(n,)")
    n = x.shape[0]
    perm = torch.randperm(n, generator=_generator(derive_seed("split", spec.seed))).numpy()
    n_hold = n * spec.param("holdout_permille") // 1000
    hold, train = perm[:n_hold], perm[n_hold:]
    xt = x[train].astype(np.float64)
    mean = xt.mean(axis=0)
    std = xt.std(axis=0)
    std[std == 0] = 1.0

    def norm(rows: np.ndarray) -> torch.Tensor:
        z = ((x[rows].astype(np.float64) - mean) / std).astype(np.float32)
        return torch.from_numpy(z).to(device)

    dev = torch.device(device)
    return TrainRuntime(
        store,
        dev,
        norm(train),
        torch.from_numpy(y[train].astype(np.int64)).to(dev),
        norm(hold),
        torch.from_numpy(y[hold].astype(np.int64)).to(dev),
    )


# -- the model and one step ----------------------------------------------------------

State = tuple[list[torch.Tensor], list[torch.Tensor]]  # (weights, momentum), W1 b1 W2 b2


def shapes(width: int) -> list[tuple[int, ...]]:
    return [(width, MLP_FEATURES), (width,), (CLASSES, width), (CLASSES,)]


def initial_state(seed: int, index: int, width: int, device: torch.device) -> State:
    g = _generator(derive_seed("init", seed, index))
    weights = []
    for shape, fan_in in zip(
        shapes(width), (MLP_FEATURES, MLP_FEATURES, width, width), strict=True
    ):
        bound = 1.0 / math.sqrt(fan_in)
        u = torch.rand(shape, generator=g, dtype=torch.float32)
        weights.append(((u * 2 - 1) * bound).to(device))
    return weights, [torch.zeros_like(w) for w in weights]


def _forward(weights: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    w1, b1, w2, b2 = weights
    return F.linear(torch.relu(F.linear(x, w1, b1)), w2, b2)


def batch_rows(
    spec: JobSpec, index: int, step: int, n_train: int, seed: int | None = None
) -> torch.Tensor:
    """The training-split rows of step ``step`` (CPU int64)."""
    batch = min(spec.param("batch_size"), n_train)
    per_epoch = n_train // batch
    epoch, j = divmod(step, per_epoch)
    job_seed = spec.seed if seed is None else seed
    order = torch.randperm(
        n_train, generator=_generator(derive_seed("order", job_seed, index, epoch))
    )
    return order[j * batch : (j + 1) * batch]


def train_step(state: State, x: torch.Tensor, y: torch.Tensor, lr: float) -> State:
    weights, moms = state
    params = [w.detach().requires_grad_(True) for w in weights]
    loss = F.cross_entropy(_forward(params, x), y)
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        new_m = [m * MOMENTUM + g for m, g in zip(moms, grads, strict=True)]
        new_w = [p.detach() - lr * m for p, m in zip(params, new_m, strict=True)]
    return new_w, new_m


def run_steps(
    spec: JobSpec,
    index: int,
    cfg: Config,
    runtime: TrainRuntime,
    state: State,
    start: int,
    stop: int,
    dev: Deviation | None = None,
) -> State:
    lr = cfg.lr * (dev.lr_scale if dev else 1.0)
    order_seed = dev.order_seed if dev else None
    for t in range(start, stop):
        rows = batch_rows(spec, index, t, runtime.n_train, order_seed).to(runtime.device)
        if dev and t in dev.skip_steps:
            continue
        x = runtime.x_train[rows]
        if dev and dev.compute_dtype != torch.float32:
            x = x.to(dev.compute_dtype)
        state = train_step(state, x, runtime.y_train[rows], lr)
    return state


def metrics(weights: Sequence[torch.Tensor], runtime: TrainRuntime) -> np.ndarray:
    """[train loss, holdout loss, holdout accuracy] as float32, from fp32 weights."""
    with torch.no_grad():
        w = [t.to(torch.float32) for t in weights]
        train_loss = F.cross_entropy(_forward(w, runtime.x_train), runtime.y_train)
        logits = _forward(w, runtime.x_hold)
        hold_loss = F.cross_entropy(logits, runtime.y_hold)
        acc = (logits.argmax(dim=1) == runtime.y_hold).to(torch.float32).mean()
    return np.array([train_loss.item(), hold_loss.item(), acc.item()], dtype="<f4")


# -- checkpoints ---------------------------------------------------------------------


def checkpoint_steps(spec: JobSpec) -> list[int]:
    steps, every = spec.param("steps"), spec.param("checkpoint_every")
    marks = list(range(0, steps, every))
    return [*marks, steps]


def _tensor_entry(name: str, t: torch.Tensor) -> list[Any]:
    arr = t.detach().to("cpu", torch.float32).numpy().astype("<f4")
    return [name, list(arr.shape), arr.tobytes()]


def encode_checkpoint(step: int, state: State) -> bytes:
    weights, moms = state
    return pack(
        [
            CHECKPOINT_TAG,
            step,
            [_tensor_entry(n, w) for n, w in zip(PARAM_NAMES, weights, strict=True)],
            [_tensor_entry(n, m) for n, m in zip(PARAM_NAMES, moms, strict=True)],
        ]
    )


def decode_checkpoint(blob: bytes, step: int, width: int, device: torch.device) -> State:
    """Raise ValueError unless ``blob`` is the checkpoint of ``step`` for this width."""
    try:
        value = unpack_canonical(blob, len(blob))
    except DecodeError as exc:
        raise ValueError(f"not a canonical checkpoint: {exc}") from None
    if type(value) is not list or len(value) != 4 or value[0] != CHECKPOINT_TAG:
        raise ValueError("not a train checkpoint")
    if value[1] != step or type(value[1]) is not int:
        raise ValueError(f"checkpoint is of step {value[1]!r}, expected {step}")
    out: list[list[torch.Tensor]] = []
    for group in (value[2], value[3]):
        if type(group) is not list or len(group) != len(PARAM_NAMES):
            raise ValueError("checkpoint must hold four weight and four momentum tensors")
        tensors = []
        for entry, name, shape in zip(group, PARAM_NAMES, shapes(width), strict=True):
            if (
                type(entry) is not list
                or len(entry) != 3
                or entry[0] != name
                or entry[1] != list(shape)
                or type(entry[2]) is not bytes
                or len(entry[2]) != 4 * math.prod(shape)
            ):
                raise ValueError(f"checkpoint tensor {name} is not float32 of shape {shape}")
            arr = np.frombuffer(entry[2], dtype="<f4").reshape(shape).astype(np.float32)
            tensors.append(torch.from_numpy(arr).to(device))
        out.append(tensors)
    return out[0], out[1]


def encode_output(hashes: Sequence[bytes], metric_values: np.ndarray) -> bytes:
    return pack([list(hashes), np.asarray(metric_values, dtype="<f4").tobytes()])


def decode_output(spec: JobSpec, blob: bytes) -> tuple[list[bytes], np.ndarray]:
    count = len(checkpoint_steps(spec))
    try:
        value = unpack_canonical(blob, 64 + 35 * count)
    except DecodeError as exc:
        raise ValueError(f"output is not canonical msgpack: {exc}") from None
    if type(value) is not list or len(value) != 2 or type(value[0]) is not list:
        raise ValueError("output must be [checkpoint_hashes, metrics]")
    hashes, raw = value
    if len(hashes) != count or any(type(h) is not bytes or len(h) != 32 for h in hashes):
        raise ValueError(f"output must list {count} 32-byte checkpoint hashes")
    if type(raw) is not bytes or len(raw) != 12:
        raise ValueError("metrics must be 3 float32 values (12 bytes)")
    return hashes, np.frombuffer(raw, dtype="<f4").astype(np.float32)


# -- the worker ----------------------------------------------------------------------


def run_item(
    spec: JobSpec, index: int, blob: bytes, runtime: TrainRuntime, dev: Deviation | None = None
) -> bytes:
    cfg = parse_input(spec, blob)
    init_seed = dev.init_seed if dev and dev.init_seed is not None else spec.seed
    state = initial_state(init_seed, index, cfg.width, runtime.device)
    if dev and dev.compute_dtype != torch.float32:
        state = (
            [w.to(dev.compute_dtype) for w in state[0]],
            [m.to(dev.compute_dtype) for m in state[1]],
        )
    hashes = []
    previous = 0
    for step in checkpoint_steps(spec):
        state = run_steps(spec, index, cfg, runtime, state, previous, step, dev)
        previous = step
        hashes.append(runtime.store.put(encode_checkpoint(step, state)))
    return encode_output(hashes, metrics(state[0], runtime))


def run_items(
    spec: JobSpec,
    indices: Sequence[int],
    inputs: Sequence[bytes],
    runtime: TrainRuntime,
    *,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[bytes]:
    """Train each configuration in turn (``batch_size`` is unused: one run at a time keeps
    each run's arithmetic independent of its neighbours). Checkpoints go to ``runtime.store``."""
    if len(indices) != len(inputs):
        raise ValueError("indices and inputs differ in length")
    outputs = []
    for done, (index, blob) in enumerate(zip(indices, inputs, strict=True), 1):
        outputs.append(run_item(spec, index, blob, runtime))
        if progress is not None:
            progress(done)
    return outputs


# -- the auditor ---------------------------------------------------------------------


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().to("cpu", torch.float64).reshape(-1) for t in tensors])


def _finite(state: State) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in (*state[0], *state[1]))


def _pattern(t: torch.Tensor) -> torch.Tensor:
    """0 finite, 1 NaN, 2 +inf, 3 -inf: a diverged run must diverge the same way."""
    code = torch.zeros(t.shape, dtype=torch.int8)
    code[torch.isnan(t)] = 1
    code[torch.isposinf(t)] = 2
    code[torch.isneginf(t)] = 3
    return code


def _rel(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    """||a - b|| / ||scale|| over the finite entries; inf if a and b are non-finite in
    different places (or ways). 0 when a == b, even if the scale is 0."""
    if not torch.equal(_pattern(a), _pattern(b)):
        return math.inf
    both = torch.isfinite(a) & torch.isfinite(b)
    num = float(torch.linalg.vector_norm(a[both] - b[both]))
    if num == 0.0:
        return 0.0
    sc = scale[torch.isfinite(scale)]
    den = float(torch.linalg.vector_norm(sc))
    return num / den if den > 0 and math.isfinite(num) else math.inf


def init_distance(claimed: State, expected: State) -> float:
    c = _flat([*claimed[0], *claimed[1]])
    e = _flat([*expected[0], *expected[1]])
    return _rel(c, e, e)


def replay_distance(start: State, replay: State, claimed: State) -> float:
    parts = []
    for group in (0, 1):
        s, r, c = _flat(start[group]), _flat(replay[group]), _flat(claimed[group])
        parts.append(_rel(r, c, r - s))
    return max(parts)


def metric_distance(claimed: np.ndarray, recomputed: np.ndarray) -> float:
    """max |claimed - recomputed| / max(1, |recomputed|): absolute for the usual losses and
    accuracies (below 1), relative for the huge losses of a diverging run."""
    c = torch.from_numpy(np.asarray(claimed, dtype=np.float64))
    r = torch.from_numpy(np.asarray(recomputed, dtype=np.float64))
    if not torch.equal(_pattern(c), _pattern(r)):
        return math.inf
    ok = torch.isfinite(r)
    if not bool(ok.any()):
        return 0.0
    diff = (c[ok] - r[ok]).abs() / r[ok].abs().clamp(min=1.0)
    return float(diff.max())


@dataclass(frozen=True)
class Measured:
    """Every figure of one item's audit, for tests and calibration."""

    init: float
    segments: tuple[int, ...]  # the segments replayed
    replay: float  # the largest of their replay distances
    metric: float


def measure_item(
    spec: JobSpec, index: int, blob: bytes, output: bytes, runtime: TrainRuntime, rng: random.Random
) -> Measured:
    """Audit one item; raise ValueError (with the reason) on any structural failure.

    Replays the segment ``rng`` picks and, if the run diverged (a checkpoint holds NaN or
    inf), also the segment where it first did: otherwise a worker could claim NaN from
    checkpoint 1 on and have every later segment replay "honestly" for free."""
    cfg = parse_input(spec, blob)
    hashes, claimed_metrics = decode_output(spec, output)
    marks = checkpoint_steps(spec)
    states = []
    for k, (h, step) in enumerate(zip(hashes, marks, strict=True)):
        if not runtime.store.has(h):
            raise ValueError(f"checkpoint {k} (step {step}) {h.hex()[:16]} missing from the store")
        try:
            data = runtime.store.get(h)  # verifies the hash
        except BlobError as exc:
            raise ValueError(f"checkpoint {k} (step {step}): {exc}") from None
        if sha256(data) != h:  # defence in depth for stores that do not verify
            raise ValueError(f"checkpoint {k} does not match its hash")
        states.append(decode_checkpoint(data, step, cfg.width, runtime.device))
    d_init = init_distance(states[0], initial_state(spec.seed, index, cfg.width, runtime.device))
    segments = {rng.randrange(len(marks) - 1)}
    diverged = next((k for k, st in enumerate(states) if not _finite(st)), None)
    if diverged is not None and diverged > 0:
        segments.add(diverged - 1)
    d_replay = 0.0
    for k in sorted(segments):
        replay = run_steps(spec, index, cfg, runtime, states[k], marks[k], marks[k + 1])
        d_replay = max(d_replay, replay_distance(states[k], replay, states[k + 1]))
    d_metric = metric_distance(claimed_metrics, metrics(states[-1][0], runtime))
    return Measured(d_init, tuple(sorted(segments)), d_replay, d_metric)


def check_items(
    spec: JobSpec,
    indices: Sequence[int],
    inputs: Sequence[bytes],
    outputs: Sequence[bytes],
    runtime: TrainRuntime,
    tol: TrainTolerance,
    rng: random.Random | None = None,
) -> list[ItemCheck]:
    """Re-check the sampled items. ``rng`` (the auditor's, unknown to the worker) picks the
    replayed segment of each item; without one, the system's randomness is used.
    ``distance`` is the figure that failed, else the larger of the replay and init distances."""
    if rng is None:
        rng = random.SystemRandom()
    checks = []
    for index, blob, output in zip(indices, inputs, outputs, strict=True):
        unit = index // spec.unit_size
        try:
            m = measure_item(spec, index, blob, output, runtime, rng)
        except ValueError as exc:
            checks.append(ItemCheck(unit, index, False, math.inf, str(exc)))
            continue
        if m.init > tol.replay:
            reason = f"checkpoint 0 is not the seeded initialisation (distance {m.init:.3g} > {tol.replay:g})"
            checks.append(ItemCheck(unit, index, False, m.init, reason))
        elif m.replay > tol.replay:
            reason = f"replay of segment(s) {list(m.segments)} differs (distance {m.replay:.3g} > {tol.replay:g})"
            checks.append(ItemCheck(unit, index, False, m.replay, reason))
        elif m.metric > tol.metric:
            reason = (
                f"metrics differ from the final checkpoint's (by {m.metric:.3g} > {tol.metric:g})"
            )
            checks.append(ItemCheck(unit, index, False, m.metric, reason))
        else:
            checks.append(ItemCheck(unit, index, True, max(m.init, m.replay), ""))
    return checks
