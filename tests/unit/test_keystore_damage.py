"""A keystore edited on disk and re-checksummed is reported as damaged, naming the field.

Each case writes a good keystore through the wallet's own API, edits its JSON, recomputes
the checksum the way the keystore does (sha256 of the canonical JSON of every other field)
and expects the one-line "is damaged" error: never a traceback, never an scrypt run with
parameters from the file before they are bounded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli import cli
from wallet import keystore as ks
from wallet.keystore import DamagedKeystore, Keystore, Secret

SECRET = Secret("abandon " * 11 + "about", "", bytes(range(64)))
TAIL = "(left as it is; restore from your mnemonic into another wallet name)"

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ks, "SCRYPT_N", 1 << 10)  # the format records n; tests need not wait


def checksum(doc: dict[str, Any]) -> str:
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(body).hexdigest()


def rewrite(path: Path, edit: Edit) -> bytes:
    """Apply ``edit`` to the file's fields and store it with a matching checksum."""
    doc = json.loads(path.read_text())
    assert checksum({k: v for k, v in doc.items() if k != "checksum"}) == doc["checksum"]
    doc.pop("checksum")
    edit(doc)
    doc["checksum"] = checksum(doc)
    data = json.dumps(doc, indent=2, sort_keys=True).encode()
    path.write_bytes(data)
    return data


def seed_store(tmp_path: Path) -> Path:
    return Keystore.create_seed(tmp_path / "a.wallet", "regtest", "tpubX", SECRET, "pw").path


def watch_store(tmp_path: Path) -> Path:
    return Keystore.create_watch_only(tmp_path / "w.wallet", "regtest", "tpubX").path


