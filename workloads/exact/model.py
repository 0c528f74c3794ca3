"""The integer model artifact: what it holds, how it is serialised, and its hash.

An :class:`ExactModel` is everything exact inference needs, as integers: int8 weight
matrices with one integer multiplier per output row and one power-of-two exponent per
matrix, the RMSNorm gains as fixed-point integers, the lookup tables (exp, sigmoid, RoPE)
and the tokenizer. Its identity is the sha256 of its canonical serialisation
(:func:`serialise`), the "exact model hash" that chain params and job specs name.

The serialisation is canonical msgpack (``chain.encoding.pack``)::

    ["fc-exact-model", FORMAT_VERSION, config (JSON, sorted keys, no spaces),
     tokenizer.json bytes, [[name, dtype, shape, little-endian bytes], ...] sorted by name]

so two machines that derive the same integers derive the same bytes and the same hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from chain.encoding import pack, unpack_canonical
from chain.errors import DecodeError

MAGIC = "fc-exact-model"
FORMAT_VERSION = 1
MAX_ARTIFACT_BYTES = 512 << 20

# numpy dtype (little-endian) of each tensor kind in the artifact
DTYPES = {"i8": "<i1", "i32": "<i4", "i64": "<i8"}


class ArtifactError(Exception):
    """An artifact that is malformed, inconsistent, or not the one that was asked for."""


@dataclass(frozen=True)
class ExactConfig:
    """Shapes and constants of one integer model (specs/exact.md §1)."""

    name: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    rope_theta: int
    max_positions: int
    eos_token_id: int
    chat_system: str = ""  # system prompt of the chat template ("" = no chat template)

    def check(self) -> None:
        """The shape rules the arithmetic relies on (specs/exact.md §1)."""
        hd = self.head_dim
        rules = [
            (self.heads * hd == self.hidden, "heads * head_dim == hidden"),
            (self.heads % self.kv_heads == 0, "kv_heads divides heads"),
            (
                hd >= 4 and hd & (hd - 1) == 0 and (hd.bit_length() - 1) % 2 == 0,
                "head_dim is a power of 4 (sqrt(head_dim) is a power of two)",
            ),
            (
                all(
                    n % 8 == 0
                    for n in (self.hidden, self.intermediate, self.vocab, hd * self.kv_heads)
                ),
                "widths are multiples of 8 (int8 GEMM on CUDA)",
            ),
            (max(self.hidden, self.intermediate) <= 2048, "matmul depth K <= 2048"),
            (2 <= self.max_positions <= 2048, "2 <= max_positions <= 2048"),
            (0 <= self.eos_token_id < self.vocab, "eos_token_id in the vocabulary"),
        ]
        for ok, rule in rules:
            if not ok:
                raise ArtifactError(f"config {self.name}: violates {rule}")


@dataclass
class IntLinear:
    """``y_j = sum_k weight[j,k] * x_k * mult[j] * 2^-exp`` (specs/exact.md §3.2)."""

    weight: torch.Tensor  # int8 [out, in], values in [-127, 127]
    mult: torch.Tensor  # int64 [out], 1 <= mult <= 2^16
    exp: int  # the matrix's exponent E_W, 16 <= E_W <= 62


@dataclass
class ExactLayer:
    attn_norm: torch.Tensor  # int64 [hidden], RMSNorm gain * 2^16
    qkv: IntLinear  # rows: q (heads*hd), k (kv*hd), v (kv*hd)
    o: IntLinear
    mlp_norm: torch.Tensor
    gate_up: IntLinear  # rows: gate (intermediate), up (intermediate)
    down: IntLinear


@dataclass
class ExactTables:
    exp: torch.Tensor  # int64 [n], exp(-i/1024) * 2^20, last entry 0
    sigmoid: torch.Tensor  # int64 [32769]
    rope_cos: torch.Tensor  # int64 [max_positions, head_dim]
    rope_sin: torch.Tensor  # int64 [max_positions, head_dim]


@dataclass
class ExactModel:
    config: ExactConfig
    tokenizer_json: bytes
    embed: IntLinear  # [vocab, hidden]; also the output head (tied)
    layers: list[ExactLayer]
    final_norm: torch.Tensor
    tables: ExactTables
    sha256: bytes = field(default=b"")  # set by serialise / deserialise


# -- serialisation ------------------------------------------------------------------------


def _tensor_entries(model: ExactModel) -> dict[str, tuple[str, torch.Tensor]]:
    entries: dict[str, tuple[str, torch.Tensor]] = {}

    def linear(name: str, lin: IntLinear) -> None:
        entries[f"{name}.weight"] = ("i8", lin.weight)
        entries[f"{name}.mult"] = ("i32", lin.mult)
        entries[f"{name}.exp"] = ("i32", torch.tensor([lin.exp]))

    linear("embed", model.embed)
    for i, layer in enumerate(model.layers):
        p = f"layers.{i:02d}"
        entries[f"{p}.attn_norm"] = ("i32", layer.attn_norm)
        linear(f"{p}.qkv", layer.qkv)
        linear(f"{p}.o", layer.o)
        entries[f"{p}.mlp_norm"] = ("i32", layer.mlp_norm)
        linear(f"{p}.gate_up", layer.gate_up)
        linear(f"{p}.down", layer.down)
    entries["final_norm"] = ("i32", model.final_norm)
    entries["tables.exp"] = ("i32", model.tables.exp)
    entries["tables.sigmoid"] = ("i32", model.tables.sigmoid)
    entries["tables.rope_cos"] = ("i32", model.tables.rope_cos)
    entries["tables.rope_sin"] = ("i32", model.tables.rope_sin)
    return entries


def serialise(model: ExactModel) -> bytes:
    """The canonical bytes of ``model``; sets ``model.sha256``."""
    tensors = []
    for name, (dtype, tensor) in sorted(_tensor_entries(model).items()):
        array = tensor.detach().cpu().numpy()
        cast = array.astype(DTYPES[dtype])
        if not np.array_equal(cast.astype(np.int64), array.astype(np.int64)):
            raise ArtifactError(f"{name}: values do not fit {dtype}")
        tensors.append([name, dtype, list(array.shape), cast.tobytes()])
    config = json.dumps(asdict(model.config), sort_keys=True, separators=(",", ":"))
    data = pack([MAGIC, FORMAT_VERSION, config.encode(), model.tokenizer_json, tensors])
    model.sha256 = hashlib.sha256(data).digest()
    return data


def deserialise(data: bytes, expect_sha256: bytes | None = None) -> ExactModel:
    """Parse and check an artifact; refuses one whose hash is not ``expect_sha256``."""
    digest = hashlib.sha256(data).digest()
    if expect_sha256 is not None and digest != expect_sha256:
        raise ArtifactError(
            f"artifact hashes to {digest.hex()[:16]}, expected {expect_sha256.hex()[:16]}"
        )
    try:
        value = unpack_canonical(data, MAX_ARTIFACT_BYTES)
    except DecodeError as exc:
        raise ArtifactError(f"artifact is not canonical msgpack: {exc.detail}") from None
    if not (isinstance(value, list) and len(value) == 5 and value[0] == MAGIC):
        raise ArtifactError("not an exact model artifact")
    if value[1] != FORMAT_VERSION:
        raise ArtifactError(f"artifact format {value[1]}, this node reads {FORMAT_VERSION}")
    try:
        config = ExactConfig(**json.loads(value[2]))
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"artifact config: {exc}") from None
    config.check()
    tensors: dict[str, torch.Tensor] = {}
    for entry in value[4]:
        name, dtype, shape, raw = entry
        if dtype not in DTYPES:
            raise ArtifactError(f"{name}: unknown dtype {dtype}")
        array = np.frombuffer(raw, dtype=DTYPES[dtype])
        if array.size != int(np.prod(shape)):
            raise ArtifactError(f"{name}: {array.size} values for shape {shape}")
        target = torch.int8 if dtype == "i8" else torch.int64
        tensors[name] = torch.from_numpy(
            array.reshape(shape).astype(np.int8 if dtype == "i8" else np.int64)
        ).to(target)
    model = _assemble(config, bytes(value[3]), tensors)
    model.sha256 = digest
    return model


def _assemble(config: ExactConfig, tokenizer_json: bytes, t: dict[str, torch.Tensor]) -> ExactModel:
    def get(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if name not in t:
            raise ArtifactError(f"artifact lacks {name}")
        if tuple(t[name].shape) != shape:
            raise ArtifactError(f"{name}: shape {tuple(t[name].shape)}, expected {shape}")
        return t[name]

    def linear(name: str, rows: int, cols: int) -> IntLinear:
        weight = get(f"{name}.weight", (rows, cols))
        mult = get(f"{name}.mult", (rows,))
        exp = int(get(f"{name}.exp", (1,))[0])
        if int(weight.min()) < -127:
            raise ArtifactError(f"{name}: weight -128 (the range is [-127, 127])")
        if int(mult.min()) < 1 or int(mult.max()) > 1 << 16 or not 16 <= exp <= 62:
            raise ArtifactError(f"{name}: multiplier or exponent out of range")
        return IntLinear(weight, mult, exp)

    def gain(name: str) -> torch.Tensor:
        g = get(name, (c.hidden,))
        if int(g.abs().max()) >= 1 << 24:
            raise ArtifactError(f"{name}: gain of 2^24 or more")
        return g

    c = config
    hd, kv = c.head_dim, c.kv_heads * c.head_dim
    layers = [
        ExactLayer(
            attn_norm=gain(f"layers.{i:02d}.attn_norm"),
            qkv=linear(f"layers.{i:02d}.qkv", c.hidden + 2 * kv, c.hidden),
            o=linear(f"layers.{i:02d}.o", c.hidden, c.hidden),
            mlp_norm=gain(f"layers.{i:02d}.mlp_norm"),
            gate_up=linear(f"layers.{i:02d}.gate_up", 2 * c.intermediate, c.hidden),
            down=linear(f"layers.{i:02d}.down", c.hidden, c.intermediate),
        )
        for i in range(c.layers)
    ]
    exp = t.get("tables.exp")
    if exp is None or exp.dim() != 1 or int(exp[-1]) != 0:
        raise ArtifactError("tables.exp must end with a 0 entry")
    tables = ExactTables(
        exp=exp,
        sigmoid=get("tables.sigmoid", (32769,)),
        rope_cos=get("tables.rope_cos", (c.max_positions, hd)),
        rope_sin=get("tables.rope_sin", (c.max_positions, hd)),
    )
    return ExactModel(
        config=c,
        tokenizer_json=tokenizer_json,
        embed=linear("embed", c.vocab, c.hidden),
        layers=layers,
        final_norm=gain("final_norm"),
        tables=tables,
    )
