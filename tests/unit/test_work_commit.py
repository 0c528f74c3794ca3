"""Result commitments: leaves bind position, unit and input; proofs check one item."""

from __future__ import annotations

import hashlib

from chain.merkle import merkle_root
from workloads import commit


def _setup() -> tuple[list[bytes], list[list[bytes]], list[list[tuple[int, bytes, bytes]]]]:
    unit_ids = [hashlib.sha256(b"unit %d" % u).digest() for u in range(3)]
    items = [
        [
            (u * 4 + k, hashlib.sha256(b"in %d" % (u * 4 + k)).digest(), b"out %d" % (u * 4 + k))
            for k in range(4 if u < 2 else 1)
        ]
        for u in range(3)
    ]
    leaves = [[commit.item_leaf(unit_ids[u], i, h, o) for i, h, o in items[u]] for u in range(3)]
    return unit_ids, leaves, items


def test_every_item_proves_against_the_batch_root() -> None:
    unit_ids, leaves, items = _setup()
    roots = [
        commit.unit_root(
            unit_ids[u],
            [i for i, _, _ in items[u]],
            [h for _, h, _ in items[u]],
            [o for _, _, o in items[u]],
        )
        for u in range(3)
    ]
    batch = commit.batch_root(roots)
    for u in range(3):
        for position, (index, input_hash, output) in enumerate(items[u]):
            proof = commit.prove_item(unit_ids, leaves, u, position, index, input_hash, output)
            assert proof.unit_root == roots[u]
            assert proof.verify(batch)


def test_a_proof_fails_for_another_output_position_unit_or_input() -> None:
    unit_ids, leaves, items = _setup()
    index, input_hash, output = items[1][2]
    proof = commit.prove_item(unit_ids, leaves, 1, 2, index, input_hash, output)
    batch = commit.batch_root([merkle_root(unit) for unit in leaves])
    assert proof.verify(batch)
    forged = [
        proof.__class__(**{**proof.__dict__, "output": b"out 999"}),
        proof.__class__(**{**proof.__dict__, "index": index + 1}),
        proof.__class__(**{**proof.__dict__, "unit_id": unit_ids[0]}),
        proof.__class__(**{**proof.__dict__, "input_hash": items[1][1][1]}),
    ]
    assert not any(p.verify(batch) for p in forged)
