"""Loading the models a job names, from the store only.

A job names its model by architecture and the sha256 of the weights file. The files come
from :func:`workloads.store.import_packaged_model` (hashes pinned, checked at import) and
the weights are hashed again at every load, so a file changed on disk after import is
refused rather than run. SmolLM2 ships as a Q4_1 GGUF file; transformers dequantises it to
fp32, which takes ~18 s on two cores, so the fp32 weights are cached next to it (a cache
keyed by the GGUF hash, rebuilt if missing; the GGUF file stays the model's identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as transformers_logging

from workloads.store import PACKAGED_MODELS, BlobError, BlobStore, sha256_file

transformers_logging.disable_progress_bar()
_verified: set[Path] = set()  # weights files hashed in this process


@dataclass
class Embedder:
    model: Any  # transformers BertModel, fp32, eval mode
    tokenizer: Any
    device: torch.device


@dataclass
class CausalLM:
    model: Any  # transformers LlamaForCausalLM, fp32, eval mode
    tokenizer: Any
    device: torch.device


def _model_files(store: BlobStore, arch: str, weights: bytes) -> tuple[Path, str]:
    packaged = PACKAGED_MODELS.get(arch)
    if packaged is None or packaged.weights_sha256 != weights.hex():
        raise BlobError(f"no model {arch} with weights {weights.hex()[:16]} is known")
    directory = store.model_dir(weights)
    path = directory / packaged.weights_file
    if not (directory / ".complete").is_file():
        raise BlobError(f"model {arch} {weights.hex()[:16]} is not imported into the store")
    if path not in _verified:
        if sha256_file(path) != weights:
            raise BlobError(f"model file {path} no longer matches its hash: import it again")
        _verified.add(path)
    return directory, packaged.weights_file


def load_embedder(store: BlobStore, weights: bytes, device: str = "cpu") -> Embedder:
    directory, _ = _model_files(store, "bert-minilm-l6-h384", weights)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory, dtype=torch.float32).eval()
    dev = torch.device(device)
    return Embedder(model.to(dev), tokenizer, dev)


def load_causal_lm(store: BlobStore, weights: bytes, device: str = "cpu") -> CausalLM:
    directory, gguf = _model_files(store, "llama-smollm2-135m", weights)
    cache = directory / "fp32"
    if not (cache / ".complete").is_file():
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf, dtype=torch.float32)
        # transformers refuses save_pretrained on a model loaded from GGUF; the tensors and
        # a config without the quantisation note are all a plain fp32 load needs.
        cache.mkdir(parents=True, exist_ok=True)
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(cache)
        save_model(model, str(cache / "model.safetensors"))
        tokenizer.save_pretrained(cache)
        (cache / ".complete").write_text(sha256_file(cache / "model.safetensors").hex())
    cached = cache / "model.safetensors"
    if cached not in _verified:
        if sha256_file(cached).hex() != (cache / ".complete").read_text().strip():
            raise BlobError(f"the fp32 cache {cache} is damaged: delete it to rebuild it")
        _verified.add(cached)
    tokenizer = AutoTokenizer.from_pretrained(cache)
    model = AutoModelForCausalLM.from_pretrained(cache, dtype=torch.float32).eval()
    dev = torch.device(device)
    return CausalLM(model.to(dev), tokenizer, dev)
