"""Merkle trees: roots, proofs, and the two classic ambiguities made impossible."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.hashing import TAG_MERKLE_LEAF, TAG_MERKLE_NODE, tagged_hash
from chain.merkle import EMPTY_ROOT, merkle_proof, merkle_root, verify_merkle_proof

item = st.binary(min_size=32, max_size=32)
items = st.lists(item, min_size=1, max_size=40)


def leaf(h: bytes) -> bytes:
    return tagged_hash(TAG_MERKLE_LEAF, h)


def node(left: bytes, right: bytes) -> bytes:
    return tagged_hash(TAG_MERKLE_NODE, left + right)


def reference_root(hashes: list[bytes]) -> bytes:
    """RFC 6962's recursive definition (split at the largest power of two below n).

    Carrying an odd node up a level, as ``chain.merkle`` does, builds exactly this tree;
    computing it another way checks the level-by-level code."""
    if len(hashes) == 1:
        return leaf(hashes[0])
    split = 1
    while split * 2 < len(hashes):
        split *= 2
    return node(reference_root(hashes[:split]), reference_root(hashes[split:]))


def h(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_empty_and_single() -> None:
    assert merkle_root([]) == EMPTY_ROOT == b"\x00" * 32
    assert merkle_root([h(1)]) == leaf(h(1))
    assert merkle_root([h(1)]) != h(1)  # even one item is hashed as a leaf


def test_small_trees_by_hand() -> None:
    a, b, c, d, e = (h(n) for n in range(1, 6))
    assert merkle_root([a, b]) == node(leaf(a), leaf(b))
    assert merkle_root([a, b, c]) == node(node(leaf(a), leaf(b)), leaf(c))
    ab_cd = node(node(leaf(a), leaf(b)), node(leaf(c), leaf(d)))
    assert merkle_root([a, b, c, d]) == ab_cd
    assert merkle_root([a, b, c, d, e]) == node(ab_cd, leaf(e))


@given(items)
def test_root_matches_reference(hashes: list[bytes]) -> None:
    assert merkle_root(hashes) == reference_root(hashes)


@given(items, st.data())
def test_root_commits_to_order_and_content(hashes: list[bytes], data: st.DataObject) -> None:
    root = merkle_root(hashes)
    i = data.draw(st.integers(0, len(hashes) - 1))
    changed = list(hashes)
    changed[i] = bytes([changed[i][0] ^ 1]) + changed[i][1:]
    assert merkle_root(changed) != root
    if len(set(hashes)) > 1:
        assert merkle_root(hashes[::-1]) != root or hashes[::-1] == hashes
    assert merkle_root(hashes[:-1]) != root
    assert merkle_root([*hashes, h(0)]) != root


def test_cve_2012_2459_duplicated_tail() -> None:
    a, b, c = h(1), h(2), h(3)
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])
    assert merkle_root([a]) != merkle_root([a, a])
    five = [h(n) for n in range(5)]
    assert merkle_root(five) != merkle_root([*five, five[-1]])
    six = [h(n) for n in range(6)]
    assert merkle_root(six) != merkle_root([*six, *six[-2:]])


@given(items.filter(lambda xs: len(xs) % 2 == 1))
def test_duplicating_the_odd_last_item_changes_the_root(hashes: list[bytes]) -> None:
    assert merkle_root(hashes) != merkle_root([*hashes, hashes[-1]])


def test_inner_node_is_not_a_leaf() -> None:
    """A 64-byte "transaction" that is really two child hashes cannot stand for them."""
    a, b, c, d = h(1), h(2), h(3), h(4)
    left, right = node(leaf(a), leaf(b)), node(leaf(c), leaf(d))
    root = merkle_root([a, b, c, d])
    assert root == node(left, right)
    # The inner nodes presented as leaves give another root...
    assert merkle_root([left, right]) != root
    # ...and cannot be proven as members of the real tree.
    assert not verify_merkle_proof(left, [(False, right)], root)
    assert not verify_merkle_proof(right, [(True, left)], root)
    # Leaf and node hashing are separated by their tags, not by luck.
    assert leaf(a + b) != node(a, b)
    assert tagged_hash(TAG_MERKLE_LEAF, h(9)) != tagged_hash(TAG_MERKLE_NODE, h(9))


@given(items, st.data())
def test_every_proof_verifies(hashes: list[bytes], data: st.DataObject) -> None:
    root = merkle_root(hashes)
    index = data.draw(st.integers(0, len(hashes) - 1))
    path = merkle_proof(hashes, index)
    assert verify_merkle_proof(hashes[index], path, root)
    assert len(path) <= max(1, (len(hashes) - 1).bit_length())


def test_proofs_for_all_sizes_and_positions() -> None:
    for n in range(1, 34):
        hashes = [h(k) for k in range(n)]
        root = merkle_root(hashes)
        for i in range(n):
            path = merkle_proof(hashes, i)
            assert verify_merkle_proof(hashes[i], path, root)
            assert not verify_merkle_proof(h(1000), path, root)
            other = hashes[(i + 1) % n]
            if n > 1:
                assert not verify_merkle_proof(other, path, root)


@given(st.lists(item, min_size=2, max_size=40, unique=True), st.data())
def test_tampered_proofs_fail(hashes: list[bytes], data: st.DataObject) -> None:
    root = merkle_root(hashes)
    index = data.draw(st.integers(0, len(hashes) - 1))
    path = merkle_proof(hashes, index)
    assert path
    k = data.draw(st.integers(0, len(path) - 1))
    is_left, sibling = path[k]
    # (Distinct items: with equal ones a sibling can equal its partner, making a side swap moot.)
    flipped_side = [*path[:k], (not is_left, sibling), *path[k + 1 :]]
    assert not verify_merkle_proof(hashes[index], flipped_side, root)
    bad_sibling = bytes([sibling[0] ^ 0x80]) + sibling[1:]
    altered = [*path[:k], (is_left, bad_sibling), *path[k + 1 :]]
    assert not verify_merkle_proof(hashes[index], altered, root)
    assert not verify_merkle_proof(hashes[index], path[:-1], root)
    assert not verify_merkle_proof(hashes[index], path, bytes(32))


def test_proof_index_out_of_range() -> None:
    with pytest.raises(IndexError):
        merkle_proof([h(1)], 1)
    with pytest.raises(IndexError):
        merkle_proof([h(1)], -1)
    with pytest.raises(IndexError):
        merkle_proof([], 0)
