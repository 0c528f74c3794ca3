"""The issuance schedule: 50 FC halving every 210,000 blocks sums to just under 21M FC."""

from __future__ import annotations

from itertools import pairwise

import pytest

from chain.amounts import COIN, MAX_MONEY
from chain.params import HALVING_INTERVAL, NETWORKS, ChainParams, block_subsidy

EXPECTED_TOTAL = 2_099_999_997_690_000  # base units; Bitcoin's figure, to the unit


def total_issuance(params: ChainParams) -> int:
    """Sum the subsidy era by era: every block of an era mints the same amount."""
    interval = params.halving_interval
    total = 0
    era = 0
    while True:
        first = era * interval
        subsidy = block_subsidy(first, params)
        assert block_subsidy(first + interval - 1, params) == subsidy  # constant within the era
        if subsidy == 0:
            break
        total += subsidy * interval
        era += 1
    # Once zero, zero for good (including past the 64-halving cut-off).
    for later in (era, era + 1, 63, 64, 65, 1_000):
        assert block_subsidy(later * interval, params) == 0
    return total


@pytest.mark.parametrize("params", list(NETWORKS.values()), ids=list(NETWORKS))
def test_total_issuance_is_exact_and_within_max_money(params: ChainParams) -> None:
    total = total_issuance(params)
    assert total == EXPECTED_TOTAL
    assert total <= MAX_MONEY
    assert MAX_MONEY - total == 2_310_000  # the dust lost to integer halving


def test_schedule_shape() -> None:
    params = NETWORKS["mainnet"]
    assert params.halving_interval == HALVING_INTERVAL == 210_000
    assert block_subsidy(0, params) == 50 * COIN
    assert block_subsidy(HALVING_INTERVAL - 1, params) == 50 * COIN
    assert block_subsidy(HALVING_INTERVAL, params) == 25 * COIN
    eras = [block_subsidy(e * HALVING_INTERVAL, params) for e in range(40)]
    nonzero = [s for s in eras if s]
    assert len(nonzero) == 33  # 50 FC = 5e9 units halves 32 times before reaching zero
    assert nonzero[-1] == 1
    assert all(a // 2 == b for a, b in pairwise(eras))
