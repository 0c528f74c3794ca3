"""Canonical encoding: one value, one byte string, and nothing else gets through.

Four properties, each over random data:

* **Round trip.** Any transaction, header, block, coin or undo record encodes to bytes
  that decode to an equal value, and re-encoding the decoded value gives the same bytes.
* **Non-canonical input is refused.** The same value written another way (a wider integer
  or length width, a float or bool for an int, a str for a bin, a map, an extension type,
  trailing bytes) raises ``DecodeError``: ``decode-noncanonical`` when the bytes decode to
  the same value, ``decode-malformed`` when they decode to something of the wrong shape.
* **Garbage raises only ``DecodeError``.** No decoder lets another exception type escape.
* **Mutations.** A valid block with bytes flipped, inserted or deleted either fails to
  decode or decodes to a block whose fresh encoding is exactly the mutated bytes.

``write`` below is an independent msgpack writer: it reproduces ``msgpack.packb``
byte for byte (checked by a test) and can write any one node of a value non-canonically.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chain.block import HEADER_SIZE_LIMIT, Block, BlockHeader, Work, decode_block, decode_header
from chain.coins import Coin, decode_coin
from chain.contextual import ParentInfo, Undo, decode_undo
from chain.encoding import pack
from chain.errors import DecodeError, Reject
from chain.lottery import MAX_WORK_TOKENS, TOKEN_BYTES
from chain.params import REGTEST
from chain.producer import assemble_block, sign_transaction
from chain.schnorr import pubkey_of
from chain.transaction import (
    NO_SIGNATURE,
    OutPoint,
    Transaction,
    TxIn,
    TxKind,
    TxOut,
    decode_transaction,
)
from tests.exactwork import sample

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT64_MIN = -(2**63)

NONCANONICAL = Reject.DECODE_NONCANONICAL
MALFORMED = Reject.DECODE_MALFORMED

# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------

hash32 = st.binary(min_size=32, max_size=32)
sig64 = st.binary(min_size=64, max_size=64)
uint32 = st.integers(0, UINT32_MAX)
uint64 = st.integers(0, UINT64_MAX)
# Integers of every msgpack width, with the boundaries between widths drawn often.
_BOUNDARIES = [
    0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, 2**32, UINT64_MAX,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, INT64_MIN,
]  # fmt: skip
msgpack_int = st.one_of(st.sampled_from(_BOUNDARIES), st.integers(INT64_MIN, UINT64_MAX))

# Free-form payload values: anything canonical msgpack can carry except maps and
# extension types (NaN is left out only because NaN != NaN would spoil value equality).
payload_leaf = st.one_of(
    msgpack_int,
    st.binary(max_size=40),
    st.text(max_size=40),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
payload_value = st.recursive(payload_leaf, lambda kids: st.lists(kids, max_size=4), max_leaves=12)
payloads = st.lists(payload_value, max_size=16)

outpoints = st.builds(OutPoint, hash32, uint32)
tx_inputs = st.builds(TxIn, outpoints, sig64)
tx_outputs = st.builds(TxOut, st.integers(INT64_MIN, UINT64_MAX), hash32)

transactions = st.builds(
    Transaction,
    uint32,
    st.integers(0, 255),
    st.lists(tx_inputs, max_size=4).map(tuple),
    st.lists(tx_outputs, max_size=4).map(tuple),
    payloads,
)

works = st.builds(Work, hash32, uint64, st.binary(max_size=MAX_WORK_TOKENS * TOKEN_BYTES))
headers = st.builds(
    BlockHeader,
    version=uint32,
    prev_hash=hash32,
    merkle_root=hash32,
    benefit_root=hash32,
    time=uint64,
    target=st.integers(0, 2**256 - 1),
    height=uint32,
    work=works,
    producer_sig=sig64,
)
blocks = st.builds(Block, headers, st.lists(transactions, max_size=5).map(tuple))

coins = st.builds(Coin, st.integers(0, 2**63 - 1), hash32, uint32, st.booleans())
undos = st.builds(Undo, st.lists(st.tuples(outpoints, coins), max_size=6))

DECODERS: list[Callable[[bytes], object]] = [
    decode_transaction,
    decode_header,
    decode_block,
    decode_coin,
    decode_undo,
]


def fresh_tx_bytes(tx: Transaction) -> bytes:
    """Encode from the fields, ignoring the bytes a decoder may have cached."""
    return pack(tx.to_wire())


def fresh_block_bytes(block: Block) -> bytes:
    return pack([block.header.to_wire(), [tx.to_wire() for tx in block.transactions]])


def assert_same_tx(a: Transaction, b: Transaction) -> None:
    assert (a.version, a.kind, a.inputs, a.outputs) == (b.version, b.kind, b.inputs, b.outputs)
    assert fresh_tx_bytes(a) == fresh_tx_bytes(b)  # payload: bytes equality (True != 1 here)
    assert a.txid == b.txid
    assert a.wtxid == b.wtxid


# --------------------------------------------------------------------------------------
# An independent msgpack writer that can write one chosen node non-canonically
# --------------------------------------------------------------------------------------


def _uint(v: int, width: int) -> bytes:
    return v.to_bytes(width, "big")


def _int_forms(v: int) -> list[bytes]:
    """Every msgpack encoding of the integer ``v``, canonical first."""
    forms: list[bytes] = []
    if 0 <= v <= 0x7F:
        forms.append(bytes([v]))
    if -32 <= v < 0:
        forms.append(struct.pack(">b", v))
    if v >= 0:
        for tag, width in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
            if v < 2 ** (8 * width):
                forms.append(bytes([tag]) + _uint(v, width))
    for tag, width in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
        if -(2 ** (8 * width - 1)) <= v < 2 ** (8 * width - 1):
            forms.append(bytes([tag]) + v.to_bytes(width, "big", signed=True))
    # msgpack-python's choice: fixint, else the narrowest uint (v >= 0) or int (v < 0).
    canonical = next(f for f in forms if len(f) == 1 or (f[0] >= 0xD0) == (v < 0))
    forms.remove(canonical)
    return [canonical, *forms]


def _length_forms(n: int, fix: tuple[int, int] | None, tags: list[tuple[int, int]]) -> list[bytes]:
    """Every header for a length-``n`` container: ``fix`` is (base, limit) of the fix form,
    ``tags`` are (tag, width) of the explicit forms, narrowest first. Canonical first."""
    forms: list[bytes] = []
    if fix is not None and n < fix[1]:
        forms.append(bytes([fix[0] | n]))
    for tag, width in tags:
        if n < 2 ** (8 * width):
            forms.append(bytes([tag]) + _uint(n, width))
    return forms


def _forms_for(value: Any) -> tuple[list[bytes], bytes]:
    """(header forms with the canonical first, body) for a scalar or container header."""
    if value is None:
        return [b"\xc0"], b""
    if value is True:
        return [b"\xc3"], b""
    if value is False:
        return [b"\xc2"], b""
    if type(value) is int:
        return _int_forms(value), b""
    if type(value) is float:
        forms = [b"\xcb" + struct.pack(">d", value)]
        try:
            single = struct.pack(">f", value)
        except OverflowError:  # beyond float32's range
            single = b""
        if single and struct.unpack(">f", single)[0] == value:
            forms.append(b"\xca" + single)  # the same value as a float32
        return forms, b""
    if type(value) is bytes:
        return _length_forms(len(value), None, [(0xC4, 1), (0xC5, 2), (0xC6, 4)]), value
    if type(value) is str:
        raw = value.encode()
        return _length_forms(len(raw), (0xA0, 32), [(0xD9, 1), (0xDA, 2), (0xDB, 4)]), raw
    if type(value) is list:
        return _length_forms(len(value), (0x90, 16), [(0xDC, 2), (0xDD, 4)]), b""
    raise TypeError(f"writer does not handle {type(value).__name__}")


def count_alternatives(value: Any) -> list[int]:
    """Preorder indices of the nodes of ``value`` that have a non-canonical form."""
    found: list[int] = []

    def walk(v: Any, counter: list[int]) -> None:
        here = counter[0]
        counter[0] += 1
        forms, _ = _forms_for(v)
        if len(forms) > 1:
            found.append(here)
        if type(v) is list:
            for item in v:
                walk(item, counter)

    walk(value, [0])
    return found


def write(value: Any, node: int = -1, variant: int = 0) -> bytes:
    """msgpack bytes of ``value``; node ``node`` (preorder) in non-canonical form
    ``variant`` (taken modulo the number of non-canonical forms it has)."""
    out = bytearray()
    counter = [0]

    def emit(v: Any) -> None:
        here = counter[0]
        counter[0] += 1
        forms, body = _forms_for(v)
        if here == node:
            assert len(forms) > 1, "chosen node has no non-canonical form"
            out.extend(forms[1 + variant % (len(forms) - 1)])
        else:
            out.extend(forms[0])
        out.extend(body)
        if type(v) is list:
            for item in v:
                emit(item)

    emit(value)
    return bytes(out)


# --------------------------------------------------------------------------------------
# (a) Round trips
# --------------------------------------------------------------------------------------


@given(transactions)
def test_transaction_round_trip(tx: Transaction) -> None:
    data = tx.encoded
    decoded = decode_transaction(data)
    assert_same_tx(decoded, tx)
    assert decoded == tx
    assert fresh_tx_bytes(decoded) == data
    assert decoded.size == len(data)


@given(headers)
def test_header_round_trip(header: BlockHeader) -> None:
    data = header.encode()
    decoded = decode_header(data)
    assert decoded == header
    assert decoded.encode() == data
    assert decoded.hash() == header.hash()


@settings(deadline=None)
@given(blocks)
def test_block_round_trip(block: Block) -> None:
    data = block.encoded
    decoded = decode_block(data)
    assert decoded.header == block.header
    assert len(decoded.transactions) == len(block.transactions)
    for got, want in zip(decoded.transactions, block.transactions, strict=True):
        assert_same_tx(got, want)
    assert fresh_block_bytes(decoded) == data
    assert decoded.hash == block.hash


@given(coins)
def test_coin_round_trip(coin: Coin) -> None:
    decoded = decode_coin(coin.encode())
    assert decoded == coin
    assert type(decoded.is_coinbase) is bool
    assert decoded.encode() == coin.encode()


@given(undos)
def test_undo_round_trip(undo: Undo) -> None:
    decoded = decode_undo(undo.encode())
    assert decoded == undo
    assert decoded.encode() == undo.encode()


@given(payload_value)
def test_writer_matches_msgpack(value: Any) -> None:
    """The test's own writer is msgpack's canonical form (so its variants are meaningful)."""
    assert write(value) == msgpack.packb(value, use_bin_type=True)


# --------------------------------------------------------------------------------------
# (b) Non-canonical encodings of the same value are refused
# --------------------------------------------------------------------------------------


def _rewrite_one_node(wire: Any, data: st.DataObject) -> bytes:
    candidates = count_alternatives(wire)
    node = data.draw(st.sampled_from(candidates), label="node")
    variant = data.draw(st.integers(0, 7), label="variant")
    return write(wire, node, variant)


@given(transactions, st.data())
def test_transaction_widened_anywhere_is_noncanonical(tx: Transaction, data: st.DataObject) -> None:
    wire = tx.to_wire()
    assert write(wire) == tx.encoded
    bad = _rewrite_one_node(wire, data)
    assert msgpack.unpackb(bad, raw=False) == msgpack.unpackb(tx.encoded, raw=False)
    with pytest.raises(DecodeError) as exc:
        decode_transaction(bad)
    assert exc.value.code == NONCANONICAL


@given(headers, st.data())
def test_header_widened_anywhere_is_noncanonical(header: BlockHeader, data: st.DataObject) -> None:
    wire = header.to_wire()
    assert write(wire) == header.encode()
    with pytest.raises(DecodeError) as exc:
        decode_header(_rewrite_one_node(wire, data))
    assert exc.value.code == NONCANONICAL


@settings(deadline=None)
@given(blocks, st.data())
def test_block_widened_anywhere_is_noncanonical(block: Block, data: st.DataObject) -> None:
    wire = [block.header.to_wire(), [tx.to_wire() for tx in block.transactions]]
    assert write(wire) == block.encoded
    with pytest.raises(DecodeError) as exc:
        decode_block(_rewrite_one_node(wire, data))
    assert exc.value.code == NONCANONICAL


@given(coins, st.data())
def test_coin_widened_anywhere_is_noncanonical(coin: Coin, data: st.DataObject) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_coin(_rewrite_one_node(coin.to_wire(), data))
    assert exc.value.code == NONCANONICAL


@given(undos.filter(lambda u: len(u.spent) > 0), st.data())
def test_undo_widened_anywhere_is_noncanonical(undo: Undo, data: st.DataObject) -> None:
    wire = [[op.txid, op.vout, coin.to_wire()] for op, coin in undo.spent]
    assert write(wire) == undo.encode()
    with pytest.raises(DecodeError) as exc:
        decode_undo(_rewrite_one_node(wire, data))
    assert exc.value.code == NONCANONICAL


SIMPLE_TX = Transaction(
    1,
    TxKind.TRANSFER,
    (TxIn(OutPoint(b"\x11" * 32, 5), b"\x22" * 64),),
    (TxOut(1_000, b"\x33" * 32), TxOut(200_000, b"\x44" * 32)),
    [],
)


@pytest.mark.parametrize(
    ("description", "raw"),
    [
        ("version 1 as uint8", b"\x95\xcc\x01"),
        ("version 1 as uint16", b"\x95\xcd\x00\x01"),
        ("version 1 as uint32", b"\x95\xce\x00\x00\x00\x01"),
        ("version 1 as uint64", b"\x95\xcf" + (1).to_bytes(8, "big")),
        ("version 1 as int8", b"\x95\xd0\x01"),
        ("version 1 as float32", b"\x95\xca" + struct.pack(">f", 1.0)),
        ("tx array as array16", b"\xdc\x00\x05\x01"),
        ("tx array as array32", b"\xdd\x00\x00\x00\x05\x01"),
    ],
)
def test_hand_written_noncanonical_prefix(description: str, raw: bytes) -> None:
    """A canonical transaction with its first bytes rewritten to an equal value."""
    canonical = SIMPLE_TX.encoded
    prefix_len = 2  # fixarray(5) then fixint 1
    assert canonical[:prefix_len] == b"\x95\x01"
    bad = raw + canonical[prefix_len:]
    with pytest.raises(DecodeError) as exc:
        decode_transaction(bad)
    assert exc.value.code == NONCANONICAL, description


def test_bin8_as_bin16_and_bin32() -> None:
    canonical = SIMPLE_TX.encoded
    sig = b"\xc4\x40" + b"\x22" * 64
    assert canonical.count(sig) == 1
    for header in (b"\xc5\x00\x40", b"\xc6\x00\x00\x00\x40"):
        with pytest.raises(DecodeError) as exc:
            decode_transaction(canonical.replace(sig, header + b"\x22" * 64))
        assert exc.value.code == NONCANONICAL


def _tx_wire_with(path: tuple[int, ...], replacement: Any) -> list[Any]:
    wire = copy.deepcopy(SIMPLE_TX.to_wire())
    node = wire
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = replacement
    return wire


# Fields of SIMPLE_TX's wire form and what they must be.
INT_FIELDS = [(0,), (1,), (2, 0, 1), (3, 0, 0)]  # version, kind, input index, output amount
BYTES_FIELDS = [(2, 0, 0), (2, 0, 2), (3, 0, 1)]  # txid, signature, pubkey


@pytest.mark.parametrize("path", INT_FIELDS)
@pytest.mark.parametrize(
    ("replacement", "code"),
    [
        (True, MALFORMED),  # bool is not an int, though Python says True == 1
        (False, MALFORMED),
        (1.0, MALFORMED),  # float64: re-encodes identically, then fails the type check
        (b"\x01", MALFORMED),
        ("1", MALFORMED),
        (None, MALFORMED),
        ([], MALFORMED),
    ],
)
def test_wrong_type_where_int_expected(
    path: tuple[int, ...], replacement: Any, code: Reject
) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_transaction(pack(_tx_wire_with(path, replacement)))
    assert exc.value.code == code


@pytest.mark.parametrize("path", INT_FIELDS)
def test_float32_where_int_expected_is_noncanonical(path: tuple[int, ...]) -> None:
    wire = _tx_wire_with(path, 1.0)
    bad = msgpack.packb(wire, use_bin_type=True, use_single_float=True)
    with pytest.raises(DecodeError) as exc:
        decode_transaction(bad)
    assert exc.value.code == NONCANONICAL  # float32 re-encodes as float64


@pytest.mark.parametrize("path", BYTES_FIELDS)
def test_str_where_bin_expected(path: tuple[int, ...]) -> None:
    wire = SIMPLE_TX.to_wire()
    node = wire
    for step in path[:-1]:
        node = node[step]
    raw = node[path[-1]]
    as_str = raw.decode("latin-1")  # same length in chars; str header instead of bin
    with pytest.raises(DecodeError) as exc:
        decode_transaction(pack(_tx_wire_with(path, as_str)))
    assert exc.value.code == MALFORMED
    # The very same bytes under a str header (valid UTF-8 here: 0x11, 0x22, 0x33 are ASCII).
    canonical = SIMPLE_TX.encoded
    bin_form = b"\xc4" + bytes([len(raw)]) + raw
    str_form = b"\xd9" + bytes([len(raw)]) + raw
    with pytest.raises(DecodeError) as exc:
        decode_transaction(canonical.replace(bin_form, str_form, 1))
    assert exc.value.code == MALFORMED


def test_bin_where_str_was_is_another_value() -> None:
    """In the free-form payload a str and a bin are two different values, never one value
    in two spellings: each decodes to itself and has its own txid."""
    with_str = Transaction(1, 7, (), (), ["abc"])
    with_bin = Transaction(1, 7, (), (), [b"abc"])
    assert with_str.encoded.replace(b"\xa3abc", b"\xc4\x03abc") == with_bin.encoded
    a, b = decode_transaction(with_str.encoded), decode_transaction(with_bin.encoded)
    assert a.payload == ["abc"]
    assert b.payload == [b"abc"]
    assert a.txid != b.txid


@pytest.mark.parametrize(
    "replacement",
    [
        {1: 2},
        {"a": b"b"},
        msgpack.ExtType(5, b"x"),
        msgpack.ExtType(5, b"12345678"),
        msgpack.Timestamp(1_700_000_000),
        msgpack.Timestamp(1_700_000_000, 5),
        msgpack.Timestamp(2**40),
    ],
    ids=["map-int", "map-str", "ext1", "ext8", "timestamp32", "timestamp64", "timestamp96"],
)
@pytest.mark.parametrize("path", [(0,), (2, 0, 0), (3, 0, 0), (4,)])
def test_maps_and_extension_types_are_refused(path: tuple[int, ...], replacement: Any) -> None:
    bad = msgpack.packb(_tx_wire_with(path, replacement), use_bin_type=True, datetime=False)
    with pytest.raises(DecodeError) as exc:
        decode_transaction(bad)
    assert exc.value.code == MALFORMED


@pytest.mark.parametrize(
    "element",
    [
        {1: 2},
        {"k": [1, 2]},
        msgpack.ExtType(5, b"x"),
        msgpack.ExtType(100, b"abcd"),
        msgpack.Timestamp(1_700_000_000),
        msgpack.Timestamp(1_700_000_000, 5),
    ],
    ids=["map-int", "map-nested", "ext1", "ext4", "timestamp32", "timestamp64"],
)
@pytest.mark.parametrize("nested", [False, True])
def test_maps_and_extension_types_inside_a_payload_are_refused(element: Any, nested: bool) -> None:
    """The payload is free-form, so no shape check would catch these: the decoder must."""
    value = [[element]] if nested else [element]
    bad = msgpack.packb([1, 7, [], [], value], use_bin_type=True, datetime=False)
    with pytest.raises(DecodeError) as exc:
        decode_transaction(bad)
    assert exc.value.code == MALFORMED


@pytest.mark.parametrize(
    "raw",
    [b"\x80", b"\xc7\x00\x05", b"\xc7\x00\x00"],
    ids=["empty-fixmap", "empty-ext8", "empty-ext8-type0"],
)
def test_empty_map_or_ext_in_payload_is_refused(raw: bytes) -> None:
    canonical = Transaction(1, 7, (), (), [0]).encoded
    assert canonical.endswith(b"\x91\x00")
    with pytest.raises(DecodeError):
        decode_transaction(canonical[:-1] + raw)


@pytest.mark.parametrize("path", [(0,), (2, 0, 0), (3, 0, 0)])
@pytest.mark.parametrize("raw", [b"\x80", b"\xc7\x00\x05"], ids=["empty-map", "empty-ext"])
def test_empty_map_or_ext_in_a_typed_field_is_refused(path: tuple[int, ...], raw: bytes) -> None:
    marker = b"\xc4\x07MARKER!"  # a unique bin we then swap for the raw bytes
    data = pack(_tx_wire_with(path, b"MARKER!"))
    assert data.count(marker) == 1
    with pytest.raises(DecodeError) as exc:
        decode_transaction(data.replace(marker, raw))
    assert exc.value.code == MALFORMED


@given(st.sampled_from(DECODERS), st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(decoder: Callable[[bytes], object], extra: bytes) -> None:
    samples: dict[Callable[[bytes], object], bytes] = {
        decode_transaction: SIMPLE_TX.encoded,
        decode_header: REGTEST.genesis.header.encode(),
        decode_block: REGTEST.genesis.encoded,
        decode_coin: Coin(5, b"\x01" * 32, 3, True).encode(),
        decode_undo: Undo([(OutPoint(b"\x02" * 32, 1), Coin(5, b"\x01" * 32, 3, False))]).encode(),
    }
    valid = samples[decoder]
    decoder(valid)  # the untouched bytes decode
    with pytest.raises(DecodeError) as exc:
        decoder(valid + extra)
    assert exc.value.code == MALFORMED
    with pytest.raises(DecodeError) as exc:
        decoder(valid[:-1])  # and truncated ones do not
    assert exc.value.code == MALFORMED


def test_coin_flag_must_be_zero_or_one() -> None:
    good = Coin(5, b"\x01" * 32, 3, True).to_wire()
    for flag in (2, True, -1):
        with pytest.raises(DecodeError) as exc:
            decode_coin(pack([*good[:3], flag]))
        assert exc.value.code == MALFORMED


@pytest.mark.parametrize(
    ("decoder", "size"),
    [
        (decode_transaction, 100_001),
        (decode_header, HEADER_SIZE_LIMIT + 1),
        (decode_coin, 129),
    ],
)
def test_oversized_input_is_refused_before_decoding(
    decoder: Callable[[bytes], object], size: int
) -> None:
    # One byte over the limit: refused by the size check, before msgpack sees it.
    blob = b"\x00" * size
    with pytest.raises(DecodeError) as exc:
        decoder(blob)
    assert exc.value.code == MALFORMED
    assert "exceeds limit" in exc.value.detail


def test_block_size_limit_is_a_parameter() -> None:
    data = REGTEST.genesis.encoded
    decode_block(data, max_size=len(data))
    with pytest.raises(DecodeError) as exc:
        decode_block(data, max_size=len(data) - 1)
    assert exc.value.code == MALFORMED


def test_non_bytes_input_is_refused() -> None:
    for decoder in DECODERS:
        with pytest.raises(DecodeError) as exc:
            decoder("not bytes")  # type: ignore[arg-type]
        assert exc.value.code == MALFORMED


# --------------------------------------------------------------------------------------
# (c) Garbage raises DecodeError and nothing else
# --------------------------------------------------------------------------------------


def _decode_or_decode_error(decoder: Callable[[bytes], object], data: bytes) -> object | None:
    """Run ``decoder``; a ``DecodeError`` is fine, any other exception fails the test."""
    try:
        return decoder(data)
    except DecodeError as exc:
        assert exc.code in (MALFORMED, NONCANONICAL)
        return None


@settings(max_examples=300)
@given(st.sampled_from(DECODERS), st.binary(max_size=600))
def test_random_bytes_raise_only_decode_error(
    decoder: Callable[[bytes], object], data: bytes
) -> None:
    _decode_or_decode_error(decoder, data)


# Random msgpack values reach past the msgpack layer into the shape checks.
any_msgpack: st.SearchStrategy[Any] = st.recursive(
    st.one_of(payload_leaf, st.just({}), st.binary(min_size=32, max_size=32)),
    lambda kids: st.one_of(st.lists(kids, max_size=10), st.lists(kids, min_size=1, max_size=3)),
    max_leaves=30,
)


@settings(max_examples=300)
@given(st.sampled_from(DECODERS), any_msgpack)
def test_random_msgpack_values_raise_only_decode_error(
    decoder: Callable[[bytes], object], value: Any
) -> None:
    _decode_or_decode_error(decoder, msgpack.packb(value, use_bin_type=True))


def _replace_leaf(wire: Any, data: st.DataObject) -> Any:
    """``wire`` with one node (chosen in preorder) swapped for a random msgpack value."""
    wire = copy.deepcopy(wire)  # to_wire shares the payload list with the transaction
    nodes: list[tuple[list[Any], int]] = []

    def walk(v: Any) -> None:
        if type(v) is list:
            for i, item in enumerate(v):
                nodes.append((v, i))
                walk(item)

    walk(wire)
    assume(nodes)
    parent, index = data.draw(st.sampled_from(nodes), label="node")
    parent[index] = data.draw(any_msgpack, label="replacement")
    return wire


@settings(deadline=None)
@given(blocks, st.data())
def test_block_with_one_field_replaced(block: Block, data: st.DataObject) -> None:
    """Swap any one field of a valid block for a random value: a decode error, or a block
    that re-encodes exactly (the replacement happened to fit the schema)."""
    wire = _replace_leaf(
        [block.header.to_wire(), [tx.to_wire() for tx in block.transactions]], data
    )
    raw = msgpack.packb(wire, use_bin_type=True)
    decoded = _decode_or_decode_error(decode_block, raw)
    if decoded is not None:
        assert isinstance(decoded, Block)
        assert fresh_block_bytes(decoded) == raw


@given(transactions, st.data())
def test_transaction_with_one_field_replaced(tx: Transaction, data: st.DataObject) -> None:
    raw = msgpack.packb(_replace_leaf(tx.to_wire(), data), use_bin_type=True)
    decoded = _decode_or_decode_error(decode_transaction, raw)
    if decoded is not None:
        assert isinstance(decoded, Transaction)
        assert fresh_tx_bytes(decoded) == raw


def test_deeply_nested_input_raises_decode_error() -> None:
    for depth in (100, 600, 5_000, 100_000):
        for decoder in DECODERS:
            _decode_or_decode_error(decoder, b"\x91" * depth + b"\x90")


# --------------------------------------------------------------------------------------
# (d) Mutation fuzz over a real, signed block
# --------------------------------------------------------------------------------------


def _signed_block() -> Block:
    secret = bytes(range(1, 33))
    key = pubkey_of(secret)
    genesis = REGTEST.genesis
    txs = []
    for n in range(3):
        unsigned = Transaction(
            1,
            TxKind.TRANSFER,
            (TxIn(OutPoint(bytes([n]) * 32, n), NO_SIGNATURE),),
            (TxOut(900, key), TxOut(50 + n, key)),
            [],
        )
        txs.append(sign_transaction(unsigned, [secret], [TxOut(1_000, key)], REGTEST))
    parent = ParentInfo(genesis.hash, 0, genesis.header.time, genesis.header.time)
    return assemble_block(
        REGTEST, parent, secret, txs, genesis.header.time + 1, fees=150, sampler=sample
    )


SIGNED_BLOCK = _signed_block().encoded

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.just(0)),
)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in ops:
        if op == "insert":
            buf.insert(pos % (len(buf) + 1), arg)
            continue
        if not buf:
            continue
        i = pos % len(buf)
        if op == "flip":
            buf[i] ^= 1 << arg
        elif op == "set":
            buf[i] = arg
        else:
            del buf[i]
    return bytes(buf)


def _check_mutant(mutant: bytes) -> None:
    decoded = _decode_or_decode_error(decode_block, mutant)
    if decoded is not None:
        assert isinstance(decoded, Block)
        assert fresh_block_bytes(decoded) == mutant  # so a changed byte is a changed block


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_signed_block(ops: list[tuple[str, int, int]]) -> None:
    _check_mutant(mutate(SIGNED_BLOCK, ops))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks, st.lists(mutation, min_size=1, max_size=4))
def test_mutated_random_block(block: Block, ops: list[tuple[str, int, int]]) -> None:
    _check_mutant(mutate(block.encoded, ops))


def test_some_mutations_do_decode() -> None:
    """The fuzz above is not vacuous: flipping any bit inside a signature still decodes
    (to a different block), while cutting a byte out of one never does."""
    block = decode_block(SIGNED_BLOCK)
    sig = block.transactions[1].inputs[0].signature
    at = SIGNED_BLOCK.index(sig)
    for bit in range(8):
        mutant = mutate(SIGNED_BLOCK, [("flip", at + 10, bit)])
        decoded = decode_block(mutant)
        assert fresh_block_bytes(decoded) == mutant
        assert decoded.transactions[1].wtxid != block.transactions[1].wtxid
        assert decoded.transactions[1].txid == block.transactions[1].txid  # sigs not in txid
        with pytest.raises(DecodeError):
            decode_block(mutate(SIGNED_BLOCK, [("delete", at + bit, 0)]))


# --------------------------------------------------------------------------------------
# Field bounds: the last value in range decodes, the first one out is malformed
# --------------------------------------------------------------------------------------

TX_BOUNDS: list[tuple[tuple[int, ...], Any, Any]] = [
    ((0,), UINT32_MAX, 2**32),  # version
    ((0,), 0, -1),
    ((1,), 255, 256),  # kind
    ((2, 0, 1), UINT32_MAX, 2**32),  # input index
    ((2, 0, 0), b"\x11" * 32, b"\x11" * 31),  # txid length
    ((2, 0, 0), b"\x11" * 32, b"\x11" * 33),
    ((2, 0, 2), b"\x22" * 64, b"\x22" * 63),  # signature length
    ((3, 0, 1), b"\x33" * 32, b"\x33" * 33),  # pubkey length
    ((3, 0, 0), INT64_MIN, INT64_MIN - 1),  # amount: any msgpack int decodes...
    ((3, 0, 0), UINT64_MAX, UINT64_MAX),  # ...(consensus rejects the bad ones later)
    ((4,), [0] * 16, [0] * 17),  # payload entries
    ((2, 0), [b"\x11" * 32, 5, b"\x22" * 64], [b"\x11" * 32, 5]),  # input arity
    ((3, 0), [1, b"\x33" * 32], [1, b"\x33" * 32, 0]),  # output arity
]


@pytest.mark.parametrize(("path", "ok", "bad"), TX_BOUNDS)
def test_transaction_field_bounds(path: tuple[int, ...], ok: Any, bad: Any) -> None:
    good = decode_transaction(pack(_tx_wire_with(path, ok)))
    assert fresh_tx_bytes(good) == pack(_tx_wire_with(path, ok))
    if bad == ok:
        return
    try:
        raw = pack(_tx_wire_with(path, bad))
    except OverflowError:  # not even msgpack can write it: nothing to decode
        return
    with pytest.raises(DecodeError) as exc:
        decode_transaction(raw)
    assert exc.value.code == MALFORMED


def test_transaction_arity() -> None:
    wire = SIMPLE_TX.to_wire()
    for bad in (wire[:4], [*wire, []]):
        with pytest.raises(DecodeError) as exc:
            decode_transaction(pack(bad))
        assert exc.value.code == MALFORMED


@pytest.mark.parametrize(
    ("index", "ok", "bad"),
    [
        (0, UINT32_MAX, 2**32),  # version
        (1, b"\x00" * 32, b"\x00" * 31),  # prev_hash
        (4, UINT64_MAX, -1),  # time
        (5, b"\xff" * 32, b"\xff" * 33),  # target: exactly 32 bytes
        (5, b"\xff" * 32, 2**256 - 1),  # ...and bytes, not an integer
        (6, UINT32_MAX, 2**32),  # height
        (8, b"\x00" * 64, b"\x00" * 65),  # producer signature
    ],
)
def test_header_field_bounds(index: int, ok: Any, bad: Any) -> None:
    wire = REGTEST.genesis.header.to_wire()
    wire[index] = ok
    assert decode_header(pack(wire)).encode() == pack(wire)
    wire[index] = bad
    try:
        raw = pack(wire)
    except OverflowError:
        return
    with pytest.raises(DecodeError) as exc:
        decode_header(raw)
    assert exc.value.code == MALFORMED


MAX_TOKENS_BYTES = MAX_WORK_TOKENS * TOKEN_BYTES


@pytest.mark.parametrize(
    ("index", "ok", "bad"),
    [
        (0, b"\x01" * 32, b"\x01" * 31),  # worker key
        (0, b"\x01" * 32, b"\x01" * 33),
        (1, UINT64_MAX, 2**64),  # counter
        (1, 0, -1),
        (2, b"\x02" * MAX_TOKENS_BYTES, b"\x02" * (MAX_TOKENS_BYTES + 1)),  # tokens
        (2, b"", [0] * 8),  # ...as bytes, not a list of token ids
    ],
)
def test_work_field_bounds(index: int, ok: Any, bad: Any) -> None:
    # Only the decoder's bounds: the token count and vocabulary are consensus rules
    # (chain/lottery.py check_work_shape), tested in tests/adversarial.
    wire = REGTEST.genesis.header.to_wire()
    wire[7][index] = ok
    assert decode_header(pack(wire)).encode() == pack(wire)
    wire[7][index] = bad
    try:
        raw = pack(wire)
    except OverflowError:
        return
    with pytest.raises(DecodeError) as exc:
        decode_header(raw)
    assert exc.value.code == MALFORMED


def test_work_arity() -> None:
    wire = REGTEST.genesis.header.to_wire()
    work = wire[7]
    assert len(work) == 3  # [worker_key, counter, tokens]
    for bad in (work[:2], [*work, b"\x00" * 32]):  # the 4-field v1 ticket is gone too
        wire[7] = bad
        with pytest.raises(DecodeError) as exc:
            decode_header(pack(wire))
        assert exc.value.code == MALFORMED


def test_largest_header_fits_the_size_limit() -> None:
    # Every field at its widest and the most tokens a header may carry: the decoder's
    # size limit admits it, so the limit never refuses a header the fields allow.
    header = REGTEST.genesis.header._replace(
        version=UINT32_MAX,
        time=UINT64_MAX,
        target=2**256 - 1,
        height=UINT32_MAX,
        work=Work(b"\xff" * 32, UINT64_MAX, b"\xff" * MAX_TOKENS_BYTES),
        producer_sig=b"\xff" * 64,
    )
    data = header.encode()
    assert len(data) == 1_293 <= HEADER_SIZE_LIMIT
    assert decode_header(data) == header


def test_regtest_header_size() -> None:
    # A regtest header carries max_new_tokens tokens of TOKEN_BYTES each.
    header = decode_block(SIGNED_BLOCK).header
    assert len(header.work.tokens) == REGTEST.lottery.max_new_tokens * TOKEN_BYTES == 32
    assert len(header.encode()) == 280


@pytest.mark.parametrize(
    ("index", "ok", "bad"),
    [
        (0, 2**63 - 1, 2**63),  # amount
        (0, 0, -1),
        (1, b"\x01" * 32, b"\x01" * 31),  # pubkey
        (2, UINT32_MAX, 2**32),  # height
        (3, 1, 2),  # coinbase flag
        (3, 0, False),
    ],
)
def test_coin_field_bounds(index: int, ok: Any, bad: Any) -> None:
    wire = Coin(5, b"\x01" * 32, 3, True).to_wire()
    wire[index] = ok
    assert decode_coin(pack(wire)).encode() == pack(wire)
    wire[index] = bad
    with pytest.raises(DecodeError) as exc:
        decode_coin(pack(wire))
    assert exc.value.code == MALFORMED
