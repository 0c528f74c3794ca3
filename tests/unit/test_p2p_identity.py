"""The p2p identity key: made once with owner-only permissions, then reused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from libp2p.peer.id import ID

from node.p2p.identity import IdentityError, load_or_create_identity


def peer_id(path: Path) -> str:
    return ID.from_pubkey(load_or_create_identity(path).public_key).to_string()


def test_the_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "p2p.key"
    first = peer_id(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert peer_id(path) == first
    assert not list(path.parent.glob("*.tmp"))


def test_different_data_directories_get_different_identities(tmp_path: Path) -> None:
    assert peer_id(tmp_path / "a.key") != peer_id(tmp_path / "b.key")


def test_a_damaged_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p2p.key"
    path.write_bytes(b"short")
    with pytest.raises(IdentityError, match="holds 5 bytes, expected a 32-byte Ed25519 seed"):
        load_or_create_identity(path)
    assert path.read_bytes() == b"short"  # never overwritten
