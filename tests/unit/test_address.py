"""Addresses: bech32m (BIP350) over the x-only key, version 1, the network's prefix.

The BIP350 test vectors check the string rules and the segwit address rules our parser
applies; the rest checks what an address means here (one network, version 1, 32 bytes)
and that each kind of mistake gets its own clear error.
"""

from __future__ import annotations

import dataclasses

import pytest

from chain.params import MAINNET, NETWORKS, REGTEST, TESTNET, ChainParams
from chain.schnorr import pubkey_of
from wallet.address import (
    AddressError,
    decode_address,
    encode_address,
    parse_bech32m,
    parse_segwit,
)

# BIP350 "Test vectors for Bech32m": valid strings (not necessarily addresses).
VALID_BECH32M = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]

# ... and invalid ones, with what our error says (BIP350 gives the same reasons).
INVALID_BECH32M = [
    ("\x201xj0phk", "printable ASCII"),  # HRP character out of range
    ("\x7f1g6xzxy", "printable ASCII"),  # HRP character out of range
    ("\x801vctc34", "printable ASCII"),  # HRP character out of range
    (  # overall max length exceeded
        "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
        "at most 90",
    ),
    ("qyrz8wqd2c9m", "no prefix before the separator"),  # no separator character
    ("1qyrz8wqd2c9m", "no prefix before the separator"),  # empty HRP
    ("y1b0jsk6g", "outside the bech32 alphabet"),  # invalid data character
    ("lt1igcx5c0", "outside the bech32 alphabet"),  # invalid data character
    ("in1muywd", "too short to hold a checksum"),  # too short checksum
    ("mm1crxm3i", "outside the bech32 alphabet"),  # invalid character in checksum
    ("au1s5cgom", "outside the bech32 alphabet"),  # invalid character in checksum
    ("M1VUXWEZ", "checksum is wrong"),  # checksum computed over the uppercase HRP
    ("16plkw9", "no prefix before the separator"),  # empty HRP
    ("1p2gdwpf", "no prefix before the separator"),  # empty HRP
]

# BIP350 valid segwit addresses and their scriptPubKeys (OP_n, push, program).
VALID_SEGWIT = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    ("BC1SW50QGDZ25J", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
]

# BIP350 invalid segwit addresses (less the first, whose fault is a prefix the vectors'
# decoder did not expect), with what our error says.
INVALID_SEGWIT = [
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
        "must use the bech32m checksum",
    ),
    (
        "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
        "must use the bech32m checksum",
    ),
    (
        "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
        "must use the bech32m checksum",
    ),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", "must use the bech32 checksum"),
    (
        "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
        "must use the bech32 checksum",
    ),
    (
        "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
        "outside the bech32 alphabet",
    ),
    ("BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", "version 17 does not exist"),
    ("bc1pw5dgrnzv", "program is 1 bytes"),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
        "program is 41 bytes",
    ),
    ("BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P", "20 or 32 bytes"),
    (
        "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",
        "mixes upper and lower case",
    ),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf", "invalid padding"),
    ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j", "invalid padding"),
    ("bc1gmk9yu", "no data"),
]

# The generator point's x coordinate: the key of the last valid vector above.
G_X = bytes.fromhex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")


def script_pubkey(version: int, program: bytes) -> str:
    op = 0 if version == 0 else 0x50 + version
    return (bytes([op, len(program)]) + program).hex()


@pytest.mark.parametrize("text", VALID_BECH32M)
def test_bip350_valid_bech32m_strings_parse(text: str) -> None:
    hrp, _ = parse_bech32m(text)
    assert hrp == text[: text.rfind("1")].lower()


@pytest.mark.parametrize(("text", "reason"), INVALID_BECH32M)
def test_bip350_invalid_bech32m_strings_are_refused(text: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        parse_bech32m(text)


@pytest.mark.parametrize(("text", "script"), VALID_SEGWIT)
def test_bip350_valid_addresses_give_their_script(text: str, script: str) -> None:
    parsed = parse_segwit(text)
    assert script_pubkey(parsed.version, parsed.program) == script


@pytest.mark.parametrize(("text", "reason"), INVALID_SEGWIT)
def test_bip350_invalid_addresses_are_refused(text: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        parse_segwit(text)


def test_our_encoding_matches_the_bip350_taproot_vector() -> None:
    """With Bitcoin's prefix, our address of G's x is BIP350's taproot vector exactly."""
    bitcoin = dataclasses.replace(MAINNET, hrp="bc")
    assert encode_address(G_X, bitcoin) == VALID_SEGWIT[-1][0]


@pytest.mark.parametrize("params", list(NETWORKS.values()), ids=list(NETWORKS))
def test_round_trip_on_every_network(params: ChainParams) -> None:
    for n in range(20):
        key = pubkey_of(bytes([n + 1]) * 32)
        text = encode_address(key, params)
        assert text.startswith(params.hrp + "1p")
        assert decode_address(text, params) == key
        assert decode_address(text.upper(), params) == key
        # Standard segwit tooling reads it as a v1 (taproot-shaped) output.
        parsed = parse_segwit(text)
        assert (parsed.version, parsed.program) == (1, key)


def test_prefixes_are_the_chain_params() -> None:
    assert [p.hrp for p in (MAINNET, TESTNET, REGTEST)] == ["fc", "tfc", "fcrt"]


def refused(text: str, params: ChainParams = REGTEST) -> str:
    with pytest.raises(AddressError) as info:
        decode_address(text, params)
    return str(info.value)


def test_another_network_is_named() -> None:
    mainnet_address = encode_address(G_X, MAINNET)
    message = refused(mainnet_address)
    assert "mainnet address" in message and "regtest" in message
    assert "not a Foundation Coin address" in refused(VALID_SEGWIT[-1][0])


def test_each_mistake_has_its_own_message() -> None:
    good = encode_address(G_X, REGTEST)
    # One wrong character: the checksum catches it.
    typo = good[:-3] + ("q" if good[-3] != "q" else "p") + good[-2:]
    assert "checksum" in refused(typo)
    assert "mixes upper and lower case" in refused(good[:10] + good[10:].upper())
    assert "outside the bech32 alphabet" in refused(good[:-1] + "b")
    assert "empty" in refused("   ")
    assert "at most 90" in refused("fcrt1" + "q" * 90)


def encoded(version: int, program: bytes, *, legacy: bool = False) -> str:
    """A string in the given checksum flavour, built with the reference code."""
    from bech32m import codecs  # type: ignore[import-untyped]

    spec = codecs.Encoding.BECH32 if legacy else codecs.Encoding.BECH32M
    data = bytes([version]) + bytes(codecs.convertbits(program, 8, 5))
    return str(codecs.bech32_encode(REGTEST.hrp, data, spec))


def test_wrong_checksum_flavour_version_or_length() -> None:
    assert "old bech32 checksum" in refused(encoded(1, G_X, legacy=True))
    assert "version is 0" in refused(encoded(0, G_X))
    assert "version is 2" in refused(encoded(2, G_X))
    assert "holds 20 bytes" in refused(encoded(1, G_X[:20]))
    with pytest.raises(AddressError, match="32 bytes"):
        encode_address(G_X[:31], REGTEST)
