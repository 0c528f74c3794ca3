"""The keystore: encrypted seed, wrong passphrase vs damage, atomic private writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wallet import keystore as ks
from wallet.keystore import DamagedKeystore, Keystore, KeystoreError, Secret, WrongPassphrase

SECRET = Secret("abandon " * 11 + "about", "", bytes(range(64)))


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ks, "SCRYPT_N", 1 << 10)  # the format records n; tests need not wait


def make(tmp_path: Path) -> Keystore:
    return Keystore.create_seed(tmp_path / "w" / "a.wallet", "regtest", "tpubX", SECRET, "pw")


def test_round_trip_and_private_file(tmp_path: Path) -> None:
    store = make(tmp_path)
    assert store.path.stat().st_mode & 0o777 == 0o600
    text = store.path.read_text()
    assert "abandon" not in text and bytes(range(64)).hex() not in text  # only ciphertext
    again = Keystore.load(store.path)
    assert again.unlock("pw") == SECRET
    assert again.kdf["n"] == 1 << 10 and again.kdf["name"] == "scrypt"


def test_wrong_passphrase_is_told_apart_from_damage(tmp_path: Path) -> None:
    store = make(tmp_path)
    before = store.path.read_bytes()
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        Keystore.load(store.path).unlock("pW")
    assert store.path.read_bytes() == before

    doc = json.loads(before)
    doc["secret"] = doc["secret"][:-2] + ("00" if doc["secret"][-2:] != "00" else "01")
    store.path.write_text(json.dumps(doc))  # the checksum no longer matches
    with pytest.raises(DamagedKeystore, match="checksum"):
        Keystore.load(store.path)
    store.path.write_bytes(before[: len(before) // 2])  # cut short
    with pytest.raises(DamagedKeystore, match="not a wallet file"):
        Keystore.load(store.path)


def test_an_edited_header_fails_to_decrypt(tmp_path: Path) -> None:
    """Someone who recomputes the checksum still cannot swap the xpub unnoticed: the
    header is the cipher's associated data."""
    store = make(tmp_path)
    doc = json.loads(store.path.read_text())
    doc.pop("checksum")
    doc["xpub"] = "tpubY"
    doc["checksum"] = ks._checksum(doc)
    store.path.write_text(json.dumps(doc))
    with pytest.raises(WrongPassphrase):
        Keystore.load(store.path).unlock("pw")


def test_state_updates_are_atomic_and_never_go_back(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.save_state(next_receive=5)
    store.save_state(next_receive=3, next_change=2)
    again = Keystore.load(store.path)
    assert again.state == {"next_receive": 5, "next_change": 2}
    assert again.unlock("pw") == SECRET
    leftovers = [p for p in os.listdir(store.path.parent) if p.startswith(".tmp-")]
    assert leftovers == []


def test_refusals(tmp_path: Path) -> None:
    make(tmp_path)
    with pytest.raises(KeystoreError, match="already exists"):
        make(tmp_path)
    with pytest.raises(KeystoreError, match="must not be empty"):
        Keystore.create_seed(tmp_path / "b.wallet", "regtest", "tpubX", SECRET, "")
    watch = Keystore.create_watch_only(tmp_path / "c.wallet", "regtest", "tpubX")
    with pytest.raises(KeystoreError, match="watch-only"):
        Keystore.load(watch.path).unlock("pw")
    with pytest.raises(KeystoreError, match="no wallet"):
        Keystore.load(tmp_path / "missing.wallet")
