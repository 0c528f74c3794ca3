"""``fc wallet send``'s fee guard and its one fee-rate unit (specs/wallet.md §4).

``fc`` runs through click's ``CliRunner`` with a real keystore; the node it talks to is a
small in-memory stand-in (the wallet's whole view of a node is ``get`` and ``post``):
one confirmed 10 FC coin and one 200 FC coin on the wallet's first receive address, a
fee estimate, and a list of what was posted to ``/tx``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from chain.amounts import COIN
from chain.params import REGTEST
from node.cli import Settings, cli
from tests.chainbuilder import BOB, key
from wallet.address import encode_address
from wallet.amounts import AmountError, parse_fee_rate_kb
from wallet.keys import RECEIVE, Account
from wallet.keystore import Keystore
from wallet.wallet import fee_guard

PASSPHRASE = "fee guard passphrase"
BOB_ADDRESS = encode_address(key(BOB), REGTEST)
COINS = (10 * COIN, 200 * COIN)


@dataclass
class FakeNode:
    """What the wallet asks of a node, answered from memory."""

    funded: str
    fee_rate: int = 1_000
    min_fee_rate: int = 1_000
    posted: list[dict[str, Any]] = field(default_factory=list)

    def get(self, path: str, **params: Any) -> Any:
        if path == "/fees/estimate":
            return {
                "fee_rate": self.fee_rate,
                "min_fee_rate": self.min_fee_rate,
                "mempool_bytes": 0,
                "basis": "floor",
            }
        address = path.split("/")[2]
        if path.endswith("/coins"):
            coins = [] if address != self.funded else COINS
            return {
                "coins": [
                    {
                        "txid": f"{n + 1:064x}",
                        "vout": 0,
                        "amount": amount,
                        "height": 5,
                        "coinbase": False,
                        "mature": True,
                        "spent_in_mempool": None,
                    }
                    for n, amount in enumerate(coins)
                ]
            }
        if path.endswith("/history"):
            return {"entries": [], "next_cursor": None}
        if path.endswith("/unconfirmed"):
            return {"received": [], "spent": []}
        raise AssertionError(f"unexpected GET {path}")

    def post(self, path: str, body: dict[str, Any]) -> Any:
        assert path == "/tx"
        self.posted.append(body)
        return {"txid": "00" * 32}


@pytest.fixture(scope="module")
def datadir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fee-guard")
    (root / "pass").write_text(PASSPHRASE + "\n")
    result = fc(root, "create", "--words", "12")
    assert result.exit_code == 0, (result.stderr, result.exception)
    return root


@pytest.fixture
def node(datadir: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    keystore = Keystore.load(datadir / "wallets" / "default.wallet")
    pubkey = Account.from_xpub(keystore.xpub, REGTEST).pubkey(RECEIVE, 0)
    fake = FakeNode(encode_address(pubkey, REGTEST))
    monkeypatch.setattr(Settings, "node", lambda self: fake)
    return fake


def fc(datadir: Path, *args: str) -> Result:
    command = ["--network", "regtest", "--datadir", str(datadir), "--json", "wallet", *args]
    if args[0] in ("create", "send"):
        command += ["--passphrase-file", str(datadir / "pass")]
    return CliRunner().invoke(cli, command)


def send(datadir: Path, amount: str, *options: str) -> Result:
    return fc(datadir, "send", BOB_ADDRESS, amount, *options)


def sent(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert result.stderr == ""
    return json.loads(result.stdout)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# The case: 0.1 FC at a million units a byte (10**9 per 1,000 bytes) pays 2.04 FC.
HUGE = str(10**9)


def test_a_huge_fee_rate_is_refused_with_one_line_and_nothing_sent(
    datadir: Path, node: FakeNode
) -> None:
    line = one_line_error(send(datadir, "0.1", "--fee-rate", HUGE))
    assert line.startswith("fc: error: fee 2.04000000 FC to send 0.10000000 FC")
    assert "more than 10% of the amount" in line and "--force" in line
    assert node.posted == []


def test_a_fee_over_the_absolute_cap_is_refused_even_when_small_against_the_amount(
    datadir: Path, node: FakeNode
) -> None:
    # 2.04 FC is 2 % of 100 FC, but above the 1 FC cap and far above the node's rate.
    line = one_line_error(send(datadir, "100", "--fee-rate", HUGE))
    assert "fee 2.04000000 FC to send 100.00000000 FC" in line
    assert "more than 1.00000000 FC" in line and "--force" in line
    assert node.posted == []


def test_force_pays_the_fee_the_guard_refuses(datadir: Path, node: FakeNode) -> None:
    data = sent(send(datadir, "0.1", "--fee-rate", HUGE, "--force"))
    assert data["fee"] == 204_000_000 and data["amount"] == 10_000_000
    assert data["fee_rate"] == 10**9
    assert len(node.posted) == 1


def test_a_normal_fee_rate_is_unaffected(datadir: Path, node: FakeNode) -> None:
    data = sent(send(datadir, "0.1", "--fee-rate", "2000"))
    assert data["fee"] == 408 and data["fee_rate"] == 2000  # 204 bytes at 2 units a byte
    assert len(node.posted) == 1
    # Without --fee-rate: the node's estimate, in the same unit.
    node.fee_rate = 3000
    assert sent(send(datadir, "0.1"))["fee_rate"] == 3000
    assert len(node.posted) == 2


def test_a_high_fee_within_ten_times_the_node_estimate_passes(
    datadir: Path, node: FakeNode
) -> None:
    node.fee_rate = 10**8  # a crowded pool: 0.204 FC for this size
    data = sent(send(datadir, "0.1", "--fee-rate", HUGE))
    assert data["fee"] == 204_000_000 and len(node.posted) == 1


def test_the_flag_and_the_json_share_one_unit(datadir: Path, node: FakeNode) -> None:
    # Units per 1,000 bytes, as /fees/estimate and /mempool report: what is typed comes back.
    assert parse_fee_rate_kb("1500") == 1500 and parse_fee_rate_kb(" 7 ") == 7
    for bad in ("1.5", "0", "-1", "1e3", "x", "", str(10**9 + 1)):
        with pytest.raises(AmountError):
            parse_fee_rate_kb(bad)
    assert sent(send(datadir, "0.1", "--fee-rate", "1500"))["fee_rate"] == 1500
    line = one_line_error(send(datadir, "0.1", "--fee-rate", "1.5"))
    assert "units per 1,000 bytes" in line


def test_the_guard_rule() -> None:
    # 204 bytes at 1000 units per 1,000 bytes: the node asks 204 units.
    assert fee_guard(2040, 100, 204, 1000) is None  # 10x the node's fee is still fine
    assert fee_guard(2041, 100_000, 204, 1000) is None  # above 10x, but 2 % and under 1 FC
    assert fee_guard(2041, 20_000, 204, 1000) is not None  # above 10x and above 10 %
    assert fee_guard(COIN + 1, 100 * COIN, 204, 1000) is not None  # above 10x and 1 FC
    assert fee_guard(COIN + 1, 100 * COIN, 204, 10**9) is None  # the node asks that much
