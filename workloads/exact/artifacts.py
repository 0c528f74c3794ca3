"""The two canonical integer models, by name and pinned hash, derived into the store.

``load_exact_model(store, "tiny" | "smollm2")`` returns the model whose artifact hashes to
the pinned value, deriving it on first use (``convert``) and keeping the artifact as a blob
in the content-addressed store (its blob id *is* the model hash). A derivation that gives
any other hash is refused: the node would otherwise compute draws that no other node
accepts. Both models use SmolLM2's tokenizer, read from the packaged GGUF file.
"""

from __future__ import annotations

import os

from workloads.exact.constants import MODEL_NAMES
from workloads.exact.model import ArtifactError, ExactModel, deserialise, serialise
from workloads.store import BlobStore, import_packaged_model

SMOLLM2_ARCH = "llama-smollm2-135m"
TINY_SEED = b"fc/tiny-exact/v1"

# sha256 of each canonical artifact (specs/exact.md §6)
PINNED: dict[str, str] = {
    "smollm2": "457ef79c27b3af30c922483cf9cbe359fbea2981aed9049897bb542e73962063",
    "tiny": "3f67501cda6b8a7db8e696a0e5750d76da3cd7c95cc74c143cc18f837a2badc2",
}

_loaded: dict[bytes, ExactModel] = {}


def model_hash(name: str) -> bytes:
    if name not in PINNED:
        raise ArtifactError(f"unknown exact model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return bytes.fromhex(PINNED[name])


def smollm2_tokenizer_json(store: BlobStore) -> bytes:
    """SmolLM2's tokenizer as compact JSON, converted from the packaged GGUF file."""
    from transformers import AutoTokenizer

    weights = import_packaged_model(store, SMOLLM2_ARCH)
    directory = store.model_dir(weights)
    gguf = next(p.name for p in directory.iterdir() if p.suffix == ".gguf")
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
    return tokenizer.backend_tokenizer.to_str().encode()  # type: ignore[no-any-return,unused-ignore]


def derive(store: BlobStore, name: str) -> ExactModel:
    """Build the named model from its sources (no store lookup, no hash check)."""
    from workloads.exact.convert import convert_smollm2, synthetic_model

    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws a bar
    tokenizer = smollm2_tokenizer_json(store)
    if name == "tiny":
        return synthetic_model(TINY_SEED, tokenizer)
    if name == "smollm2":
        from safetensors.numpy import load_file

        from workloads.models import load_causal_lm

        weights = import_packaged_model(store, SMOLLM2_ARCH)
        load_causal_lm(store, weights)  # checks the GGUF hash and builds the fp32 cache
        state = load_file(str(store.model_dir(weights) / "fp32" / "model.safetensors"))
        return convert_smollm2(state, tokenizer)
    raise ArtifactError(f"unknown exact model {name!r}")


def load_exact_model(store: BlobStore, name: str) -> ExactModel:
    """The pinned model ``name``, from the store or derived into it."""
    digest = model_hash(name)
    if digest in _loaded:
        return _loaded[digest]
    if store.has(digest):
        model = deserialise(store.get(digest), digest)
    else:
        model = derive(store, name)
        data = serialise(model)
        if model.sha256 != digest:
            raise ArtifactError(
                f"deriving {name} gave artifact {model.sha256.hex()[:16]}, the protocol pins "
                f"{digest.hex()[:16]}: this machine's packages differ from the canonical ones"
            )
        store.put(data)
        model = deserialise(data, digest)  # run what a later start reads: the canonical bytes
    _loaded[digest] = model
    return model
