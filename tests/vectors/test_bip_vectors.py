"""The official BIP39, BIP32, BIP340 and BIP350 test vectors, run through our code.

The vectors live in ``tests/vectors/data/`` (see its README for sources and commits);
nothing here writes an expected value of its own. Each vector is its own test id.

* BIP39: ``wallet.keys`` mnemonics and seeds, and the ``mnemonic`` library we rely on.
* BIP32: ``wallet.keys.extended_keys`` (vectors 1-4) and ``Account.from_xpub``'s refusal
  of every invalid extended key (vector 5).
* BIP340: ``chain.schnorr`` sign / pubkey_of / verify.
* BIP350: ``wallet.address.parse_bech32m`` and ``parse_segwit``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from mnemonic import Mnemonic

from chain import schnorr
from chain.params import NETWORKS
from wallet import address, keys

DATA = Path(__file__).resolve().parent / "data"
MAINNET = NETWORKS["mainnet"]


def _json(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


# -- BIP39 --------------------------------------------------------------------------------------

BIP39 = _json("bip39.json")["english"]
BIP39_IDS = [f"bip39-{n}-{len(m.split())}w" for n, (_, m, _, _) in enumerate(BIP39)]


@pytest.mark.parametrize(("entropy", "phrase", "seed", "xprv"), BIP39, ids=BIP39_IDS)
def test_bip39(entropy: str, phrase: str, seed: str, xprv: str) -> None:
    # The library we rely on: entropy -> mnemonic, and back.
    english = Mnemonic("english")
    assert english.to_mnemonic(bytes.fromhex(entropy)) == phrase
    assert bytes(english.to_entropy(phrase)).hex() == entropy
    # Our checks accept every vector mnemonic, unchanged (it is already canonical).
    assert keys.normalise_mnemonic(phrase) == phrase
    # Our seed, with the vectors' passphrase.
    assert keys.seed_from_mnemonic(phrase, "TREZOR").hex() == seed
    # The BIP32 root key of that seed.
    assert keys.extended_keys(bytes.fromhex(seed), "m", MAINNET)[1] == xprv


# -- BIP32 --------------------------------------------------------------------------------------

_BIP32 = _json("bip32.json")
BIP32_VALID = [
    pytest.param(
        vector["seed"],
        chain["chain"],
        chain["ext_pub"],
        chain["ext_prv"],
        id=f"v{vector['name'].rsplit(' ', 1)[1]}-{chain['chain']}",
    )
    for vector in _BIP32["valid"]
    for chain in vector["chains"]
]

# What embit (our BIP32 parser, pinned in pyproject) says for each vector-5 reason. It
# shows each key is refused while being *decoded*, for the reason the BIP names, and not
# by one of from_xpub's later rules (private key given, other network, wrong depth), which
# a well-formed key could also trip. For "invalid prvkey prefix 04/01" embit checks the
# 33-byte key field before it knows the key is private, so it words the fault as a
# public-key one; the malformed field is what the BIP means.
BIP32_INVALID_MESSAGE = {
    "pubkey version / prvkey mismatch": "Invalid version for public key",
    "prvkey version / pubkey mismatch": "Invalid version for private key",
    "invalid pubkey prefix 04": "Compressed pubkey should start with 0x02 or 0x03",
    "invalid prvkey prefix 04": "Compressed pubkey should start with 0x02 or 0x03",
    "invalid pubkey prefix 01": "Invalid public key",
    "invalid prvkey prefix 01": "Invalid public key",
    "zero depth with non-zero parent fingerprint": "zero depth with non-zero parent",
    "zero depth with non-zero index": "zero depth with non-zero index",
    "unknown extended key version": "Invalid version",
    "private key 0 not in 1..n-1": "Secret is not valid",
    "private key n not in 1..n-1": "Secret is not valid",
    "invalid pubkey 020000000000000000000000000000000000000000000000000000000000000007": (
        "Failed parsing public key"
    ),
    "invalid checksum": "Checksum mismatch",
}
BIP32_INVALID = [
    pytest.param(case["key"], case["reason"], id=f"v5-{n}-{case['reason'][:40]}")
    for n, case in enumerate(_BIP32["invalid"])
]


@pytest.mark.parametrize(("seed", "path", "xpub", "xprv"), BIP32_VALID)
def test_bip32_derivation(seed: str, path: str, xpub: str, xprv: str) -> None:
    assert keys.extended_keys(bytes.fromhex(seed), path, MAINNET) == (xpub, xprv)


@pytest.mark.parametrize(("seed", "path", "xpub", "xprv"), BIP32_VALID)
def test_bip32_valid_keys_through_from_xpub(seed: str, path: str, xpub: str, xprv: str) -> None:
    """The valid vector keys pass ``from_xpub`` or fail only on its own rules:
    we take public keys only, and only at account depth (3).

    This is the other half of vector 5. It shows those refusals come from decoding the
    key, not from the later rules."""
    with pytest.raises(keys.WalletKeyError, match="that is a private key"):
        keys.Account.from_xpub(xprv, MAINNET)
    depth = len(keys.parse_path(path))
    if depth == 3:
        assert keys.Account.from_xpub(xpub, MAINNET).account_xpub() == xpub
    else:
        with pytest.raises(keys.WalletKeyError, match=f"this one has depth {depth}"):
            keys.Account.from_xpub(xpub, MAINNET)


@pytest.mark.parametrize(("key", "reason"), BIP32_INVALID)
def test_bip32_invalid_keys(key: str, reason: str) -> None:
    # from_xpub refuses private keys as well; so each xprv case must fail while being
    # decoded ("not an extended public key: ..."), not with "that is a private key".
    with pytest.raises(keys.WalletKeyError) as refused:
        keys.Account.from_xpub(key, MAINNET)
    message = str(refused.value)
    assert message.startswith("not an extended public key: "), message
    assert BIP32_INVALID_MESSAGE[reason] in message, (reason, message)


def test_bip32_vector_counts() -> None:
    assert [len(v["chains"]) for v in _BIP32["valid"]] == [6, 6, 2, 3]
    assert len(_BIP32["invalid"]) == 16
    assert set(BIP32_INVALID_MESSAGE) == {case["reason"] for case in _BIP32["invalid"]}


# -- BIP340 -------------------------------------------------------------------------------------

with (DATA / "bip340.csv").open(newline="", encoding="utf-8") as _f:
    BIP340 = list(csv.DictReader(_f))
BIP340_IDS = [f"bip340-{row['index']}" for row in BIP340]


@pytest.mark.parametrize("row", BIP340, ids=BIP340_IDS)
def test_bip340_verify(row: dict[str, str]) -> None:
    # chain.schnorr.verify passes the message with its length to libsecp256k1, so any
    # message length is verified as BIP340 defines it.
    expected = {"TRUE": True, "FALSE": False}[row["verification result"]]
    got = schnorr.verify(
        bytes.fromhex(row["public key"]),
        bytes.fromhex(row["signature"]),
        bytes.fromhex(row["message"]),
    )
    assert got is expected, row["comment"]


BIP340_SIGNING = [row for row in BIP340 if row["secret key"]]


@pytest.mark.parametrize(
    "row", BIP340_SIGNING, ids=[f"bip340-{row['index']}" for row in BIP340_SIGNING]
)
def test_bip340_sign(row: dict[str, str]) -> None:
    secret = bytes.fromhex(row["secret key"])
    assert schnorr.pubkey_of(secret).hex().upper() == row["public key"]
    message = bytes.fromhex(row["message"])
    if len(message) != 32:
        # The 2022-12 rows sign 0-, 1-, 17- and 100-byte messages. chain.schnorr.sign
        # signs 32-byte messages only (coincurve's sign_schnorr raises ValueError for
        # any other length), and consensus only ever signs 32-byte sighashes. So we can't
        # test this signature here. Its verification is still checked in
        # test_bip340_verify.
        pytest.skip(f"chain.schnorr.sign takes 32-byte messages; this one is {len(message)}")
    signature = schnorr.sign(secret, message, bytes.fromhex(row["aux_rand"]))
    assert signature.hex().upper() == row["signature"]


def test_bip340_vector_count() -> None:
    # Rows 0-14: the stored bitcoin/bips version (see data/README.md for rows 15-18).
    assert [int(row["index"]) for row in BIP340] == list(range(len(BIP340)))
    assert len(BIP340) >= 15


# -- BIP350 -------------------------------------------------------------------------------------

_BIP350 = _json("bip350.json")


def _hrp_of(text: str) -> str:
    return text[: text.rfind("1")].lower()


@pytest.mark.parametrize("text", _BIP350["valid_bech32m"], ids=[f"b32m-ok-{n}" for n in range(7)])
def test_bech32m_valid(text: str) -> None:
    hrp, data = address.parse_bech32m(text)
    assert hrp == _hrp_of(text)
    assert len(data) == len(text) - len(hrp) - 1 - 6  # every data character, no checksum


# The message our parser gives for each reason BIP350 names: each string is refused for
# the BIP's reason, not for some other one.
BECH32M_INVALID_MESSAGE = {
    "HRP character out of range": "outside printable ASCII",
    "overall max length exceeded": "at most 90",
    "No separator character": "no prefix before the separator",
    "Empty HRP": "no prefix before the separator",
    "empty HRP": "no prefix before the separator",
    "Invalid data character": "outside the bech32 alphabet",
    "Too short checksum": "too short to hold a checksum",
    "Invalid character in checksum": "outside the bech32 alphabet",
    "checksum calculated with uppercase form of HRP": "checksum is wrong",
}


@pytest.mark.parametrize(
    ("text", "reason"),
    [(c["string"], c["reason"]) for c in _BIP350["invalid_bech32m"]],
    ids=[f"b32m-bad-{n}-{c['reason'][:30]}" for n, c in enumerate(_BIP350["invalid_bech32m"])],
)
def test_bech32m_invalid(text: str, reason: str) -> None:
    with pytest.raises(address.AddressError, match=BECH32M_INVALID_MESSAGE[reason]):
        address.parse_bech32m(text)


def _script_pubkey(version: int, program: bytes) -> str:
    """BIP141's scriptPubKey: OP_0 or OP_1..OP_16 (0x51..0x60), then a push of the program."""
    opcode = 0 if version == 0 else 0x50 + version
    return (bytes([opcode, len(program)]) + program).hex()


