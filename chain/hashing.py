"""Tagged SHA-256, as in BIP340: ``SHA256(SHA256(tag) || SHA256(tag) || data)``.

Every hash in the protocol carries a tag naming what it hashes, so a value of one kind
(say, a transaction) can never be passed off as another (a block header, a Merkle node).
The 64-byte tag prefix fills exactly one SHA-256 block; we hash it once per tag and
copy the midstate, which makes a tagged hash cost the same as a plain one.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any


@cache
def _tag_midstate(tag: str) -> Any:
    tag_hash = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(tag_hash + tag_hash)


def tagged_hash(tag: str, data: bytes) -> bytes:
    """Return the 32-byte tagged hash of ``data`` under ``tag``."""
    h = _tag_midstate(tag).copy()
    h.update(data)
    return h.digest()  # type: ignore[no-any-return]


def sha256(data: bytes) -> bytes:
    """Plain SHA-256, for content addresses that other tools must reproduce."""
    return hashlib.sha256(data).digest()


# The tags of the protocol. Each is used in exactly one place.
TAG_TX = "fc/tx"  # txid: the transaction without signatures
TAG_WTX = "fc/wtx"  # wtxid: the whole transaction, signatures included
TAG_BLOCK = "fc/block"  # block hash: the whole header
TAG_HEADER_SIG = "fc/header-sig"  # message the producer signs
TAG_SIGHASH = "fc/sighash"  # message an input's key signs
TAG_SPENT = "fc/spent-outputs"  # commitment to the coins a transaction spends
TAG_MERKLE_LEAF = "fc/merkle-leaf"
TAG_MERKLE_NODE = "fc/merkle-node"
# "fc/ticket" was the placeholder lottery of block version 1; never reuse it.
TAG_UTXO_SET = "fc/utxo-set"
TAG_GENESIS = "fc/genesis"


def tagged_hasher(tag: str) -> Any:
    """A SHA-256 object already fed the tag prefix, for hashing a long stream."""
    return _tag_midstate(tag).copy()
