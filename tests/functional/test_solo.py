"""The README's main job: a regtest node producing blocks with real payments, then
useful work (an embedding job and a training sweep) run and audited."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chain.chainstate import Chainstate
from chain.params import REGTEST
from tests.exactwork import verify


def test_solo_node_produces_blocks_with_payments_and_survives_reopen(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "testnet.solo",
            "--datadir",
            str(tmp_path),
            "--blocks",
            "105",
            "--exact-model",
            "tiny",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "reopened from disk: same tip and commitment" in run.stdout
    assert "reindexed from stored blocks: same commitment" in run.stdout
    assert "refused" not in run.stdout
    # The useful work: an embedding job and a training sweep, each audited and passed.
    assert run.stdout.count("audit pass:") == 2 and "FAIL" not in run.stdout
    assert run.stdout.count("holdout accuracy") == 4
    # One exact draw, re-checked bit for bit.
    assert "draw of 64 tokens" in run.stdout and "exact re-check pass" in run.stdout
    cs = Chainstate(tmp_path / "chainstate", REGTEST, verify)
    try:
        assert cs.height == 105
        # Past maturity the blocks carry payments, not just a coinbase.
        late = cs.get_block(cs.active[103])
        assert late is not None and len(late.transactions) > 1
        coins, supply = cs.utxo_stats()
        # The producer claims every fee, so the supply is exactly the subsidies paid.
        assert supply == 105 * 50 * 10**8
        assert coins > 106
    finally:
        cs.close()
