"""Exact integer matmul backends: the same integers from four kinds of hardware path.

``matmul(a, w)`` computes ``a @ w.T`` for activation codes ``a`` (int64, ``|a| <= 4095``)
and int8 weights ``w`` (``|w| <= 127``), depth ``K <= 2048``, so ``|result| < 2^30``.
Each backend is exact by a bound, never by a setting (specs/exact.md §5):

* ``int8`` — ``torch._int_mm``: int8 inputs, int32 accumulation, exact by construction.
  The codes are split ``a = 128 * hi + lo`` with ``hi`` in [-32, 31], ``lo`` in [0, 127]
  (both int8) and the two products recombined in int64. The hi and lo rows share one call;
  on CUDA, ``_int_mm`` needs more than 16 rows, so rows are padded with zeros.
* ``fp32`` — float32 GEMM on the same ``hi``/``lo`` split: every product and every partial
  sum is an integer below ``127 * 127 * 1040 < 2^24``, which float32 holds exactly, so K
  is cut into chunks of at most 1040 and the chunk results are added in int64.
* ``fp64`` — float64 GEMM on the codes themselves: partial sums below 2^30 < 2^53.
* ``int64`` — torch's integer matmul (no BLAS): the reference, slow.

A global setting that lowers float32 matmul precision (``torch.set_float32_matmul_precision``
other than "highest", TF32 on CUDA) could break the fp32 bound's premise, so the fp32
backend refuses to run under one rather than trusting it.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import Any

import torch

from workloads.exact.constants import BACKENDS

FP32_CHUNK = 1040  # 127 * 127 * 1040 = 16,774,160 < 2^24


def split_codes(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a = 128 * hi + lo`` with ``lo = a mod 128`` in [0, 127] and ``hi = floor(a/128)``."""
    return a >> 7, a & 127


class Backend(ABC):
    name: str

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @abstractmethod
    def prepare(self, weight: torch.Tensor) -> Any:
        """The weight (int8 [N, K]) in the form this backend multiplies."""

    @abstractmethod
    def matmul(self, a: torch.Tensor, prepared: Any) -> torch.Tensor:
        """``a`` int64 [M, K] times the prepared weight: int64 [M, N], exact."""


class Int8Backend(Backend):
    name = "int8"

    def prepare(self, weight: torch.Tensor) -> Any:
        return weight.to(self.device).t()  # [K, N] view of the [N, K] rows

    def matmul(self, a: torch.Tensor, prepared: Any) -> torch.Tensor:
        # hi and lo rows go through one GEMM: small-batch int8 GEMM is bound by reading the
        # weights, so twice the rows cost far less than twice the calls.
        m = a.shape[0]
        hi, lo = split_codes(a)
        # on CUDA, _int_mm needs more than 16 rows: pad with zero rows
        height = max(2 * m, 17) if self.device.type == "cuda" else 2 * m
        make = torch.zeros if height > 2 * m else torch.empty
        rows = make((height, a.shape[1]), dtype=torch.int8, device=a.device)
        rows[:m] = hi  # the casts to int8 are exact: hi in [-32, 31], lo in [0, 127]
        rows[m : 2 * m] = lo
        out = torch._int_mm(rows, prepared)
        # recombined in int32 (|128 * hi_acc + lo_acc| < 2^30), widened once
        result: torch.Tensor = (out[:m] * 128 + out[m : 2 * m]).to(torch.int64)
        return result


class Fp32Backend(Backend):
    name = "fp32"

    def prepare(self, weight: torch.Tensor) -> Any:
        k = weight.shape[1]
        chunks = -(-k // FP32_CHUNK)
        bounds = [k * i // chunks for i in range(chunks + 1)]
        w = weight.to(self.device, torch.float32).t().contiguous()
        return [(lo, hi, w[lo:hi]) for lo, hi in itertools.pairwise(bounds)]

    def matmul(self, a: torch.Tensor, prepared: Any) -> torch.Tensor:
        if torch.get_float32_matmul_precision() != "highest" or (
            self.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
        ):
            raise RuntimeError(
                "fp32 backend: float32 matmul precision is lowered (TF32/bf16); refusing"
            )
        hi, lo = split_codes(a)
        hi, lo = hi.to(torch.float32), lo.to(torch.float32)
        out = torch.zeros((a.shape[0], prepared[0][2].shape[1]), dtype=torch.int64, device=a.device)
        for start, end, w in prepared:
            out += (hi[:, start:end] @ w).to(torch.int64) * 128
            out += (lo[:, start:end] @ w).to(torch.int64)
        return out


class Fp64Backend(Backend):
    name = "fp64"

    def prepare(self, weight: torch.Tensor) -> Any:
        return weight.to(self.device, torch.float64).t().contiguous()

    def matmul(self, a: torch.Tensor, prepared: Any) -> torch.Tensor:
        result: torch.Tensor = (a.to(torch.float64) @ prepared).to(torch.int64)
        return result


class Int64Backend(Backend):
    name = "int64"

    def prepare(self, weight: torch.Tensor) -> Any:
        return weight.to(self.device, torch.int64).t().contiguous()

    def matmul(self, a: torch.Tensor, prepared: Any) -> torch.Tensor:
        result: torch.Tensor = a @ prepared
        return result


def make_backend(name: str, device: torch.device) -> Backend:
    classes: dict[str, type[Backend]] = {
        "int8": Int8Backend,
        "fp32": Fp32Backend,
        "fp64": Fp64Backend,
        "int64": Int64Backend,
    }
    if name not in classes:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if device.type == "cuda" and name == "int64":
        raise ValueError("the int64 backend runs on the CPU only")
    return classes[name](device)
