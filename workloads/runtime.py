"""Deterministic torch settings for verified work (specs/tolerances.md).

Verified jobs run fp32 with every switch that trades exactness for speed turned off:
TF32 matmuls and convolutions (which silently round fp32 inputs to 10-bit mantissas on
Ampere and later), cuDNN autotuning (which picks kernels by timing, so two runs may differ)
and non-deterministic algorithms. ``CUBLAS_WORKSPACE_CONFIG`` must be set before CUDA
starts for cuBLAS to be deterministic, so ``workloads/__init__.py`` sets it (with hub
access switched off) before anything imports torch.
"""

from __future__ import annotations

import torch


def deterministic(device: str = "cpu", threads: int | None = None) -> torch.device:
    """Apply the verified-work settings and return the device to run on."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads is not None:
        torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    """A line naming the hardware, for provenance and calibration tables."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()} threads, torch {torch.__version__}"
