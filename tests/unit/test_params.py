"""Chain parameters: networks are distinct, and the data of one is refused by another."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.amounts import COIN, MAX_MONEY
from chain.chainstate import Chainstate, ChainstateError
from chain.checks import check_block
from chain.contextual import next_target
from chain.params import (
    MAINNET,
    NETWORKS,
    REGTEST,
    TESTNET,
    block_subsidy,
    params_for,
    regtest_with,
    target_for_draws,
)
from tests.exactwork import verify


def test_networks_have_distinct_identities() -> None:
    nets = list(NETWORKS.values())
    assert len({p.magic for p in nets}) == 3
    assert len({p.hrp for p in nets}) == 3
    assert len({p.genesis_hash for p in nets}) == 3
    assert all(len(p.magic) == 4 for p in nets)


def test_block_times_and_issuance() -> None:
    assert (MAINNET.block_time, TESTNET.block_time, REGTEST.block_time) == (300, 30, 0)
    for p in NETWORKS.values():
        assert block_subsidy(0, p) == 50 * COIN
        assert block_subsidy(209_999, p) == 50 * COIN
        assert block_subsidy(210_000, p) == 25 * COIN
        assert block_subsidy(64 * 210_000, p) == 0
        assert p.coinbase_maturity == 100
    assert MAX_MONEY == 21_000_000 * COIN


def test_genesis_is_well_formed_but_unsigned() -> None:
    for p in NETWORKS.values():
        g = p.genesis
        assert g.header.height == 0
        assert g.header.target == p.genesis_target
        assert g.transactions[0].outputs[0].amount == 0  # genesis mints nothing spendable


def test_regtest_genesis_target_is_easiest() -> None:
    assert REGTEST.genesis_target == REGTEST.max_target == 2**256 - 1
    assert TESTNET.genesis_target < TESTNET.max_target


def test_targets_are_given_in_draws() -> None:
    assert target_for_draws(1) == 2**256 - 1  # every draw wins
    assert target_for_draws(2) == 2**255 - 1
    assert TESTNET.genesis_target == target_for_draws(30)
    assert TESTNET.max_target == target_for_draws(4)
    assert MAINNET.genesis_target == target_for_draws(3_000)
    assert MAINNET.max_target == target_for_draws(30)


def test_genesis_carries_no_draw() -> None:
    for p in NETWORKS.values():
        work = p.genesis.header.work
        assert (work.worker_key, work.counter, work.tokens) == (b"\x00" * 32, 0, b"")


def test_regtest_lottery_is_the_tiny_model() -> None:
    lottery = REGTEST.lottery
    assert (lottery.arch, lottery.max_new_tokens) == ("exact-tiny", 8)
    assert TESTNET.lottery.arch == MAINNET.lottery.arch == "exact-smollm2-135m"
    # The standing prompt set is the same everywhere; the job differs with the model.
    assert len({p.lottery.standing_root for p in NETWORKS.values()}) == 1
    assert REGTEST.lottery.standing_job.job_id != TESTNET.lottery.standing_job.job_id


def test_regtest_with_a_fixed_harder_target() -> None:
    assert regtest_with(1) is REGTEST
    hard = regtest_with(1_000)
    assert hard.block_target == target_for_draws(1_000)
    # The same network: magic, genesis and lottery; only the target of blocks moves.
    assert (hard.name, hard.magic, hard.genesis_hash) == (
        "regtest",
        REGTEST.magic,
        REGTEST.genesis_hash,
    )
    assert hard.lottery == REGTEST.lottery
    assert next_target(hard, REGTEST.genesis_time + 10**6, 5) == target_for_draws(1_000)
    assert next_target(REGTEST, REGTEST.genesis_time + 10**6, 5) == REGTEST.genesis_target
    with pytest.raises(ValueError, match="at least 1"):
        regtest_with(0)


def test_unknown_network_name() -> None:
    with pytest.raises(ValueError, match="unknown network 'moonnet'"):
        params_for("moonnet")


def test_datadir_of_another_network_is_refused(tmp_path: Path) -> None:
    Chainstate(tmp_path / "cs", TESTNET, verify).close()
    with pytest.raises(ChainstateError, match="belongs to 'testnet'"):
        Chainstate(tmp_path / "cs", REGTEST, verify)
    cs = Chainstate(tmp_path / "cs", TESTNET, verify)  # still opens for its own network
    assert cs.tip.hash == TESTNET.genesis_hash
    cs.close()


def test_genesis_is_not_checked_like_other_blocks() -> None:
    # Genesis carries no producer signature; it is trusted by construction, never validated.
    from chain.errors import InvalidBlock

    with pytest.raises(InvalidBlock):
        check_block(REGTEST.genesis, REGTEST)
