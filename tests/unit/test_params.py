"""Chain parameters: networks are distinct, and the data of one is refused by another."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.amounts import COIN, MAX_MONEY
from chain.chainstate import Chainstate, ChainstateError
from chain.checks import check_block
from chain.params import MAINNET, NETWORKS, REGTEST, TESTNET, block_subsidy, params_for


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


def test_unknown_network_name() -> None:
    with pytest.raises(ValueError, match="unknown network 'moonnet'"):
        params_for("moonnet")


def test_datadir_of_another_network_is_refused(tmp_path: Path) -> None:
    Chainstate(tmp_path / "cs", TESTNET).close()
    with pytest.raises(ChainstateError, match="belongs to 'testnet'"):
        Chainstate(tmp_path / "cs", REGTEST)
    cs = Chainstate(tmp_path / "cs", TESTNET)  # still opens for its own network
    assert cs.tip.hash == TESTNET.genesis_hash
    cs.close()


def test_genesis_is_not_checked_like_other_blocks() -> None:
    # Genesis carries no producer signature; it is trusted by construction, never validated.
    from chain.errors import InvalidBlock

    with pytest.raises(InvalidBlock):
        check_block(REGTEST.genesis, REGTEST)
