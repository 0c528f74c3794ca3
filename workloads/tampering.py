"""Deliberate departures from honest work, for calibration and tamper tests only.

The honest path never calls anything here. Each function builds what a cheating (or
careless) worker would run instead of the job's model, so ``bench/calibrate.py`` can
measure how far its outputs land from honest ones, and the tamper tests can show the
audit catches them. ``workloads.train.Deviation`` plays the same role for training.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import torch


def tampered_copy(model: Any, how: str, layers: Any) -> Any:
    """A deep copy of ``model`` changed in one of the ways a worker might cheat:

    * ``another-model``: a cheaper model, the transformer's last layer removed;
    * ``layer-x1.001``: one middle layer's weights scaled by 1.001;
    * ``bf16``: the whole model in bfloat16 instead of float32.

    ``layers`` picks the ``nn.ModuleList`` of transformer layers out of a copy.
    """
    model = copy.deepcopy(model)
    stack = layers(model)
    if how == "another-model":
        del stack[len(stack) - 1]
    elif how == "layer-x1.001":
        with torch.no_grad():
            for p in stack[len(stack) // 2].parameters():
                p.mul_(1.001)
    elif how == "bf16":
        model = model.to(torch.bfloat16)
    else:
        raise ValueError(f"unknown tamper {how!r}")
    return model


MODEL_TAMPERS = ("another-model", "layer-x1.001", "bf16")


class FixedChoice(random.Random):
    """An auditor's randomness that always picks ``k`` (``randrange``): aims a training
    audit at one segment, so calibration and tests can measure every segment."""

    def __init__(self, k: int) -> None:
        super().__init__(0)
        self.k = k

    def randrange(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
        return self.k
