"""Domain-separated Merkle trees.

Leaves and inner nodes are hashed under different tags, and an odd node at the end of a
level is carried up unchanged instead of being paired with itself. Together these make
the 2012 duplication trick (CVE-2012-2459: ``[a, b, c]`` and ``[a, b, c, c]`` sharing a
root) impossible, and stop an inner node from being passed off as a leaf (a 64-byte
"transaction" that is really two hashes). The root of an empty list is 32 zero bytes.
"""

from __future__ import annotations

from chain.hashing import TAG_MERKLE_LEAF, TAG_MERKLE_NODE, tagged_hash

EMPTY_ROOT = b"\x00" * 32


def merkle_root(items: list[bytes]) -> bytes:
    """Root over the given 32-byte item hashes, in order."""
    if not items:
        return EMPTY_ROOT
    level = [tagged_hash(TAG_MERKLE_LEAF, h) for h in items]
    while len(level) > 1:
        nxt = [
            tagged_hash(TAG_MERKLE_NODE, level[i] + level[i + 1])
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_proof(items: list[bytes], index: int) -> list[tuple[bool, bytes]]:
    """Sibling path for ``items[index]``: ``(sibling_is_left, sibling_hash)`` from leaf up."""
    if not 0 <= index < len(items):
        raise IndexError("merkle_proof index out of range")
    level = [tagged_hash(TAG_MERKLE_LEAF, h) for h in items]
    path: list[tuple[bool, bytes]] = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append((sibling < index, level[sibling]))
        nxt = [
            tagged_hash(TAG_MERKLE_NODE, level[i] + level[i + 1])
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level, index = nxt, index // 2
    return path


def verify_merkle_proof(item: bytes, path: list[tuple[bool, bytes]], root: bytes) -> bool:
    node = tagged_hash(TAG_MERKLE_LEAF, item)
    for sibling_is_left, sibling in path:
        pair = sibling + node if sibling_is_left else node + sibling
        node = tagged_hash(TAG_MERKLE_NODE, pair)
    return node == root
