"""Calibrate the ``embed`` kind: honest noise against tampers, as relative errors.

A reference run (batch 32, all threads) of MiniLM-L6 over 48 texts of varied length is
compared, item by item, with ``||x - ref|| / ||ref||``:

* honest: 1 thread, batch sizes 1, 7 and 48 (other padding, other neighbours), a re-run,
  and the auditor's own one-by-one recomputation;
* tampers: another (cheaper) model, one layer's weights x1.001, bf16 instead of fp32, a
  prefix added to every text.

Each entry is ``(name, distance)``: the largest honest error, the smallest tamper error.
``python bench/calib_embed.py`` prints the JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from workloads import embed
from workloads.job import prepare_job
from workloads.models import Embedder
from workloads.runtime import deterministic
from workloads.store import BlobStore
from workloads.tampering import MODEL_TAMPERS, tampered_copy
from workloads.tolerances import EMBED

WORDS = [
    "tumour", "receptor", "biopsy", "screening", "mutation", "therapy", "recurrence",
    "staging", "marker", "survival", "lymph", "node", "dose", "trial", "cohort", "imaging",
]  # fmt: skip
MAX_TOKENS = 128


def texts(n: int) -> list[str]:
    return [
        " ".join(WORDS[(i * 3 + k * 5) % len(WORDS)] for k in range(4 + (i * 7) % 40))
        for i in range(n)
    ]


def vectors(runtime: Embedder, items: list[str], batch: int) -> np.ndarray:
    parts = [
        embed.embed_texts(items[s : s + batch], runtime, MAX_TOKENS)
        for s in range(0, len(items), batch)
    ]
    return np.concatenate(parts)


def relative(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - ref, axis=1) / np.linalg.norm(ref, axis=1)


def measure(device: str = "cpu") -> dict[str, Any]:
    deterministic(device)
    items = texts(48)
    with tempfile.TemporaryDirectory(prefix="fc-calib-embed-") as tmp:
        store = BlobStore(Path(tmp))
        spec, _ = prepare_job(
            store,
            {"kind": "embed", "inputs": items, "params": {"max_tokens": MAX_TOKENS}},
        )
        runtime = embed.load_runtime(store, spec, device)
        started = time.perf_counter()
        ref = vectors(runtime, items, 32)
        worker = (time.perf_counter() - started) / len(items)
        honest: dict[str, float] = {}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        honest["1 thread vs all"] = float(relative(vectors(runtime, items, 32), ref).max())
        torch.set_num_threads(threads)
        for batch in (1, 7, 48):
            honest[f"batch {batch} vs 32"] = float(
                relative(vectors(runtime, items, batch), ref).max()
            )
        honest["re-run"] = float(relative(vectors(runtime, items, 32), ref).max())
        started = time.perf_counter()
        one_by_one = vectors(runtime, items, 1)
        audit = (time.perf_counter() - started) / len(items)
        honest["auditor one by one"] = float(relative(one_by_one, ref).max())
        if device != "cpu":  # the worker on this GPU, the auditor on a CPU
            on_cpu = embed.load_runtime(store, spec, "cpu")
            honest[f"{device} vs cpu"] = float(relative(vectors(on_cpu, items, 32), ref).max())
        tampers: dict[str, float] = {}
        for how in MODEL_TAMPERS:
            model = tampered_copy(runtime.model, how, lambda m: m.encoder.layer)
            cheat = Embedder(model, runtime.tokenizer, runtime.device)
            tampers[how] = float(relative(vectors(cheat, items, 32), ref).min())
        prefixed = ["Note: " + t for t in items]
        tampers["text prefix"] = float(relative(vectors(runtime, prefixed, 32), ref).min())
    return {
        "setup": {"items": len(items), "max_tokens": MAX_TOKENS, "torch": torch.__version__},
        "honest": sorted(honest.items()),
        "tampers": sorted(tampers.items()),
        "tolerance": {"relative": EMBED.relative},
        "worker_per_item_seconds": worker,
        "audit_per_item_seconds": audit,
    }


if __name__ == "__main__":
    print(json.dumps(measure(*sys.argv[1:2]), indent=2))
