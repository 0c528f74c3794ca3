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
* **Strict reading.** After the checksum, every field is checked: its type (a bool is
  not a number), hex that is lower-case and of the right length, scrypt's n a power of two
  and n, r, p and their memory bounded (before scrypt ever runs), names known, no field
  missing or unknown. A file edited and re-checksummed is damaged like any other, and
  the message names the field.
* **Atomic writes.** A temporary file in the same directory, written, fsynced, renamed
  over the old one, then the directory fsynced: a crash leaves the old file or the new
  one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from chain.encoding import pack, unpack_canonical
from chain.params import NETWORKS

FORMAT = "fc-wallet/1"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 16, 8, 1
HEADER_FIELDS = ("format", "network", "kind", "xpub", "kdf", "cipher")
SALT_BYTES, NONCE_BYTES, TAG_BYTES, MAX_PLAINTEXT = 16, 12, 16, 4096
KDF_NAME, CIPHER_NAME = "scrypt", "aes-256-gcm"
# Bounds on what a file may ask of scrypt (its memory is 128 * n * r bytes; the default
# asks 64 MiB): anything beyond is damage, refused before scrypt is called.
MAX_SCRYPT_N, MAX_SCRYPT_R, MAX_SCRYPT_P = 1 << 20, 32, 16
MAX_SCRYPT_MEMORY = 256 << 20
MAX_INDEX = (1 << 31) - 1  # BIP32's last non-hardened index
MAX_XPUB_CHARS = 200
DAMAGED_TAIL = "(left as it is; restore from your mnemonic into another wallet name)"
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_XPUB = re.compile(r"[0-9A-Za-z]+")


class KeystoreError(Exception):
    """A wallet file that cannot be used; the message says which and why."""


class WrongPassphrase(KeystoreError):
    pass


class DamagedKeystore(KeystoreError):
    pass


