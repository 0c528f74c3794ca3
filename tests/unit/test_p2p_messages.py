"""Wire forms of the p2p messages: round trips, caps, and refusal of anything that is
not the one canonical encoding of a well-shaped value."""

from __future__ import annotations

import msgpack
import pytest

from chain.block import HEADER_SIZE_LIMIT
from chain.encoding import pack
from chain.errors import DecodeError
from chain.params import REGTEST
from chain.transaction import OutPoint, TxOut
from node.p2p import messages as m
from tests.chainbuilder import ALICE, BOB, Spendable, key, pay

HELLO = m.Hello("regtest", REGTEST.genesis_hash, 1, REGTEST.genesis_hash, 0, 1, "fcd/0.1")


def test_hello_round_trips_and_fits_its_cap() -> None:
    assert m.decode_hello(HELLO.encode()) == HELLO
    biggest = m.Hello(
        "x" * 32, b"\xff" * 32, 2**32 - 1, b"\xff" * 32, 2**32 - 1, 2**320 - 1, "u" * 128
    )
    assert len(biggest.encode()) <= m.CAPS[m.HELLO]
    assert m.decode_hello(biggest.encode()) == biggest


def test_hello_refuses_a_wider_integer_encoding() -> None:
    # The same value with the version as a uint32 instead of a fixint: not canonical.
    body = bytearray(HELLO.encode())
    version_at = body.index(b"\x01" + b"\xc4\x20")  # fixint 1 followed by bin32 tip hash
    noncanonical = (
        bytes(body[:version_at]) + b"\xce\x00\x00\x00\x01" + bytes(body[version_at + 1 :])
    )
    with pytest.raises(DecodeError, match="decode-noncanonical"):
        m.decode_hello(noncanonical)


def test_hello_refuses_wrong_shapes() -> None:
    with pytest.raises(DecodeError):
        m.decode_hello(pack(["regtest", REGTEST.genesis_hash]))
    with pytest.raises(DecodeError, match="user_agent"):
        m.decode_hello(
            pack(
                ["regtest", REGTEST.genesis_hash, 1, REGTEST.genesis_hash, 0, bytes(40), "u" * 129]
            )
        )
    with pytest.raises(DecodeError, match="decode-malformed"):
        m.decode_hello(msgpack.packb({"network": "regtest"}))


def test_get_headers_round_trips_and_caps_the_locator() -> None:
    locator = tuple(bytes([n]) * 32 for n in range(m.MAX_LOCATOR))
    request = m.GetHeaders(locator)
    assert len(request.encode()) <= m.CAPS[m.GET_HEADERS]
    assert m.decode_get_headers(request.encode()) == request
    with pytest.raises(DecodeError, match="exceeds"):
        m.decode_get_headers(pack([[b"\x00" * 32] * (m.MAX_LOCATOR + 1), m.NO_STOP]))


def test_headers_round_trip_and_a_full_reply_fits_its_cap() -> None:
    header = REGTEST.genesis.header
    assert m.decode_headers(m.encode_headers([header] * 3)) == [header] * 3
    # The cap assumes every header at its size limit.
    assert m.CAPS[m.HEADERS] >= len(m.encode_headers([header] * m.MAX_HEADERS))
    assert m.CAPS[m.HEADERS] >= m.MAX_HEADERS * HEADER_SIZE_LIMIT
    with pytest.raises(DecodeError):
        m.decode_headers(pack([[header.to_wire()] * (m.MAX_HEADERS + 1)]))


def test_get_blocks_and_not_found_round_trip() -> None:
    hashes = [bytes([n]) * 32 for n in range(m.MAX_GET_BLOCKS)]
    assert len(m.encode_get_blocks(hashes)) <= m.CAPS[m.GET_BLOCKS]
    assert m.decode_get_blocks(m.encode_get_blocks(hashes)) == hashes
    with pytest.raises(DecodeError):
        m.decode_get_blocks(m.encode_get_blocks(hashes + hashes[:1]))
    assert m.decode_not_found(m.encode_not_found(hashes[0])) == hashes[0]
    with pytest.raises(DecodeError):
        m.decode_not_found(pack([b"short"]))


def test_reject_reasons_are_capped() -> None:
    assert m.decode_reject(m.encode_reject("too many peers")) == "too many peers"
    assert len(m.decode_reject(m.encode_reject("x" * 1000))) == m.MAX_REASON


def test_announcements_are_one_header() -> None:
    block = REGTEST.genesis
    assert m.decode_announcement(m.encode_announcement(block)) == block.header
    with pytest.raises(DecodeError):
        m.decode_announcement(pack([block.header.to_wire(), 1]))


def test_tx_batches_round_trip_and_are_capped() -> None:
    coin = Spendable(OutPoint(b"\x11" * 32, 0), TxOut(10_000, key(ALICE)), ALICE)
    txs = [pay([coin], [TxOut(9_000 - n, key(BOB))]) for n in range(5)]
    assert m.decode_tx_batch(m.encode_tx_batch(txs)) == txs
    with pytest.raises(DecodeError, match="exceeds"):
        m.decode_tx_batch(m.encode_tx_batch(txs * 2000))  # over 256 KiB
    with pytest.raises(DecodeError):
        m.decode_tx_batch(b"\x91\x90" + b"\x00")  # trailing byte: not one value