@pytest.mark.parametrize(
    ("text", "script"),
    [(c["address"], c["scriptPubKey"]) for c in _BIP350["valid_segwit_addresses"]],
    ids=[f"segwit-ok-{c['address'][:14]}" for c in _BIP350["valid_segwit_addresses"]],
)
def test_segwit_valid(text: str, script: str) -> None:
    parsed = address.parse_segwit(text)
    assert parsed.hrp == _hrp_of(text)
    assert _script_pubkey(parsed.version, parsed.program) == script
    if parsed.version == 0:
        # Version 0 keeps BIP173's bech32 checksum. parse_segwit accepts it (above);
        # parse_bech32m, which reads our own addresses (always version 1), refuses it
        # on purpose, and so does decode_address, before it looks at the prefix.
        with pytest.raises(address.AddressError, match="old bech32 checksum"):
            address.parse_bech32m(text)
        for params in NETWORKS.values():
            with pytest.raises(address.AddressError, match="old bech32 checksum"):
                address.decode_address(text, params)
    else:
        hrp, data = address.parse_bech32m(text)
        assert (hrp, data[0]) == (parsed.hrp, parsed.version)
        # Not ours: bc/tb are Bitcoin's prefixes; no Foundation Coin network takes them.
        for params in NETWORKS.values():
            with pytest.raises(address.AddressError, match="not a Foundation Coin address"):
                address.decode_address(text, params)