class _Malformed(Exception):
    """One field of a keystore that is not what the format says: ``field``, ``problem``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field, self.problem = field, problem

    def damaged(self, path: Path) -> DamagedKeystore:
        return DamagedKeystore(
            f"{path} is damaged: field {self.field}: {self.problem} {DAMAGED_TAIL}"
        )


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
        key = _derive_key(passphrase, store.kdf, path)
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
        except (ValueError, KeyError, AttributeError, TypeError, RecursionError):
            raise DamagedKeystore(
                f"{path} is damaged: not a wallet file any more {DAMAGED_TAIL}"
            ) from None
        if _checksum(doc) != checksum:
            raise DamagedKeystore(f"{path} is damaged: its checksum does not match {DAMAGED_TAIL}")
        if doc.get("format") != FORMAT:
            raise KeystoreError(f"{path}: format {doc.get('format')!r}, expected {FORMAT}")
        try:
            _check_document(doc)
        except _Malformed as exc:
            raise exc.damaged(path) from None
        return cls(
            path,
            doc["network"],
            doc["kind"],
            doc["xpub"],
            doc.get("kdf", {}),
            doc.get("cipher", {}),
            doc.get("secret"),
            dict(doc["state"]),
        )

    @property
    def watch_only(self) -> bool:
        return self.kind == "watch-only"

    def unlock(self, passphrase: str) -> Secret:
        """Decrypt the secret; :class:`WrongPassphrase` if ``passphrase`` is not the one."""
        if self.watch_only or self.secret_hex is None:
            raise KeystoreError("a watch-only wallet holds no keys")
        try:  # a keystore built in memory gets the checks a file gets
            _check_cipher(self.cipher)
            _check_secret(self.secret_hex)
        except _Malformed as exc:
            raise exc.damaged(self.path) from None
        key = _derive_key(passphrase, self.kdf, self.path)
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


def _derive_key(passphrase: str, kdf: dict[str, Any], path: Path) -> bytes:
    try:
        _check_kdf(kdf)  # bounded before scrypt is asked for anything
    except _Malformed as exc:
        raise exc.damaged(path) from None
    return Scrypt(
        salt=bytes.fromhex(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]
    ).derive(passphrase.encode("utf-8"))


# -- strict reading -------------------------------------------------------------------------------
def _object(value: Any, field: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """``value`` is a JSON object with exactly ``keys`` (``field`` "" for the file itself)."""
    if not isinstance(value, dict):
        raise _Malformed(field, f"is a {type(value).__name__}, not an object")
    prefix = f"{field}." if field else ""
    for key in keys:
        if key not in value:
            raise _Malformed(prefix + key, "is missing")
    for key in value:
        if key not in keys:
            raise _Malformed(prefix + _name(key), "is not part of the format")
    return value


def _integer(value: Any, field: str, low: int, high: int) -> int:
    if type(value) is not int:  # bool is an int subclass and is refused too
        raise _Malformed(field, f"is a {type(value).__name__}, not an integer")
    if not low <= value <= high:
        raise _Malformed(field, f"is out of range ({low} to {high})")
    return value


def _hex(value: Any, field: str, low: int, high: int) -> bytes:
    """Lower-case hex, as written, of ``low`` to ``high`` bytes."""
    if not isinstance(value, str):
        raise _Malformed(field, f"is a {type(value).__name__}, not a hex string")
    if len(value) > 2 * high or not _HEX.fullmatch(value):
        raise _Malformed(
            field, "is not lower-case hex" if len(value) <= 2 * high else "is too long"
        )
    if not low <= len(value) // 2 <= high:
        size = f"{low} bytes" if low == high else f"{low} to {high} bytes"
        raise _Malformed(field, f"is {len(value) // 2} bytes, expected {size}")
    return bytes.fromhex(value)


def _known(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise _Malformed(field, f"is a {type(value).__name__}, not a string")
    if value not in allowed:
        raise _Malformed(field, f"{value[:40]!r} is not one of {', '.join(allowed)}")
    return value


def _name(text: str) -> str:
    """A name from the file, cut short for a one-line message."""
    return text if len(text) <= 40 and text.isprintable() else repr(text[:40])


def _check_kdf(kdf: Any) -> None:
    _object(kdf, "kdf", ("name", "n", "r", "p", "salt"))
    _known(kdf["name"], "kdf.name", (KDF_NAME,))
    n = _integer(kdf["n"], "kdf.n", 2, MAX_SCRYPT_N)
    if n & (n - 1):
        raise _Malformed("kdf.n", "is not a power of two")
    r = _integer(kdf["r"], "kdf.r", 1, MAX_SCRYPT_R)
    _integer(kdf["p"], "kdf.p", 1, MAX_SCRYPT_P)
    if 128 * n * r > MAX_SCRYPT_MEMORY:
        raise _Malformed("kdf", f"n and r ask scrypt for more than {MAX_SCRYPT_MEMORY >> 20} MiB")
    _hex(kdf["salt"], "kdf.salt", SALT_BYTES, SALT_BYTES)


def _check_cipher(cipher: Any) -> None:
    _object(cipher, "cipher", ("name", "nonce"))
    _known(cipher["name"], "cipher.name", (CIPHER_NAME,))
    _hex(cipher["nonce"], "cipher.nonce", NONCE_BYTES, NONCE_BYTES)


def _check_secret(secret: Any) -> None:
    _hex(secret, "secret", TAG_BYTES + 1, TAG_BYTES + MAX_PLAINTEXT)


def _check_document(doc: dict[str, Any]) -> None:
    """Every field of a keystore (checksum and format already checked), or :class:`_Malformed`."""
    if "kind" not in doc:
        raise _Malformed("kind", "is missing")
    kind = _known(doc["kind"], "kind", ("seed", "watch-only"))
    header = ("format", "network", "kind", "xpub")
    encrypted = ("kdf", "cipher", "secret")
    keys = (*header, *encrypted, "state") if kind == "seed" else (*header, "state")
    if kind == "watch-only":
        for key in encrypted:
            if key in doc:
                raise _Malformed(key, "is present in a watch-only wallet")
    _object(doc, "", keys)
    _known(doc["network"], "network", tuple(NETWORKS))
    xpub = doc["xpub"]
    if not isinstance(xpub, str):
        raise _Malformed("xpub", f"is a {type(xpub).__name__}, not a string")
    if not 0 < len(xpub) <= MAX_XPUB_CHARS or not _XPUB.fullmatch(xpub):
        raise _Malformed("xpub", "is not an extended key")
    if kind == "seed":
        _check_kdf(doc["kdf"])
        _check_cipher(doc["cipher"])
        _check_secret(doc["secret"])
    state = _object(doc["state"], "state", ("next_receive", "next_change"))
    for key, value in state.items():
        _integer(value, f"state.{key}", 0, MAX_INDEX)
