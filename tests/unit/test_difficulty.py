"""ASERT difficulty: on schedule nothing moves, each halflife off doubles or halves it,
results are clamped to [1, max_target], and every step is integer arithmetic."""

from __future__ import annotations

import ast
import inspect
from math import isqrt

from hypothesis import given
from hypothesis import strategies as st

import chain.difficulty
from chain.contextual import next_target
from chain.difficulty import RADIX, asert_target, block_work
from chain.params import MAINNET, REGTEST, TESTNET

ANCHOR_TIME = 1_000_000
T = 300  # block time
H = 2 * 24 * 60 * 60  # halflife
MAX = 2**244

anchor_targets = st.integers(2**32, 2**230)
heights = st.integers(0, 10_000_000)


def target_at(
    anchor: int, height: int, offset: int, halflife: int = H, max_target: int = MAX
) -> int:
    """Target for the child of a parent at ``height`` whose time is ``offset`` seconds
    behind (positive) or ahead of (negative) the ideal schedule."""
    parent_time = ANCHOR_TIME + T * height + offset
    return asert_target(anchor, ANCHOR_TIME, parent_time, height, T, halflife, max_target)


def within(actual: int, expected: int, parts_per_10k: int) -> bool:
    """|actual - expected| <= expected * parts/10000, in integers."""
    return abs(actual - expected) * 10_000 <= expected * parts_per_10k


@given(anchor_targets, heights)
def test_on_schedule_the_target_is_unchanged(anchor: int, height: int) -> None:
    assert target_at(anchor, height, 0) == anchor


@given(anchor_targets, heights)
def test_one_halflife_behind_doubles(anchor: int, height: int) -> None:
    target = target_at(anchor, height, H)
    assert within(target, 2 * anchor, 2)  # 0.02 %
    assert target == 2 * anchor  # whole halflives are exact shifts


@given(anchor_targets, heights)
def test_one_halflife_ahead_halves(anchor: int, height: int) -> None:
    target = target_at(anchor, height, -H)
    assert within(target, anchor // 2, 2)
    assert target == anchor // 2


@given(anchor_targets, heights, st.integers(-40, 12))
def test_whole_halflives_are_powers_of_two(anchor: int, height: int, k: int) -> None:
    target = target_at(anchor, height, k * H)
    expected = anchor << k if k >= 0 else anchor >> -k
    assert target == max(1, expected)


@given(anchor_targets, heights)
def test_half_a_halflife_is_root_two(anchor: int, height: int) -> None:
    behind = target_at(anchor, height, H // 2)
    ahead = target_at(anchor, height, -H // 2)
    assert within(behind, isqrt(2 * anchor * anchor), 2)
    assert within(ahead, isqrt(anchor * anchor // 2), 2)


@given(anchor_targets, heights, st.integers(-5 * H, 5 * H))
def test_later_parent_never_gives_a_harder_target(anchor: int, height: int, offset: int) -> None:
    assert target_at(anchor, height, offset) <= target_at(anchor, height, offset + 1)
    assert target_at(anchor, height, offset) <= target_at(anchor, height, offset + 600)


def test_factor_approximation_over_every_fraction() -> None:
    """The cubic stands for 2**(frac/65536) to within 0.013 %, and never decreases."""
    anchor = 1 << 80
    previous = 0
    for frac in range(RADIX):
        offset = -(-frac * H // RADIX)  # smallest offset whose 16.16 exponent is frac
        target = target_at(anchor, 0, offset)
        ideal = anchor * 2 ** (frac / RADIX)  # float only in the test, as the yardstick
        assert abs(target - ideal) <= ideal * 0.00013, frac
        assert target >= previous
        previous = target


@given(anchor_targets, heights, st.integers(1, 300 * H))
def test_clamped_to_max_target(anchor: int, height: int, extra: int) -> None:
    target = target_at(anchor, height, 250 * H + extra)  # anchor >= 2**32: past 2**244
    assert target == MAX
    assert target_at(MAX, height, 1) == MAX  # at the limit, any lateness stays at the limit


@given(anchor_targets, heights, st.integers(0, 10**9))
def test_never_below_one(anchor: int, height: int, extra: int) -> None:
    assert target_at(anchor, height, -300 * H - extra) == 1
    assert target_at(1, height, -H) == 1  # 1 halved would be 0: clamped up to 1


@given(st.integers(1, 2**256 - 1), heights, st.integers(-400 * H, 400 * H))
def test_always_an_int_in_range(anchor: int, height: int, offset: int) -> None:
    target = target_at(anchor, height, offset, max_target=2**256 - 1)
    assert type(target) is int
    assert 1 <= target <= 2**256 - 1


def test_huge_values_stay_exact() -> None:
    """Floats would lose these bits; integer arithmetic keeps every one."""
    anchor = 2**200 + 12345
    assert target_at(anchor, 7, 3 * H, max_target=2**256 - 1) == anchor << 3
    assert target_at(anchor, 7, -3 * H) == anchor >> 3
    assert target_at(2**255 + 1, 0, 0, max_target=2**256 - 1) == 2**255 + 1


def test_source_uses_no_floats() -> None:
    """Consensus arithmetic must be bit-exact everywhere: no float literals, no true
    division, no float(), no math module in chain/difficulty.py."""
    tree = ast.parse(inspect.getsource(chain.difficulty))
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), node.lineno
        assert not isinstance(node, ast.Div), "true division"
        if isinstance(node, ast.Name):
            assert node.id not in ("float", "math", "round"), node.id
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any(n in ("math", "decimal", "fractions") for n in names)


def test_next_target_per_network() -> None:
    # Regtest never retargets.
    assert next_target(REGTEST, REGTEST.genesis_time + 10**6, 5) == REGTEST.genesis_target
    for p in (MAINNET, TESTNET):
        on_schedule = p.genesis_time + p.block_time * 1000
        assert next_target(p, on_schedule, 1000) == p.genesis_target
        late = on_schedule + p.asert_halflife
        assert next_target(p, late, 1000) == min(2 * p.genesis_target, p.max_target)
        early = on_schedule - p.asert_halflife
        assert next_target(p, early, 1000) == p.genesis_target // 2
        assert next_target(p, on_schedule + 100 * p.asert_halflife, 1000) == p.max_target


def test_block_work() -> None:
    assert block_work(2**256 - 1) == 1
    assert block_work(2**255 - 1) == 2
    assert block_work(0) == 2**256
    assert block_work(MAINNET.genesis_target) > block_work(MAINNET.max_target)
