"""The content-addressed store refuses what does not hash to its name."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from workloads.store import (
    PACKAGED_MODELS,
    BlobError,
    BlobStore,
    import_breast_cancer,
    import_packaged_model,
    load_breast_cancer_blob,
)


def test_put_get_and_damage(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put(b"tumour board notes")
    assert digest == hashlib.sha256(b"tumour board notes").digest()
    assert store.get(digest) == b"tumour board notes"
    store.path(digest).write_bytes(b"tumour board noteS")
    with pytest.raises(BlobError, match="damaged"):
        store.get(digest)
    with pytest.raises(BlobError, match="not in the store"):
        store.get(b"\x00" * 32)


def test_breast_cancer_data_imports_with_its_pinned_hash(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = import_breast_cancer(store)
    x, y = load_breast_cancer_blob(store.get(digest))
    assert x.shape == (569, 30) and x.dtype == np.float32
    assert y.shape == (569,) and set(np.unique(y)) == {0, 1}


def test_a_model_whose_files_differ_from_the_pins_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(tmp_path)
    model = PACKAGED_MODELS["bert-minilm-l6-h384"]
    forged = {model.arch: type(model)(**{**model.__dict__, "weights_sha256": "00" * 32})}
    monkeypatch.setattr("workloads.store.PACKAGED_MODELS", forged)
    with pytest.raises(BlobError, match="refusing another model"):
        import_packaged_model(store, model.arch)
    assert not store.model_dir(bytes(32)).exists()
