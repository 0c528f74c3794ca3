"""Commitments: how a worker binds itself to its outputs before anyone checks them.

Each item's output is canonical bytes (msgpack, floats as float32 little-endian), and its
**leaf** hashes them together with everything that says *which* item this is::

    leaf(item)   = H_"fc/work-item"(pack([unit_id, index, input_hash, output]))
    unit_root    = merkle_root(leaves of the unit's items, in item order)
    batch_root   = merkle_root(unit roots of the batch, in unit order)

``unit_id`` already commits to the job (``chain.jobs``), so a leaf moved to another
position, another unit or another job, or answered for another input, no longer fits its
root: reordered items and outputs copied from another unit fail before any model runs.
The trees are ``chain.merkle``'s (domain-separated leaves and nodes), so a proof for one
item is a list of sibling hashes anyone can check against the batch root.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.encoding import pack
from chain.hashing import tagged_hash
from chain.merkle import merkle_proof, merkle_root, verify_merkle_proof

TAG_WORK_ITEM = "fc/work-item"


def item_leaf(unit_id: bytes, index: int, input_hash: bytes, output: bytes) -> bytes:
    return tagged_hash(TAG_WORK_ITEM, pack([unit_id, index, input_hash, output]))


def unit_root(
    unit_id: bytes, indices: range | list[int], input_hashes: list[bytes], outputs: list[bytes]
) -> bytes:
    if not len(indices) == len(input_hashes) == len(outputs):
        raise ValueError("one input hash and one output per item")
    leaves = [
        item_leaf(unit_id, i, h, out)
        for i, h, out in zip(indices, input_hashes, outputs, strict=True)
    ]
    return merkle_root(leaves)


def batch_root(unit_roots: list[bytes]) -> bytes:
    return merkle_root(unit_roots)


@dataclass(frozen=True)
class ItemProof:
    """Everything needed to check one item's output against a batch root."""

    unit_id: bytes
    index: int
    input_hash: bytes
    output: bytes
    item_path: list[tuple[bool, bytes]]  # leaf -> unit root
    unit_root: bytes
    unit_path: list[tuple[bool, bytes]]  # unit root -> batch root

    def verify(self, root: bytes) -> bool:
        leaf = item_leaf(self.unit_id, self.index, self.input_hash, self.output)
        return verify_merkle_proof(leaf, self.item_path, self.unit_root) and verify_merkle_proof(
            self.unit_root, self.unit_path, root
        )


def prove_item(
    unit_ids: list[bytes],
    unit_leaves: list[list[bytes]],
    unit: int,
    position: int,
    index: int,
    input_hash: bytes,
    output: bytes,
) -> ItemProof:
    """The proof for the item at ``position`` within unit ``unit`` (``unit_leaves`` are the
    leaves of every unit of the batch, so the unit path can be built)."""
    roots = [merkle_root(leaves) for leaves in unit_leaves]
    return ItemProof(
        unit_ids[unit],
        index,
        input_hash,
        output,
        merkle_proof(unit_leaves[unit], position),
        roots[unit],
        merkle_proof(roots, unit),
    )
