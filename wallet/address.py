"""Addresses: a 32-byte x-only public key written as a bech32m string.

An output of ours locks to an x-only key, which is exactly what a taproot (segwit
version 1) output commits to. So an address is written the way BIP350 writes a taproot
address: bech32m, witness version 1, a 32-byte program, and the network's
human-readable prefix (``chain.params``: ``fc`` mainnet, ``tfc`` testnet, ``fcrt``
regtest)::

    fcrt1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq...

Standard segwit tooling therefore parses our addresses (and rejects a typo: the checksum
catches any four wrong characters), while the prefix keeps a testnet address from ever
being taken for a mainnet one.

The checksum arithmetic comes from the ``bech32m`` package (the BIP350 reference code,
packaged and pinned); this module adds what an address means here and says clearly
what is wrong with one that is not: unreadable characters or a bad checksum, the
legacy bech32 checksum, another network's prefix, another version, another length.
"""

from __future__ import annotations

from typing import NamedTuple

from bech32m import codecs  # type: ignore[import-untyped]

from chain.params import NETWORKS, ChainParams

ADDRESS_VERSION = 1  # segwit version 1: the program is an x-only key, as taproot's
PROGRAM_SIZE = 32
MAX_LENGTH = 90  # BIP173's limit on a whole bech32 string


class AddressError(ValueError):
    """A string that is not a valid address (for this network); the message says why."""


class Segwit(NamedTuple):
    """A parsed segwit address: prefix, witness version and program, as BIP350 defines."""

    hrp: str
    version: int
    program: bytes


def parse_bech32m(text: str) -> tuple[str, list[int]]:
    """The prefix and 5-bit data values of a bech32m string (checksum removed).

    Enforces everything BIP350 asks of the *string*: printable ASCII, one case, a
    separator with a non-empty prefix, a six-character checksum, at most 90 characters,
    data characters from the bech32 alphabet, and the bech32m checksum constant.
    """
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise AddressError("address contains a character outside printable ASCII")
    if text.lower() != text and text.upper() != text:
        raise AddressError("address mixes upper and lower case")
    if len(text) > MAX_LENGTH:
        raise AddressError(f"address is {len(text)} characters long; at most {MAX_LENGTH}")
    lowered = text.lower()
    separator = lowered.rfind("1")
    if separator < 1:
        raise AddressError("address has no prefix before the separator '1'")
    if separator + 7 > len(lowered):
        raise AddressError("address is too short to hold a checksum")
    if any(c not in codecs.CHARSET for c in lowered[separator + 1 :]):
        raise AddressError("address contains a character outside the bech32 alphabet")
    try:
        hrp, data, encoding = codecs.bech32_decode(text)
    except codecs.DecodeError:
        raise AddressError("address checksum is wrong (a typo?)") from None
    if encoding != codecs.Encoding.BECH32M:
        raise AddressError("address uses the old bech32 checksum; expected bech32m (BIP350)")
    return str(hrp), list(data)


def parse_segwit(text: str) -> Segwit:
    """Any BIP350 segwit address, whatever its prefix (the test vectors use bc and tb).

    Version 0 keeps BIP173's bech32 checksum and 20- or 32-byte programs; versions 1 to
    16 use bech32m and programs of 2 to 40 bytes.
    """
    try:
        hrp, data, encoding = codecs.bech32_decode(text)
    except codecs.DecodeError:
        # Not a valid bech32 or bech32m string: let the strict parser name the fault.
        parse_bech32m(text)
        raise AddressError("address is not a valid bech32m string") from None
    if not data:
        raise AddressError("address has no data (witness version missing)")
    version = data[0]
    if version > 16:
        raise AddressError(f"witness version {version} does not exist (0..16)")
    program = _program(list(data[1:]))
    if not 2 <= len(program) <= 40:
        raise AddressError(f"witness program is {len(program)} bytes; segwit allows 2..40")
    if version == 0:
        if len(program) not in (20, 32):
            raise AddressError("a version 0 program is 20 or 32 bytes (BIP141)")
        if encoding != codecs.Encoding.BECH32:
            raise AddressError("a version 0 address must use the bech32 checksum (BIP173)")
    elif encoding != codecs.Encoding.BECH32M:
        raise AddressError(f"a version {version} address must use the bech32m checksum (BIP350)")
    return Segwit(str(hrp), version, program)


def _program(values: list[int]) -> bytes:
    try:
        return bytes(codecs.convertbits(values, 5, 8, False))
    except codecs.DecodeError:
        raise AddressError("address has invalid padding in its data") from None


def encode_address(pubkey: bytes, params: ChainParams) -> str:
    """The address of the x-only key ``pubkey`` on ``params``'s network."""
    if len(pubkey) != PROGRAM_SIZE:
        raise AddressError(f"a key is {PROGRAM_SIZE} bytes, got {len(pubkey)}")
    data = bytes([ADDRESS_VERSION]) + bytes(codecs.convertbits(pubkey, 8, 5))
    return str(codecs.bech32_encode(params.hrp, data, codecs.Encoding.BECH32M))


def network_of_hrp(hrp: str) -> str | None:
    for params in NETWORKS.values():
        if params.hrp == hrp:
            return params.name
    return None


def decode_address(text: str, params: ChainParams) -> bytes:
    """The 32-byte x-only key that ``text`` pays on ``params``'s network.

    Raises :class:`AddressError` with one clear sentence on anything else.
    """
    text = text.strip()
    if not text:
        raise AddressError("address is empty")
    hrp, data = parse_bech32m(text)
    if hrp != params.hrp:
        other = network_of_hrp(hrp)
        where = f"a {other} address" if other else f"not a Foundation Coin address (prefix {hrp!r})"
        raise AddressError(
            f"{text[:12]}… is {where}; this node runs {params.name} (prefix {params.hrp!r})"
        )
    if not data:
        raise AddressError("address has no data (witness version missing)")
    if data[0] != ADDRESS_VERSION:
        raise AddressError(f"address version is {data[0]}; Foundation Coin uses version 1")
    program = _program(data[1:])
    if len(program) != PROGRAM_SIZE:
        raise AddressError(f"address holds {len(program)} bytes; a key is {PROGRAM_SIZE}")
    return program
