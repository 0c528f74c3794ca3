"""Conformance vectors of exact work (specs/exact.md §7), recomputed from the code.

Each case fixes a model hash, a prompt, a seed, a temperature, a length and a stop rule;
the expected tokens and the sha256 of every logit row live in
``tests/vectors/data/exact_vectors.json``. An implementation that follows the spec
reproduces them bit for bit. Regenerate (only when the spec changes, with a note there):

    .venv/bin/python -m tests.vectors.test_exact_vectors --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from workloads.exact import ExactRunner, encode_prompt, generate, load_exact_model

DATA = Path(__file__).parent / "data" / "exact_vectors.json"

CASES: list[dict[str, Any]] = [
    {
        "model": "tiny",
        "prompt": "BRCA1 and BRCA2 are",
        "chat": False,
        "seed": "00",
        "temperature_milli": 0,
        "max_new": 16,
        "stop_at_eos": True,
    },
    {
        "model": "tiny",
        "prompt": "What is a tumour marker?",
        "chat": True,
        "seed": "a1" * 32,
        "temperature_milli": 700,
        "max_new": 24,
        "stop_at_eos": False,
    },
    {
        "model": "tiny",
        "prompt": "Metastasis",
        "chat": False,
        "seed": "ff" * 64,
        "temperature_milli": 65535,
        "max_new": 8,
        "stop_at_eos": False,
    },
    {
        "model": "smollm2",
        "prompt": "What does the BRCA1 gene do?",
        "chat": True,
        "seed": "00",
        "temperature_milli": 0,
        "max_new": 16,
        "stop_at_eos": True,
    },
    {
        "model": "smollm2",
        "prompt": "Immunotherapy for melanoma works by",
        "chat": False,
        "seed": "5eed" * 8,
        "temperature_milli": 800,
        "max_new": 16,
        "stop_at_eos": False,
    },
]


def compute(store: Any, case: dict[str, Any]) -> dict[str, Any]:
    model = load_exact_model(store, case["model"])
    prompt = encode_prompt(model, case["prompt"], chat=case["chat"])
    out = generate(
        ExactRunner(model, "int8"),
        [prompt],
        [bytes.fromhex(case["seed"])],
        case["max_new"],
        case["temperature_milli"],
        stop_at_eos=case["stop_at_eos"],
    )[0]
    return {
        **case,
        "model_sha256": model.sha256.hex(),
        "prompt_tokens": prompt,
        "tokens": out.tokens,
        "row_digests": [d.hex() for d in out.row_digests],
        "logits_digest": out.digest.hex(),
    }


def _expected() -> list[dict[str, Any]]:
    return json.loads(DATA.read_text())["cases"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "index",
    [
        pytest.param(
            i, marks=[pytest.mark.slow] if c["model"] == "smollm2" else [], id=f"{c['model']}-{i}"
        )
        for i, c in enumerate(CASES)
    ],
)
def test_exact_vector(exact_store, index: int) -> None:  # type: ignore[no-untyped-def]
    expected = _expected()[index]
    assert {k: expected[k] for k in CASES[index]} == CASES[index]
    assert compute(exact_store, CASES[index]) == expected


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    from workloads.store import BlobStore

    store = BlobStore(
        Path(sys.argv[sys.argv.index("--store") + 1])
        if "--store" in sys.argv
        else Path(tempfile.mkdtemp())
    )
    cases = [compute(store, c) for c in CASES]
    DATA.write_text(json.dumps({"spec": "specs/exact.md §7", "cases": cases}, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {DATA}")
