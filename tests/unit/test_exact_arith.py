"""Integer primitives and tables of exact work against Python's unbounded integers.

Every primitive must equal its mathematical definition (specs/exact.md §2) on random and
edge-case inputs across its whole declared range, including negative values and the
largest widths, because a primitive that is right "almost everywhere" would split nodes
on the rare input where it is not.
"""

from __future__ import annotations

import itertools
import math
import random

import torch

from workloads.exact import arith, tables

RNG = random.Random(20261202)


def _edge_and_random(limit: int, n: int = 4000, signed: bool = True) -> list[int]:
    values = [0, 1, 2, 3, limit - 1, limit - 2]
    values += [
        (1 << k) + d
        for k in range(limit.bit_length() - 1)
        for d in (-1, 0, 1)
        if 0 <= (1 << k) + d < limit
    ]
    values += [RNG.randrange(limit) for _ in range(n)]
    values += [RNG.randrange(1 << RNG.randrange(1, limit.bit_length())) for _ in range(n)]
    if signed:
        values += [-v for v in values]
    return values


def test_round_shift_is_floor_of_half_up_division() -> None:
    xs = _edge_and_random(1 << 61)
    for s in (0, 1, 2, 7, 16, 31, 40):
        got = arith.round_shift(torch.tensor(xs), s).tolist()
        assert got == [(x + ((1 << s) >> 1)) >> s for x in xs]  # Python >> is floor, like the spec
        assert got == [
            math.floor(x / (1 << s) + 0.5) if abs(x) < 1 << 50 else g
            for x, g in zip(xs, got, strict=True)
        ]
    shifts = [RNG.randrange(0, 40) for _ in xs]
    got = arith.round_shift(torch.tensor(xs), torch.tensor(shifts)).tolist()
    assert got == [(x + ((1 << s) >> 1)) >> s for x, s in zip(xs, shifts, strict=True)]


def test_round_shift_ties_go_up() -> None:
    assert arith.round_shift(torch.tensor([1, 3, -1, -3, 2, -2]), 1).tolist() == [
        1,
        2,
        0,
        -1,
        1,
        -1,
    ]


def test_bit_length_over_the_whole_range() -> None:
    xs = _edge_and_random(1 << 53, signed=False)
    assert arith.bit_length(torch.tensor(xs)).tolist() == [x.bit_length() for x in xs]


def test_isqrt48_is_exact_up_to_2_to_48() -> None:
    xs = _edge_and_random((1 << 48) + 1, signed=False)
    roots = [RNG.randrange(1, 1 << 24) for _ in range(3000)] + [
        (1 << 24) - d for d in range(1, 200)
    ]
    xs += (
        [r * r for r in roots] + [r * r - 1 for r in roots] + [(r + 1) * (r + 1) - 1 for r in roots]
    )
    xs += [1 << 48]
    assert arith.isqrt48(torch.tensor(xs)).tolist() == [math.isqrt(x) for x in xs]


def test_round_div_rounds_half_up() -> None:
    nums = _edge_and_random(1 << 52)
    dens = [RNG.randrange(1, 1 << 31) for _ in nums]
    got = arith.round_div(torch.tensor(nums), torch.tensor(dens)).tolist()
    assert got == [(2 * n + d) // (2 * d) for n, d in zip(nums, dens, strict=True)]
    assert arith.round_div(torch.tensor([5, -5, 7]), torch.tensor([2, 2, 2])).tolist() == [3, -2, 4]


def test_saturate_clamps_symmetrically() -> None:
    x = torch.tensor([-(1 << 40), -(1 << 22), (1 << 22) - 1, 1 << 22, 5])
    assert arith.saturate(x, 22).tolist() == [
        -(1 << 22) + 1,
        -(1 << 22) + 1,
        (1 << 22) - 1,
        (1 << 22) - 1,
        5,
    ]


def test_exp_table_values() -> None:
    exp = tables.exp_table()
    assert exp[0] == 1 << 20 and exp[-1] == 0 and exp[-2] > 0
    assert all(a >= b for a, b in itertools.pairwise(exp))
    for i in (1, 100, 1024, 5000, len(exp) - 2):
        assert abs(exp[i] - math.exp(-i / 1024) * (1 << 20)) <= 0.5 + 1e-6


def test_sigmoid_table_is_symmetric_and_exact() -> None:
    sig = tables.sigmoid_table()
    assert len(sig) == 32769 and sig[16384] == 1 << 15 and sig[0] == 0 and sig[-1] == 1 << 16
    # sigmoid(x) + sigmoid(-x) = 1 exactly, and no entry is a rounding tie
    assert all(sig[i] + sig[32768 - i] == 1 << 16 for i in range(32769))
    for i in (1000, 16000, 16384 + 777, 30000):
        x = i / 1024 - 16
        assert abs(sig[i] - 65536 / (1 + math.exp(-x))) <= 0.5 + 1e-6


def test_rope_tables_are_rotations() -> None:
    cos, sin = tables.rope_tables(16, 10000, 300)
    for p in (0, 1, 17, 299):
        for i in range(8):
            assert cos[p][i] == cos[p][i + 8] and sin[p][i] == -sin[p][i + 8]
            angle = p * 10000 ** (-2 * i / 16)
            assert abs(cos[p][i] - math.cos(angle) * 65536) <= 0.5 + 1e-6
            assert abs(sin[p][i + 8] - math.sin(angle) * 65536) <= 0.5 + 1e-6


def test_tables_are_deterministic() -> None:
    assert tables.exp_table() == tables.exp_table()
    assert tables.rope_tables(64, 100000, 40) == tables.rope_tables(64, 100000, 40)
