"""Coin selection (``wallet.coinselect``): branch and bound, the fallbacks, exact fees.

Fixed cases check each behaviour on numbers worked out by hand: an exact match found
changeless by branch and bound, a fallback with change, sub-dust change folded into the
fee, the insufficient-funds message, subtract-fee semantics, fees equal to ``fee_for`` of
the final size. Hypothesis then draws coin sets, targets, rates and size models and
checks the identities every selection must satisfy:

* normal mode: ``sum(inputs) == target + fee + change``, ``fee >= fee_for(size)`` and
  ``fee == fee_for(size)`` when there is change;
* ``subtract_fee``: ``fee == fee_for(size)`` always, ``sum(inputs) == target + change``
  with change and ``sum(inputs) >= target`` without, the payment
  ``sum(inputs) - fee - change`` positive and not dust;
* no input twice, none worth less than its input fee, change 0 or at least the dust limit;
* the reported waste is the metric recomputed from its definition, never above
  largest-first's, and never above the least waste of any changeless set in the
  branch-and-bound window (found by brute force over small coin sets);
* when the coins' effective value covers the target and fee, no InsufficientFunds.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.policy import DEFAULT_DUST_RELAY_FEE, dust_threshold
from wallet.coinselect import (
    DEFAULT_DUST_LIMIT,
    Candidate,
    InsufficientFunds,
    Selection,
    SizeModel,
    fee_for,
    largest_first,
    select_coins,
)

SIZES = SizeModel(base=100, input=106, change_output=44, change_spend=106)
RATE = 1_000  # 1 unit per byte: input fee 106, base fee 100, cost of change 44 + 106
COST_OF_CHANGE = 150


def coins(*amounts: int) -> list[Candidate]:
    return [Candidate(n.to_bytes(36, "big"), a) for n, a in enumerate(amounts)]


def tx_size(sel: Selection, sizes: SizeModel = SIZES) -> int:
    return sizes.base + len(sel.inputs) * sizes.input + (sizes.change_output if sel.change else 0)


def test_fee_for_rounds_up() -> None:
    assert fee_for(0, 1_000) == 0
    assert fee_for(250, 1_000) == 250
    assert fee_for(1, 1) == 1
    assert fee_for(999, 1) == 1
    assert fee_for(1000, 1) == 1
    assert fee_for(1001, 1) == 2
    assert fee_for(106, 1_234) == 131  # 130.804 up
    assert fee_for(300, 0) == 0


def test_default_dust_limit_is_policy() -> None:
    assert DEFAULT_DUST_LIMIT == dust_threshold(DEFAULT_DUST_RELAY_FEE) == 450


def test_bnb_finds_exact_match_changeless() -> None:
    pool = coins(10_000_000, 3_000_000, 2_000_000, 700_000)
    # 3M + 2M less two input fees and the base fee: an exact changeless match.
    target = 3_000_000 + 2_000_000 - 2 * 106 - 100
    sel = select_coins(pool, target, RATE, SIZES, rng=random.Random(1))
    assert sel.algorithm == "bnb"
    assert sel.change == 0
    assert sorted(c.amount for c in sel.inputs) == [2_000_000, 3_000_000]
    assert sel.fee == fee_for(tx_size(sel), RATE) == 312
    assert sel.waste == 0
    assert sel.total_in == target + sel.fee
    # Largest-first would break the 10M coin and pay for a change output.
    lf = largest_first(pool, target, RATE, SIZES, rng=random.Random(1))
    assert lf.change > 0 and lf.waste == COST_OF_CHANGE > sel.waste


def test_bnb_accepts_excess_within_cost_of_change() -> None:
    pool = coins(10_000_000, 3_000_000, 2_000_000)
    target = 3_000_000 + 2_000_000 - 2 * 106 - 100 - 149  # 149 left over < 150
    sel = select_coins(pool, target, RATE, SIZES, rng=random.Random(1))
    assert sel.algorithm == "bnb" and sel.change == 0
    assert sel.waste == 149
    assert sel.fee == 312 + 149


def test_fallback_makes_change() -> None:
    pool = coins(10_000_000, 7_000_000)
    sel = select_coins(pool, 1_000_000, RATE, SIZES, rng=random.Random(2))
    assert sel.algorithm in ("largest_first", "srd")
    assert len(sel.inputs) == 1
    assert sel.fee == fee_for(100 + 106 + 44, RATE) == 250
    assert sel.change == sel.total_in - 1_000_000 - 250
    assert sel.change >= DEFAULT_DUST_LIMIT
    assert sel.waste == COST_OF_CHANGE
    assert sel.payment == 1_000_000


def test_dust_change_is_folded_into_fee() -> None:
    # Change after the with-change fee of 250 would be 300 < 450: no change output.
    pool = coins(1_000_550)
    sel = select_coins(pool, 1_000_000, RATE, SIZES, rng=random.Random(3))
    assert sel.algorithm != "bnb"  # excess 344 is above the cost of change
    assert sel.change == 0
    assert sel.fee == 550 > fee_for(tx_size(sel), RATE)
    assert sel.waste == 1_000_550 - 106 - 1_000_100
    # With a dust limit of 300 the same change is allowed.
    kept = select_coins(pool, 1_000_000, RATE, SIZES, dust_limit=300, rng=random.Random(3))
    assert kept.change == 300 and kept.fee == 250


def test_insufficient_funds_message() -> None:
    pool = coins(1_000, 2_000, 50)  # the 50-unit coin is worth less than its input fee
    with pytest.raises(InsufficientFunds) as info:
        select_coins(pool, 5_000, RATE, SIZES, rng=random.Random(4))
    err = info.value
    assert err.available == (1_000 - 106) + (2_000 - 106)
    assert err.needed == 5_000 + 100
    message = str(err)
    assert "available 2788 units" in message
    assert "needed 5100 units" in message
    assert "1 coins skipped" in message
    with pytest.raises(InsufficientFunds):
        largest_first(pool, 5_000, RATE, SIZES)


def test_uneconomic_coins_are_skipped() -> None:
    with pytest.raises(InsufficientFunds):
        select_coins(coins(106, 100, 50), 1, RATE, SIZES)
    sel = select_coins(coins(106, 10_000), 1, RATE, SIZES, rng=random.Random(0))
    assert [c.amount for c in sel.inputs] == [10_000]


def test_standard_size_limit() -> None:
    pool = coins(*[1_000] * 50)
    # 50 coins cover it, but at most 2 inputs fit in 400 bytes.
    with pytest.raises(InsufficientFunds, match="standard size"):
        select_coins(pool, 10_000, RATE, SIZES, max_size=400)
    sel = select_coins(pool, 1_500, RATE, SIZES, max_size=400, rng=random.Random(0))
    assert len(sel.inputs) == 2


def test_duplicate_candidates_are_selected_once() -> None:
    pool = coins(600_000, 500_000)
    doubled = pool + pool + pool
    sel = select_coins(doubled, 1_000_000, RATE, SIZES, rng=random.Random(5))
    assert len({c.key for c in sel.inputs}) == len(sel.inputs) == 2
    with pytest.raises(InsufficientFunds):
        select_coins(doubled, 1_100_000, RATE, SIZES)
    with pytest.raises(ValueError, match="two amounts"):
        select_coins([*pool, Candidate(pool[0].key, 1)], 1_000, RATE, SIZES)


def test_subtract_fee_exact_changeless() -> None:
    pool = coins(1_000_000, 5_000_000)
    sel = select_coins(pool, 1_000_000, RATE, SIZES, subtract_fee=True, rng=random.Random(6))
    assert sel.algorithm == "bnb"
    assert [c.amount for c in sel.inputs] == [1_000_000]
    assert sel.change == 0
    assert sel.fee == fee_for(100 + 106, RATE) == 206
    assert sel.payment == 1_000_000 - 206  # the recipient pays the fee
    assert sel.total_in == 1_000_000


def test_subtract_fee_with_change() -> None:
    pool = coins(5_000_000)
    sel = select_coins(pool, 1_000_000, RATE, SIZES, subtract_fee=True, rng=random.Random(7))
    assert sel.change == 4_000_000  # no fee on top: the change is what is not sent
    assert sel.fee == 250
    assert sel.payment == 1_000_000 - 250
    assert sel.total_in == 1_000_000 + sel.change


def test_subtract_fee_changeless_excess_goes_to_recipient() -> None:
    pool = coins(1_000_100)  # 100 over: below the cost of change, so changeless
    sel = select_coins(pool, 1_000_000, RATE, SIZES, subtract_fee=True, rng=random.Random(8))
    assert sel.change == 0
    assert sel.fee == 206
    assert sel.payment == 1_000_100 - 206
    assert sel.waste == 100


def test_subtract_fee_refuses_dust_payment() -> None:
    with pytest.raises(InsufficientFunds, match="dust"):
        select_coins(coins(600), 600, RATE, SIZES, subtract_fee=True)


def test_subtract_fee_needs_target_only() -> None:
    # 1,000,000 covers the target exactly; normal mode would need the fee on top.
    pool = coins(1_000_000)
    select_coins(pool, 1_000_000, RATE, SIZES, subtract_fee=True)
    with pytest.raises(InsufficientFunds):
        select_coins(pool, 1_000_000, RATE, SIZES)


@pytest.mark.parametrize("rate", [1, 999, 1_000, 1_234, 2_500, 7_777, 25_000])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_fee_matches_size_with_change(rate: int, n: int) -> None:
    pool = coins(*[1_000_000] * n)
    target = n * 1_000_000 - n * 200_000  # needs all n coins, leaves change
    sel = select_coins(pool, target, rate, SIZES, rng=random.Random(n))
    assert len(sel.inputs) == n and sel.change > 0
    assert sel.fee == fee_for(SIZES.base + n * SIZES.input + SIZES.change_output, rate)
    assert sel.total_in == target + sel.fee + sel.change


def test_waste_uses_long_term_rate() -> None:
    pool = coins(10_000_000)
    sel = select_coins(pool, 1_000_000, 5_000, SIZES, long_term_fee_rate=1_000)
    delta = fee_for(106, 5_000) - fee_for(106, 1_000)
    assert sel.waste == delta + fee_for(44, 5_000) + fee_for(106, 1_000)
    # Low fees now: spending inputs is cheaper than later, waste goes negative.
    low = select_coins(
        coins(10_000_000, 20_000_000), 25_000_000, 1_000, SIZES, long_term_fee_rate=10_000
    )
    assert low.waste < 0


def test_prefers_fewer_inputs_when_fees_are_high() -> None:
    # A 3-input exact match exists, but at 10x the long-term rate one input with change
    # wastes less: select_coins keeps the lower waste, as Bitcoin Core does.
    pool = coins(50_000_000, 3_000_000, 2_000_000, 1_000_000)
    rate = 10_000
    target = 6_000_000 - 3 * fee_for(106, rate) - fee_for(100, rate)
    sel = select_coins(pool, target, rate, SIZES, long_term_fee_rate=1_000, rng=random.Random(9))
    assert sel.algorithm != "bnb" and len(sel.inputs) == 1
    same_rates = select_coins(pool, target, rate, SIZES, rng=random.Random(9))
    assert same_rates.algorithm == "bnb" and same_rates.waste == 0


def test_deterministic_given_rng() -> None:
    rnd = random.Random(42)
    pool = coins(*[rnd.randrange(10_000, 10_000_000) for _ in range(300)])
    for target in (50_000, 3_000_000, 40_000_000):
        a = select_coins(pool, target, RATE, SIZES, rng=random.Random(7))
        b = select_coins(pool, target, RATE, SIZES, rng=random.Random(7))
        assert a == b


def test_bnb_on_many_equal_coins() -> None:
    # Equal coins must not blow up the search (each order is tried once).
    pool = coins(*[100_000] * 2_000)
    target = 7 * (100_000 - 106) - 100
    sel = select_coins(pool, target, RATE, SIZES, rng=random.Random(10))
    assert sel.algorithm == "bnb" and len(sel.inputs) == 7 and sel.waste == 0


def test_bad_arguments() -> None:
    pool = coins(1_000)
    with pytest.raises(ValueError):
        select_coins(pool, 0, RATE, SIZES)
    with pytest.raises(ValueError):
        select_coins(pool, 10, -1, SIZES)
    with pytest.raises(ValueError):
        select_coins(pool, 10, RATE, SizeModel(100, 0, 44, 106))


# --- properties -------------------------------------------------------------------------


def check_selection(
    sel: Selection,
    pool: list[Candidate],
    target: int,
    rate: int,
    sizes: SizeModel,
    lt_rate: int,
    dust: int,
    subtract_fee: bool,
) -> None:
    keys = [c.key for c in sel.inputs]
    assert len(set(keys)) == len(keys)
    assert set(sel.inputs) <= set(pool)
    input_fee = fee_for(sizes.input, rate)
    assert all(c.amount > input_fee for c in sel.inputs)
    assert sel.change == 0 or sel.change >= max(dust, 1)
    assert sel.fee >= 0
    size = tx_size(sel, sizes)
    total = sel.total_in
    if subtract_fee:
        assert sel.fee == fee_for(size, rate)
        if sel.change:
            assert total == target + sel.change
        else:
            assert total >= target
        assert sel.payment == total - sel.fee - sel.change
        assert sel.payment > 0 and sel.payment >= dust
    else:
        assert total == target + sel.fee + sel.change
        assert sel.fee >= fee_for(size, rate)
        if sel.change:
            assert sel.fee == fee_for(size, rate)
    if sel.algorithm == "bnb":
        assert sel.change == 0
    # The waste metric, recomputed from its definition.
    n = len(sel.inputs)
    delta = input_fee - fee_for(sizes.input, lt_rate)
    if sel.change:
        extra = fee_for(sizes.change_output, rate) + fee_for(sizes.change_spend, lt_rate)
    elif subtract_fee:
        extra = total - target
    else:
        extra = total - n * input_fee - target - fee_for(sizes.base, rate)
    assert sel.waste == n * delta + extra


def brute_force_bnb_waste(
    pool: list[Candidate], target: int, rate: int, sizes: SizeModel, lt_rate: int
) -> int | None:
    """Least waste of any changeless set in the branch-and-bound window (normal mode)."""
    input_fee = fee_for(sizes.input, rate)
    delta = input_fee - fee_for(sizes.input, lt_rate)
    need = target + fee_for(sizes.base, rate)
    upper = need + fee_for(sizes.change_output, rate) + fee_for(sizes.change_spend, lt_rate)
    values = [c.amount - input_fee for c in pool if c.amount > input_fee]
    best = None
    for r in range(1, len(values) + 1):
        for subset in itertools.combinations(values, r):
            s = sum(subset)
            if need <= s <= upper:
                waste = r * delta + s - need
                best = waste if best is None else min(best, waste)
    return best


amounts_st = st.one_of(
    st.integers(1, 2_000),  # around input fees and the dust limit
    st.integers(1, 5_000_000),
    st.sampled_from([10_000, 50_000, 100_000, 1_000_000]),  # duplicates
)
sizes_st = st.builds(
    lambda base, inp, change: SizeModel(base, inp, change, inp),
    st.integers(10, 300),
    st.integers(40, 200),
    st.integers(20, 80),
)


@settings(max_examples=400, deadline=None)
@given(
    amounts=st.lists(amounts_st, max_size=10),
    target_spec=st.one_of(
        st.tuples(st.just("units"), st.one_of(st.integers(1, 3_000), st.integers(1, 15_000_000))),
        st.tuples(st.just("per_mille"), st.integers(1, 1_100)),  # of the coins' total
    ),
    rate=st.one_of(st.sampled_from([0, 1_000, 3_000]), st.integers(0, 30_000)),
    lt_rate=st.one_of(st.none(), st.integers(0, 30_000)),
    dust_limit=st.one_of(st.none(), st.integers(0, 3_000)),
    sizes=sizes_st,
    subtract_fee=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_selection_properties(
    amounts: list[int],
    target_spec: tuple[str, int],
    rate: int,
    lt_rate: int | None,
    dust_limit: int | None,
    sizes: SizeModel,
    subtract_fee: bool,
    seed: int,
) -> None:
    pool = coins(*amounts)
    kind, number = target_spec
    target = number if kind == "units" else max(1, sum(amounts) * number // 1_000)
    lt = rate if lt_rate is None else lt_rate
    dust = DEFAULT_DUST_LIMIT if dust_limit is None else dust_limit
    kwargs = {
        "long_term_fee_rate": lt_rate,
        "dust_limit": dust_limit,
        "subtract_fee": subtract_fee,
    }
    input_fee = fee_for(sizes.input, rate)
    spendable = [c for c in pool if c.amount > input_fee]
    try:
        sel = select_coins(pool, target, rate, sizes, rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]
    except InsufficientFunds as err:
        assert "available" in str(err) and "needed" in str(err)
        if not subtract_fee:
            # Refused only when the effective value really falls short.
            covered = sum(c.amount - input_fee for c in spendable)
            assert covered < target + fee_for(sizes.base, rate)
        else:
            assert sum(c.amount for c in spendable) < target or "dust" in str(err)
        return
    check_selection(sel, pool, target, rate, sizes, lt, dust, subtract_fee)

    try:
        lf = largest_first(pool, target, rate, sizes, rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]
    except InsufficientFunds:
        lf = None
    if lf is not None:
        check_selection(lf, pool, target, rate, sizes, lt, dust, subtract_fee)
        assert sel.waste <= lf.waste
        if sel.algorithm == "bnb" and lf.change == 0:
            assert sel.waste <= lf.waste

    if not subtract_fee:
        best = brute_force_bnb_waste(pool, target, rate, sizes, lt)
        if best is not None:
            assert sel.waste <= best


@settings(max_examples=100, deadline=None)
@given(
    amounts=st.lists(st.integers(10_000, 3_000_000), min_size=2, max_size=9),
    picks=st.lists(st.integers(0, 8), min_size=1, max_size=4, unique=True),
    slack=st.integers(0, COST_OF_CHANGE),
    seed=st.integers(0, 2**32),
)
def test_bnb_finds_planted_match(
    amounts: list[int], picks: list[int], slack: int, seed: int
) -> None:
    """A subset whose effective value lands in the window guarantees a changeless result
    at least as good as that subset (waste = its excess, the rates being equal)."""
    pool = coins(*amounts)
    chosen = [pool[i % len(pool)] for i in dict.fromkeys(i % len(pool) for i in picks)]
    target = sum(c.amount - 106 for c in chosen) - 100 - slack
    sel = select_coins(pool, target, RATE, SIZES, rng=random.Random(seed))
    assert sel.change == 0
    assert sel.waste <= slack
    lf = largest_first(pool, target, RATE, SIZES, rng=random.Random(seed))
    assert sel.waste <= lf.waste


def test_large_wallet() -> None:
    rnd = random.Random(11)
    pool = coins(*[rnd.randrange(10_000, 1_000_000_000) for _ in range(5_000)])
    for target in (77_777, 12_345_678, 3_000_000_000):
        for rate, lt in ((1_000, 1_000), (3_000, 1_000), (1_000, 5_000)):
            sel = select_coins(pool, target, rate, SIZES, long_term_fee_rate=lt, rng=rnd)
            check_selection(sel, pool, target, rate, SIZES, lt, DEFAULT_DUST_LIMIT, False)
            lf = largest_first(pool, target, rate, SIZES, long_term_fee_rate=lt, rng=rnd)
            assert sel.waste <= lf.waste
