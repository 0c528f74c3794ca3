"""Canonical msgpack: the only way bytes become protocol objects.

msgpack is not canonical on its own (an integer may be written in several widths, a
map in any order), so we use a strict subset and *prove* canonicity by re-encoding:

* Objects are fixed-order arrays; maps and extension types (Timestamp included) are
  refused outright.
* After decoding, the value is packed again; if the bytes differ from what was
  received, the input is rejected with ``decode-noncanonical``. So every accepted
  byte string is the unique encoding of its value, and hashing bytes equals hashing values.
* Sizes are checked before decoding. ``msgpack.unpackb`` caps every length at the size of
  its input, so a lying length prefix cannot make us allocate more than we received.

The ``expect_*`` helpers check the shape of a decoded value field by field; a bool is not
an int here (msgpack's ``true`` would otherwise pass ``isinstance(x, int)``).
See ``specs/encoding.md``.
"""

from __future__ import annotations

from typing import Any

import msgpack

from chain.errors import DecodeError, Reject

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1


def pack(value: Any) -> bytes:
    """Encode a value made of lists, ints, bytes and str in the canonical form."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def _refuse_map(pairs: Any) -> Any:
    raise ValueError("maps are not part of the encoding")


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError("extension types are not part of the encoding")


def unpack_canonical(data: bytes, max_size: int) -> Any:
    """Decode ``data`` and insist that it is the canonical encoding of its value."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(Reject.DECODE_MALFORMED, "input is not bytes")
    if len(data) > max_size:
        raise DecodeError(Reject.DECODE_MALFORMED, f"{len(data)} bytes exceeds limit {max_size}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            max_map_len=0,
            max_ext_len=0,
            strict_map_key=True,
            # The length caps still admit *empty* maps and ext values; these hooks refuse them.
            object_pairs_hook=_refuse_map,
            ext_hook=_refuse_ext,
        )
    except Exception as exc:  # unpackb is pure: any failure means malformed input
        raise DecodeError(Reject.DECODE_MALFORMED, f"not msgpack: {type(exc).__name__}") from None
    try:
        again = pack(value)
    except Exception:  # e.g. floats that do not round-trip exactly
        raise DecodeError(Reject.DECODE_NONCANONICAL, "value cannot be re-encoded") from None
    if again != data:
        raise DecodeError(Reject.DECODE_NONCANONICAL, "re-encoding differs from input")
    return value


def expect_list(
    value: Any, what: str, length: int | None = None, max_len: int | None = None
) -> list[Any]:
    if type(value) is not list:
        raise DecodeError(Reject.DECODE_MALFORMED, f"{what}: expected array")
    if length is not None and len(value) != length:
        raise DecodeError(
            Reject.DECODE_MALFORMED, f"{what}: expected {length} fields, got {len(value)}"
        )
    if max_len is not None and len(value) > max_len:
        raise DecodeError(
            Reject.DECODE_MALFORMED, f"{what}: {len(value)} entries exceeds {max_len}"
        )
    return value


def expect_bytes(
    value: Any, what: str, length: int | None = None, max_len: int | None = None
) -> bytes:
    if type(value) is not bytes:
        raise DecodeError(Reject.DECODE_MALFORMED, f"{what}: expected bytes")
    if length is not None and len(value) != length:
        raise DecodeError(
            Reject.DECODE_MALFORMED, f"{what}: expected {length} bytes, got {len(value)}"
        )
    if max_len is not None and len(value) > max_len:
        raise DecodeError(Reject.DECODE_MALFORMED, f"{what}: {len(value)} bytes exceeds {max_len}")
    return value


def expect_int(value: Any, what: str, lo: int, hi: int) -> int:
    if type(value) is not int:
        raise DecodeError(Reject.DECODE_MALFORMED, f"{what}: expected integer")
    if not lo <= value <= hi:
        raise DecodeError(Reject.DECODE_MALFORMED, f"{what}: {value} outside [{lo}, {hi}]")
    return value


def expect_str(value: Any, what: str, max_len: int) -> str:
    if type(value) is not str:
        raise DecodeError(Reject.DECODE_MALFORMED, f"{what}: expected string")
    if len(value.encode()) > max_len:
        raise DecodeError(Reject.DECODE_MALFORMED, f"{what}: longer than {max_len} bytes")
    return value
