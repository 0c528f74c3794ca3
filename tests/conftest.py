"""Make the repository root importable, so test modules can share helpers as
``tests.chainbuilder`` however pytest is started (``pytest`` puts only the test
directories on ``sys.path``; ``python -m pytest`` adds the working directory too)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def exact_store(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One blob store for every exact-work test: models are derived into it once."""
    from workloads.store import BlobStore

    return BlobStore(tmp_path_factory.mktemp("exact-store"))


@pytest.fixture(scope="session")
def tiny_model(exact_store):  # type: ignore[no-untyped-def]
    from workloads.exact import load_exact_model

    return load_exact_model(exact_store, "tiny")