# How our parser words each reason BIP350 gives for an invalid segwit address.
SEGWIT_INVALID_MESSAGE = {
    "Invalid checksum (Bech32 instead of Bech32m)": "must use the bech32m checksum",
    "Invalid checksum (Bech32m instead of Bech32)": "must use the bech32 checksum",
    "Invalid character in checksum": "outside the bech32 alphabet",
    "Invalid witness version": "witness version 17 does not exist",
    "Invalid program length (1 byte)": "witness program is 1 bytes",
    "Invalid program length (41 bytes)": "witness program is 41 bytes",
    "Invalid program length for witness version 0 (per BIP141)": "version 0 program is 20 or 32",
    "Mixed case": "mixes upper and lower case",
    "zero padding of more than 4 bits": "invalid padding",
    "Non-zero padding in 8-to-5 conversion": "invalid padding",
    "Empty data section": "no data",
}


def _decode(expected_hrp: str, text: str) -> address.Segwit:
    """BIP350's ``decode(hrp, addr)``: parse_segwit, plus the prefix check it leaves to
    its caller (it reads any prefix; which prefixes are acceptable depends on the use)."""
    parsed = address.parse_segwit(text)
    if parsed.hrp != expected_hrp:
        raise address.AddressError(f"prefix {parsed.hrp!r}, expected {expected_hrp!r}")
    return parsed


@pytest.mark.parametrize(
    ("text", "reason"),
    [(c["address"], c["reason"]) for c in _BIP350["invalid_segwit_addresses"]],
    ids=[
        f"segwit-bad-{n}-{c['reason'][:30]}"
        for n, c in enumerate(_BIP350["invalid_segwit_addresses"])
    ],
)
def test_segwit_invalid(text: str, reason: str) -> None:
    if reason == "Invalid human-readable part":
        # parse_segwit reads any prefix, as its docstring says: "tc" is well-formed
        # bech32m, invalid only because the BIP's decoder is called with hrp "bc" or
        # "tb". So the BIP's check is the prefix comparison in _decode.
        assert address.parse_segwit(text).hrp == "tc"
        for hrp in ("bc", "tb"):
            with pytest.raises(address.AddressError, match="prefix 'tc'"):
                _decode(hrp, text)
        return
    with pytest.raises(address.AddressError, match=SEGWIT_INVALID_MESSAGE[reason]):
        address.parse_segwit(text)
    for hrp in ("bc", "tb"):
        with pytest.raises(address.AddressError):
            _decode(hrp, text)


def test_bip350_vector_counts() -> None:
    assert len(_BIP350["valid_bech32m"]) == 7
    assert len(_BIP350["invalid_bech32m"]) == 14
    assert len(_BIP350["valid_segwit_addresses"]) == 8
    assert len(_BIP350["invalid_segwit_addresses"]) == 15
