"""Keys: BIP39 mnemonics, BIP32 derivation on BIP86-style paths, x-only keys.

Nothing here is written by hand that a well-kept library does: mnemonics and their seeds
come from ``mnemonic`` (Trezor's BIP39 reference implementation), extended keys and their
derivation and serialisation from ``embit`` (the BIP32 code of the Specter wallet, on
libsecp256k1). This module fixes what those choices mean for Foundation Coin
(specs/wallet.md):

* **Paths.** ``m / 86' / coin' / account' / change / index``, BIP86's layout: external
  (receiving) addresses on ``change = 0``, change on ``change = 1``.
* **Coin type.** ``0x4643`` (17987, ASCII "FC") on mainnet; ``1`` on testnet and regtest,
  as SLIP-44 reserves for every test network. Not registered in SLIP-44.
* **Keys.** An output locks to the 32-byte x-only form of the derived public key, which
  is what BIP340 verifies. The key is used directly, without BIP86's taproot tweak: our
  outputs have no script tree that a tweak would commit to (specs/wallet.md §2).
* **Serialisation.** Extended keys use the standard BIP32 version bytes: ``xpub``/``xprv``
  on mainnet, ``tpub``/``tprv`` on testnet and regtest.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from embit import bip32, networks
from mnemonic import Mnemonic

from chain.params import ChainParams

COIN_TYPE_MAINNET = 0x4643
COIN_TYPE_TEST = 1
PURPOSE = 86
HARDENED = 0x80000000
GAP_LIMIT = 20
RECEIVE, CHANGE = 0, 1
WORD_COUNTS = (12, 15, 18, 21, 24)

_english = Mnemonic("english")


class WalletKeyError(ValueError):
    """A mnemonic, extended key or path that cannot be used; the message says why."""


# -- mnemonics ----------------------------------------------------------------------------------


def new_mnemonic(words: int = 24) -> str:
    """A fresh mnemonic from the operating system's randomness (24 words: 256 bits)."""
    if words not in WORD_COUNTS:
        raise WalletKeyError(
            f"a mnemonic has {', '.join(map(str, WORD_COUNTS))} words, not {words}"
        )
    return _english.generate(strength=words * 32 // 3)


def normalise_mnemonic(text: str) -> str:
    """Check a mnemonic typed by a person; return it in canonical form (NFKD, lower case,
    single spaces). Raises :class:`WalletKeyError` naming the problem: the word count, the first
    word not in the English list, or a checksum that does not match (a typo or a swap)."""
    words = unicodedata.normalize("NFKD", text).lower().split()
    if len(words) not in WORD_COUNTS:
        raise WalletKeyError(
            f"a mnemonic has {', '.join(map(str, WORD_COUNTS))} words; this one has {len(words)}"
        )
    wordlist = set(_english.wordlist)
    for n, word in enumerate(words, start=1):
        if word not in wordlist:
            raise WalletKeyError(f"word {n} ({word!r}) is not in the BIP39 English word list")
    phrase = " ".join(words)
    if not _english.check(phrase):
        raise WalletKeyError("the mnemonic's checksum does not match: a word is wrong or misplaced")
    return phrase


def seed_from_mnemonic(phrase: str, passphrase: str = "") -> bytes:
    """The 64-byte BIP39 seed (PBKDF2-HMAC-SHA512, 2048 rounds, salt "mnemonic" + passphrase)."""
    return Mnemonic.to_seed(normalise_mnemonic(phrase), passphrase)


# -- extended keys ------------------------------------------------------------------------------


def is_mainnet(params: ChainParams) -> bool:
    return params.name == "mainnet"


def coin_type(params: ChainParams) -> int:
    return COIN_TYPE_MAINNET if is_mainnet(params) else COIN_TYPE_TEST


def versions(params: ChainParams) -> dict[str, bytes]:
    """BIP32 version bytes: xpub/xprv on mainnet, tpub/tprv elsewhere."""
    table = networks.NETWORKS["main" if is_mainnet(params) else "test"]
    return {"xpub": table["xpub"], "xprv": table["xprv"]}


def account_path(params: ChainParams, account: int = 0) -> str:
    return f"m/{PURPOSE}h/{coin_type(params)}h/{account}h"


def parse_path(path: str) -> list[int]:
    """``m/86h/1h/0h/0/5`` (or with ``'``) to BIP32 indices; a clear error otherwise."""
    parts = path.strip().split("/")
    if not parts or parts[0] != "m":
        raise WalletKeyError(f"path {path!r} must start with m/")
    indices = []
    for part in parts[1:]:
        hardened = part.endswith(("h", "'", "H"))
        digits = part[:-1] if hardened else part
        if not digits.isdigit() or int(digits) >= HARDENED:
            raise WalletKeyError(
                f"path {path!r}: {part!r} is not an index below 2^31 (h for hardened)"
            )
        indices.append(int(digits) + (HARDENED if hardened else 0))
    return indices


def extended_keys(seed: bytes, path: str, params: ChainParams) -> tuple[str, str]:
    """``(xpub, xprv)`` at any ``path`` from a BIP32 seed (the BIP32 test vectors' form)."""
    node = bip32.HDKey.from_seed(seed, version=versions(params)["xprv"]).derive(parse_path(path))
    return node.to_public().to_string(version=versions(params)["xpub"]), node.to_string()


@dataclass
class Account:
    """One BIP86-style account: the account key (private or watch-only) and the network.

    ``root`` is kept for wallets made from a seed, so ``xpub`` can serialise other paths;
    a watch-only account has only the account-level public key.
    """

    params: ChainParams
    key: bip32.HDKey  # at m/86'/coin'/account'
    root: bip32.HDKey | None = None

    @classmethod
    def from_seed(cls, seed: bytes, params: ChainParams, account: int = 0) -> Account:
        root = bip32.HDKey.from_seed(seed, version=versions(params)["xprv"])
        return cls(params, root.derive(parse_path(account_path(params, account))), root)

    @classmethod
    def from_xpub(cls, text: str, params: ChainParams) -> Account:
        """A watch-only account from an account-level ``xpub``/``tpub``."""
        try:
            key = bip32.HDKey.from_string(text.strip())
        except Exception as exc:  # embit raises several types for bad input
            raise WalletKeyError(
                f"not an extended public key: {exc or type(exc).__name__}"
            ) from None
        if key.is_private:
            raise WalletKeyError("that is a private key (xprv/tprv): give the account's xpub")
        expected = versions(params)["xpub"]
        if key.version != expected:
            prefix = "xpub" if is_mainnet(params) else "tpub"
            raise WalletKeyError(
                f"{params.name} wallets take a {prefix}; this key is for another network"
            )
        if key.depth != 3:
            raise WalletKeyError(
                f"give the account-level key (depth 3, {account_path(params)}); this one has depth {key.depth}"
            )
        return cls(params, key, None)

    @property
    def watch_only(self) -> bool:
        return not self.key.is_private

    def account_xpub(self) -> str:
        public = self.key.to_public() if self.key.is_private else self.key
        return public.to_string(version=versions(self.params)["xpub"])

    def xpub(self, path: str | None = None) -> str:
        """The standard BIP32 serialisation of the public key at ``path`` (from the root;
        default: this account's key)."""
        if path is None:
            return self.account_xpub()
        if self.root is None:
            raise WalletKeyError("a watch-only wallet knows only its account key; omit --path")
        node = self.root.derive(parse_path(path))
        return node.to_public().to_string(version=versions(self.params)["xpub"])

    def pubkey(self, branch: int, index: int) -> bytes:
        """The 32-byte x-only key at ``account/branch/index``."""
        node = self.key.derive([branch, index])
        public = node.key.get_public_key() if node.is_private else node.key
        return bytes(public.sec())[1:]

    def secret(self, branch: int, index: int) -> bytes:
        if self.watch_only:
            raise WalletKeyError("a watch-only wallet cannot sign")
        node = self.key.derive([branch, index])
        return bytes(node.key.secret)