def put(*keys: str, value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


def drop(*keys: str) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return edit


def both(*edits: Edit) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        for one in edits:
            one(doc)

    return edit


# (case id, edit, the field the message must name)
SEED_DAMAGE: list[tuple[str, Edit, str]] = [
    # salt
    ("salt-not-hex", put("kdf", "salt", value="zz" * 16), "kdf.salt"),
    ("salt-with-spaces", put("kdf", "salt", value="00 " * 15 + "00"), "kdf.salt"),
    ("salt-upper-case-hex", put("kdf", "salt", value="AB" * 16), "kdf.salt"),
    ("salt-odd-length", put("kdf", "salt", value="0" * 31), "kdf.salt"),
    ("salt-too-short", put("kdf", "salt", value="00" * 8), "kdf.salt"),
    ("salt-too-long", put("kdf", "salt", value="00" * 17), "kdf.salt"),
    ("salt-a-number", put("kdf", "salt", value=12345), "kdf.salt"),
    ("salt-missing", drop("kdf", "salt"), "kdf.salt"),
    # n
    ("n-not-power-of-two", put("kdf", "n", value=1000), "kdf.n"),
    ("n-one", put("kdf", "n", value=1), "kdf.n"),
    ("n-zero", put("kdf", "n", value=0), "kdf.n"),
    ("n-negative", put("kdf", "n", value=-1024), "kdf.n"),
    ("n-enormous", put("kdf", "n", value=1 << 40), "kdf.n"),
    ("n-a-string", put("kdf", "n", value="1024"), "kdf.n"),
    ("n-a-float", put("kdf", "n", value=1024.0), "kdf.n"),
    ("n-a-bool", put("kdf", "n", value=True), "kdf.n"),
    ("n-null", put("kdf", "n", value=None), "kdf.n"),
    ("n-missing", drop("kdf", "n"), "kdf.n"),
    # r and p
    ("r-zero", put("kdf", "r", value=0), "kdf.r"),
    ("r-huge", put("kdf", "r", value=1 << 30), "kdf.r"),
    ("r-a-bool", put("kdf", "r", value=True), "kdf.r"),
    ("r-a-string", put("kdf", "r", value="8"), "kdf.r"),
    ("p-zero", put("kdf", "p", value=0), "kdf.p"),
    ("p-huge", put("kdf", "p", value=1 << 30), "kdf.p"),
    ("p-a-bool", put("kdf", "p", value=False), "kdf.p"),
    ("p-a-list", put("kdf", "p", value=[1]), "kdf.p"),
    (
        "n-and-r-too-much-memory",
        both(put("kdf", "n", value=1 << 20), put("kdf", "r", value=32)),
        "kdf",
    ),
    # the kdf object itself
    ("kdf-a-list", put("kdf", value=[]), "kdf"),
    ("kdf-a-string", put("kdf", value="scrypt"), "kdf"),
    ("kdf-null", put("kdf", value=None), "kdf"),
    ("kdf-missing", drop("kdf"), "kdf"),
    ("kdf-unknown-name", put("kdf", "name", value="pbkdf2"), "kdf.name"),
    ("kdf-name-a-list", put("kdf", "name", value=["scrypt"]), "kdf.name"),
    ("kdf-extra-field", put("kdf", "dklen", value=32), "kdf.dklen"),
    # cipher
    ("cipher-a-list", put("cipher", value=["aes-256-gcm"]), "cipher"),
    ("cipher-missing", drop("cipher"), "cipher"),
    ("cipher-unknown-name", put("cipher", "name", value="aes-128-cbc"), "cipher.name"),
    ("cipher-name-missing", drop("cipher", "name"), "cipher.name"),
    ("nonce-not-hex", put("cipher", "nonce", value="xy" * 12), "cipher.nonce"),
    ("nonce-too-short", put("cipher", "nonce", value="00" * 8), "cipher.nonce"),
    ("nonce-too-long", put("cipher", "nonce", value="00" * 16), "cipher.nonce"),
    ("nonce-a-number", put("cipher", "nonce", value=7), "cipher.nonce"),
    ("nonce-missing", drop("cipher", "nonce"), "cipher.nonce"),
    ("cipher-extra-field", put("cipher", "iv", value="00" * 12), "cipher.iv"),
    # secret (the ciphertext)
    ("secret-not-hex", put("secret", value="not hex at all"), "secret"),
    ("secret-odd-length", put("secret", value="0" * 99), "secret"),
    ("secret-shorter-than-a-tag", put("secret", value="00" * 16), "secret"),
    ("secret-too-long", put("secret", value="00" * 5000), "secret"),
    ("secret-a-list", put("secret", value=["00"]), "secret"),
    ("secret-null", put("secret", value=None), "secret"),
    ("secret-missing", drop("secret"), "secret"),
    # state
    ("state-a-list", put("state", value=[0, 0]), "state"),
    ("state-a-string", put("state", value="0,0"), "state"),
    ("state-missing", drop("state"), "state"),
    ("state-index-a-string", put("state", "next_receive", value="5"), "state.next_receive"),
    ("state-index-a-float", put("state", "next_receive", value=5.5), "state.next_receive"),
    ("state-index-a-bool", put("state", "next_change", value=True), "state.next_change"),
    ("state-index-negative", put("state", "next_change", value=-1), "state.next_change"),
    ("state-index-huge", put("state", "next_receive", value=1 << 40), "state.next_receive"),
    ("state-index-missing", drop("state", "next_change"), "state.next_change"),
    ("state-extra-field", put("state", "next_other", value=0), "state.next_other"),
    # header
    ("network-unknown", put("network", value="devnet"), "network"),
    ("network-a-number", put("network", value=3), "network"),
    ("network-missing", drop("network"), "network"),
    ("kind-unknown", put("kind", value="hot"), "kind"),
    ("kind-a-list", put("kind", value=["seed"]), "kind"),
    ("kind-missing", drop("kind"), "kind"),
    ("xpub-empty", put("xpub", value=""), "xpub"),
    ("xpub-a-dict", put("xpub", value={"key": "tpubX"}), "xpub"),
    ("xpub-missing", drop("xpub"), "xpub"),
    ("extra-top-level-field", put("comment", value="hello"), "comment"),
    ("seed-relabelled-watch-only", put("kind", value="watch-only"), "kdf"),
]

WATCH_DAMAGE: list[tuple[str, Edit, str]] = [
    ("watch-only-with-kdf", put("kdf", value={"name": "scrypt"}), "kdf"),
    ("watch-only-with-secret", put("secret", value="00" * 32), "secret"),
    ("watch-only-relabelled-seed", put("kind", value="seed"), "kdf"),
    ("watch-only-state-a-list", put("state", value=[]), "state"),
]


def assert_damaged(path: Path, field: str) -> None:
    before = path.read_bytes()
    with pytest.raises(DamagedKeystore) as caught:
        Keystore.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is damaged: field {field}: "), message
    assert message.endswith(TAIL) and "\n" not in message, message
    assert path.read_bytes() == before  # reported, never rewritten


@pytest.mark.parametrize(
    ("edit", "field"), [c[1:] for c in SEED_DAMAGE], ids=[c[0] for c in SEED_DAMAGE]
)
def test_damaged_seed_keystore(tmp_path: Path, edit: Edit, field: str) -> None:
    path = seed_store(tmp_path)
    rewrite(path, edit)
    assert_damaged(path, field)


@pytest.mark.parametrize(
    ("edit", "field"), [c[1:] for c in WATCH_DAMAGE], ids=[c[0] for c in WATCH_DAMAGE]
)
def test_damaged_watch_only_keystore(tmp_path: Path, edit: Edit, field: str) -> None:
    path = watch_store(tmp_path)
    rewrite(path, edit)
    assert_damaged(path, field)


def test_good_keystores_still_load(tmp_path: Path) -> None:
    """The checks refuse only damage: untouched files, and a re-checksummed file whose
    content is still well formed, load and unlock as before."""
    path = seed_store(tmp_path)
    assert Keystore.load(path).unlock("pw") == SECRET
    rewrite(path, put("state", "next_receive", value=7))
    again = Keystore.load(path)
    assert again.state == {"next_receive": 7, "next_change": 0}
    assert again.unlock("pw") == SECRET
    watch = Keystore.load(watch_store(tmp_path))
    assert watch.watch_only and watch.kdf == {} and watch.secret_hex is None


def test_scrypt_parameters_are_bounded_before_scrypt_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keystore built in memory (not read from disk) with crafted parameters is refused
    before scrypt is asked for anything."""
    calls: list[dict[str, Any]] = []

    class Spy:
        def __init__(self, **kwargs: Any) -> None:
            calls.append(kwargs)
            raise AssertionError("scrypt called with unchecked parameters")

    path = seed_store(tmp_path)
    store = Keystore.load(path)
    monkeypatch.setattr(ks, "Scrypt", Spy)
    for name, value in (("n", 1 << 40), ("r", 1 << 30), ("p", 1 << 30), ("n", 3)):
        crafted = Keystore.load(path)
        crafted.kdf = dict(store.kdf, **{name: value})
        with pytest.raises(DamagedKeystore, match=f"field kdf.{name}: "):
            crafted.unlock("pw")
    assert calls == []


CLI_CASES: list[tuple[str, Edit, str]] = [
    ("salt-not-hex", put("kdf", "salt", value="zz" * 16), "kdf.salt"),
    ("state-a-list", put("state", value=[]), "state"),
    ("n-not-power-of-two", put("kdf", "n", value=1000), "kdf.n"),
]


@pytest.mark.parametrize(
    ("edit", "field"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_fc_reports_one_line_and_exits_1(tmp_path: Path, edit: Edit, field: str) -> None:
    """``fc`` turns the damage into its one stderr line and exit status 1."""
    (tmp_path / "pass").write_text("pw\n")
    common = [
        "--network", "regtest", "--datadir", str(tmp_path / "data"),
        "--rpc-url", "http://127.0.0.1:9", "--rpc-token", "t", "--json", "wallet",
    ]  # fmt: skip
    created = CliRunner().invoke(
        cli, [*common, "create", "--passphrase-file", str(tmp_path / "pass")]
    )
    assert created.exit_code == 0, (created.output, created.exception)
    path = tmp_path / "data" / "wallets" / "default.wallet"
    rewrite(path, edit)
    before = path.read_bytes()

    result = CliRunner().invoke(
        cli,
        [*common, "xpub", "--path", "m/86h/1h/0h", "--passphrase-file", str(tmp_path / "pass")],
    )
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stdout == ""
    assert result.stderr.startswith(f"fc: error: {path} is damaged: field {field}: ")
    assert result.stderr.count("\n") == 1 and result.stderr.endswith(TAIL + "\n")
    assert path.read_bytes() == before
