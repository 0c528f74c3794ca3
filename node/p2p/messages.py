"""Every message of the p2p protocols, with its wire form and its size cap.

Bodies are canonical msgpack arrays in a fixed field order (specs/encoding.md): decoding
goes through ``chain.encoding.unpack_canonical``, which refuses maps, extension types and
any byte string that is not the unique encoding of its value, then checks each field's
type and range. specs/p2p.md §3 lists the same fields and caps; this module is their
executable form.

Framed messages (request/response streams, ``framing.py``) have a one-byte type code.
Gossip payloads are not framed: a gossipsub message carries exactly one payload, and
gossipsub itself delimits it.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.block import HEADER_SIZE_LIMIT, MAX_BLOCK_SIZE, Block, BlockHeader, header_from_wire
from chain.encoding import (
    UINT32_MAX,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
    pack,
    unpack_canonical,
)
from chain.transaction import Transaction, tx_from_wire

PROTOCOL_VERSION = 1
MIN_PROTOCOL_VERSION = 1  # the oldest peer version we still talk to

HASH = 32
WORK_SIZE = 40  # chain work as a 40-byte big-endian integer, as the block index keeps it
MAX_NETWORK_NAME = 32
MAX_USER_AGENT = 128
MAX_REASON = 256
MAX_LOCATOR = 64  # a locator of a 2**32-block chain has 10 + 32 entries
MAX_HEADERS = 2000  # headers in one HEADERS reply
MAX_GET_BLOCKS = 64  # hashes in one GET_BLOCKS request
MAX_TX_BATCH_BYTES = 256 * 1024  # one gossiped transaction batch, encoded
MAX_TX_BATCH_COUNT = 2000

# Frame type codes (specs/p2p.md §3.2). Never renumber.
HELLO = 1
REJECT = 2
GET_HEADERS = 3
HEADERS = 4
GET_BLOCKS = 5
BLOCK = 6
NOT_FOUND = 7

NAMES = {
    HELLO: "hello",
    REJECT: "reject",
    GET_HEADERS: "getheaders",
    HEADERS: "headers",
    GET_BLOCKS: "getblocks",
    BLOCK: "block",
    NOT_FOUND: "notfound",
}

# Largest body of each type, checked before the body is read.
CAPS = {
    HELLO: 512,
    REJECT: MAX_REASON + 8,
    GET_HEADERS: 8 + (MAX_LOCATOR + 1) * (HASH + 2),
    HEADERS: 8 + MAX_HEADERS * HEADER_SIZE_LIMIT,
    GET_BLOCKS: 8 + MAX_GET_BLOCKS * (HASH + 2),
    BLOCK: MAX_BLOCK_SIZE,
    NOT_FOUND: 8 + HASH,
}

# Which frames may arrive on each side of each protocol.
HANDSHAKE_CAPS = {HELLO: CAPS[HELLO], REJECT: CAPS[REJECT]}
REQUEST_CAPS = {GET_HEADERS: CAPS[GET_HEADERS], GET_BLOCKS: CAPS[GET_BLOCKS]}
HEADERS_REPLY_CAPS = {HEADERS: CAPS[HEADERS]}
BLOCKS_REPLY_CAPS = {BLOCK: CAPS[BLOCK], NOT_FOUND: CAPS[NOT_FOUND]}

ANNOUNCE_CAP = HEADER_SIZE_LIMIT  # a gossiped block announcement is one header
NO_STOP = b"\x00" * HASH


@dataclass(frozen=True)
class Hello:
    network: str
    genesis: bytes
    version: int
    tip_hash: bytes
    tip_height: int
    chain_work: int
    user_agent: str

    def encode(self) -> bytes:
        return pack(
            [
                self.network,
                self.genesis,
                self.version,
                self.tip_hash,
                self.tip_height,
                self.chain_work.to_bytes(WORK_SIZE, "big"),
                self.user_agent,
            ]
        )


def decode_hello(body: bytes) -> Hello:
    f = expect_list(unpack_canonical(body, CAPS[HELLO]), "hello", length=7)
    return Hello(
        network=expect_str(f[0], "hello.network", MAX_NETWORK_NAME),
        genesis=expect_bytes(f[1], "hello.genesis", length=HASH),
        version=expect_int(f[2], "hello.version", 0, UINT32_MAX),
        tip_hash=expect_bytes(f[3], "hello.tip_hash", length=HASH),
        tip_height=expect_int(f[4], "hello.tip_height", 0, UINT32_MAX),
        chain_work=int.from_bytes(expect_bytes(f[5], "hello.chain_work", length=WORK_SIZE), "big"),
        user_agent=expect_str(f[6], "hello.user_agent", MAX_USER_AGENT),
    )


def encode_reject(reason: str) -> bytes:
    return pack([reason.encode()[:MAX_REASON].decode(errors="ignore")])


def decode_reject(body: bytes) -> str:
    f = expect_list(unpack_canonical(body, CAPS[REJECT]), "reject", length=1)
    return expect_str(f[0], "reject.reason", MAX_REASON)


@dataclass(frozen=True)
class GetHeaders:
    locator: tuple[bytes, ...]
    stop: bytes = NO_STOP  # all zero: no stop, send up to MAX_HEADERS

    def encode(self) -> bytes:
        return pack([list(self.locator), self.stop])


def decode_get_headers(body: bytes) -> GetHeaders:
    f = expect_list(unpack_canonical(body, CAPS[GET_HEADERS]), "getheaders", length=2)
    raw = expect_list(f[0], "getheaders.locator", max_len=MAX_LOCATOR)
    locator = tuple(expect_bytes(h, "getheaders.locator[]", length=HASH) for h in raw)
    return GetHeaders(locator, expect_bytes(f[1], "getheaders.stop", length=HASH))


def encode_headers(headers: list[BlockHeader]) -> bytes:
    return pack([[h.to_wire() for h in headers]])


def decode_headers(body: bytes) -> list[BlockHeader]:
    f = expect_list(unpack_canonical(body, CAPS[HEADERS]), "headers", length=1)
    raw = expect_list(f[0], "headers.list", max_len=MAX_HEADERS)
    return [header_from_wire(h) for h in raw]


def encode_get_blocks(hashes: list[bytes]) -> bytes:
    return pack([hashes])


def decode_get_blocks(body: bytes) -> list[bytes]:
    f = expect_list(unpack_canonical(body, CAPS[GET_BLOCKS]), "getblocks", length=1)
    raw = expect_list(f[0], "getblocks.hashes", max_len=MAX_GET_BLOCKS)
    return [expect_bytes(h, "getblocks.hashes[]", length=HASH) for h in raw]


def encode_not_found(block_hash: bytes) -> bytes:
    return pack([block_hash])


def decode_not_found(body: bytes) -> bytes:
    f = expect_list(unpack_canonical(body, CAPS[NOT_FOUND]), "notfound", length=1)
    return expect_bytes(f[0], "notfound.hash", length=HASH)


# -- gossip payloads ---------------------------------------------------------------
def encode_announcement(block: Block) -> bytes:
    return block.header.encode()


def decode_announcement(data: bytes) -> BlockHeader:
    return header_from_wire(unpack_canonical(data, ANNOUNCE_CAP))


def encode_tx_batch(txs: list[Transaction]) -> bytes:
    return pack([[tx.to_wire() for tx in txs]])


def decode_tx_batch(data: bytes) -> list[Transaction]:
    f = expect_list(unpack_canonical(data, MAX_TX_BATCH_BYTES), "txbatch", length=1)
    raw = expect_list(f[0], "txbatch.list", max_len=MAX_TX_BATCH_COUNT)
    # Oversized transactions decode here and are refused by consensus (bad-txns-oversize).
    return [tx_from_wire(item) for item in raw]
