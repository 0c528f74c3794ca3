"""The keystore: one file per wallet, the seed encrypted, every write atomic.

File ``DATADIR/wallets/<name>.wallet``, mode 0600, JSON (specs/wallet.md §3)::

    {"format": "fc-wallet/1", "network": "regtest", "kind": "seed" | "watch-only",
     "xpub": "<account xpub/tpub>",
     "kdf": {"name": "scrypt", "n": 65536, "r": 8, "p": 1, "salt": "<16 bytes hex>"},
     "cipher": {"name": "aes-256-gcm", "nonce": "<12 bytes hex>"},
     "secret": "<ciphertext hex>",            # absent for watch-only wallets
     "state": {"next_receive": 0, "next_change": 0},
     "checksum": "<sha256 hex of the file's other fields>"}

* **Encryption.** The secret (``pack([mnemonic, bip39 passphrase, seed])``) is encrypted
  with AES-256-GCM under a key derived from the wallet passphrase by scrypt (N = 2^16,
  r = 8, p = 1: 64 MiB and ~0.2 s per try). The header (format, network, kind, xpub, kdf,
  cipher) is the GCM associated data, so a header edited on disk fails to decrypt. The
  account xpub is stored in the clear so balances and addresses need no passphrase, as in
  Electrum; whoever reads the file learns the addresses, never the keys.
* **Wrong passphrase vs damage.** The checksum over everything but itself tells them
  apart: a file whose checksum fails is *damaged* (reported, never replaced); a file whose
  checksum holds but whose ciphertext fails to authenticate was opened with the *wrong
  passphrase*. Either way nothing is written.
* **Atomic writes.** A temporary file in the same directory, written, fsynced, renamed
  over the old one, then the directory fsynced: a crash leaves the old file or the new
  one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from chain.encoding import pack, unpack_canonical

FORMAT = "fc-wallet/1"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 16, 8, 1
HEADER_FIELDS = ("format", "network", "kind", "xpub", "kdf", "cipher")


class KeystoreError(Exception):
    """A wallet file that cannot be used; the message says which and why."""


class WrongPassphrase(KeystoreError):
    pass


class DamagedKeystore(KeystoreError):
    pass


@dataclass
class Secret:
    mnemonic: str
    bip39_passphrase: str
    seed: bytes


@dataclass
class Keystore:
    path: Path
    network: str
    kind: str  # "seed" or "watch-only"
    xpub: str
    kdf: dict[str, Any] = field(default_factory=dict)
    cipher: dict[str, Any] = field(default_factory=dict)
    secret_hex: str | None = None
    state: dict[str, int] = field(default_factory=lambda: {"next_receive": 0, "next_change": 0})

    # -- creating --------------------------------------------------------------------------------
    @classmethod
    def create_seed(
        cls, path: Path, network: str, xpub: str, secret: Secret, passphrase: str
    ) -> Keystore:
        if not passphrase:
            raise KeystoreError("the wallet passphrase must not be empty")
        store = cls(path, network, "seed", xpub)
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        store.kdf = {
            "name": "scrypt",
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": salt.hex(),
        }
        store.cipher = {"name": "aes-256-gcm", "nonce": nonce.hex()}
        plaintext = pack([secret.mnemonic, secret.bip39_passphrase, secret.seed])
        key = _derive_key(passphrase, store.kdf)
        store.secret_hex = AESGCM(key).encrypt(nonce, plaintext, store._aad()).hex()
        store._write(new=True)
        return store

    @classmethod
    def create_watch_only(cls, path: Path, network: str, xpub: str) -> Keystore:
        store = cls(path, network, "watch-only", xpub)
        store._write(new=True)
        return store

    # -- reading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> Keystore:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeystoreError(f"no wallet at {path} (create or restore one first)") from None
        try:
            doc = json.loads(raw)
            checksum = doc.pop("checksum")
        except (ValueError, KeyError, AttributeError, TypeError):
            raise DamagedKeystore(
                f"{path} is damaged: not a wallet file any more (left as it is; restore "
                "from your mnemonic into another wallet name)"
            ) from None
        if _checksum(doc) != checksum:
            raise DamagedKeystore(
                f"{path} is damaged: its checksum does not match (left as it is; restore "
                "from your mnemonic into another wallet name)"
            )
        if doc.get("format") != FORMAT:
            raise KeystoreError(f"{path}: format {doc.get('format')!r}, expected {FORMAT}")
        try:
            return cls(
                path,
                doc["network"],
                doc["kind"],
                doc["xpub"],
                doc.get("kdf", {}),
                doc.get("cipher", {}),
                doc.get("secret"),
                {k: int(v) for k, v in doc["state"].items()},
            )
        except (KeyError, TypeError, ValueError):
            raise DamagedKeystore(f"{path} is damaged: a field is missing or malformed") from None

    @property
    def watch_only(self) -> bool:
        return self.kind == "watch-only"

    def unlock(self, passphrase: str) -> Secret:
        """Decrypt the secret; :class:`WrongPassphrase` if ``passphrase`` is not the one."""
        if self.watch_only or self.secret_hex is None:
            raise KeystoreError("a watch-only wallet holds no keys")
        key = _derive_key(passphrase, self.kdf)
        try:
            plaintext = AESGCM(key).decrypt(
                bytes.fromhex(self.cipher["nonce"]), bytes.fromhex(self.secret_hex), self._aad()
            )
        except InvalidTag:
            raise WrongPassphrase("wrong passphrase for this wallet") from None
        mnemonic, bip39_passphrase, seed = unpack_canonical(plaintext, 4096)
        return Secret(mnemonic, bip39_passphrase, seed)

    # -- writing ------------------------------------------------------------------------------
    def save_state(self, **changes: int) -> None:
        """Record address indices (never moving them back) with an atomic rewrite."""
        for name, value in changes.items():
            self.state[name] = max(self.state.get(name, 0), value)
        self._write(new=False)

    def _doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "network": self.network,
            "kind": self.kind,
            "xpub": self.xpub,
        }
        if not self.watch_only:
            doc |= {"kdf": self.kdf, "cipher": self.cipher, "secret": self.secret_hex}
        doc["state"] = dict(self.state)
        return doc

    def _aad(self) -> bytes:
        header = {k: v for k, v in self._doc().items() if k in HEADER_FIELDS}
        return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()

    def _write(self, new: bool) -> None:
        doc = self._doc()
        doc["checksum"] = _checksum(doc)
        data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if new and self.path.exists():
            raise KeystoreError(f"a wallet already exists at {self.path}; choose another name")
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".wallet")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if new:
                os.link(tmp, self.path)  # fails if the name appeared meanwhile
                os.unlink(tmp)
            else:
                os.replace(tmp, self.path)
        except FileExistsError:
            Path(tmp).unlink(missing_ok=True)
            raise KeystoreError(f"a wallet already exists at {self.path}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _checksum(doc: dict[str, Any]) -> str:
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(body).hexdigest()


def _derive_key(passphrase: str, kdf: dict[str, Any]) -> bytes:
    if kdf.get("name") != "scrypt":
        raise KeystoreError(f"unknown key derivation {kdf.get('name')!r}")
    return Scrypt(
        salt=bytes.fromhex(kdf["salt"]),
        length=32,
        n=int(kdf["n"]),
        r=int(kdf["r"]),
        p=int(kdf["p"]),
    ).derive(passphrase.encode("utf-8"))
