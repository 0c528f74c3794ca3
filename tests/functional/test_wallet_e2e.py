"""The wallet end to end: ``fc wallet`` commands against a real ``fcd`` regtest process.

Create a wallet, mine to it, wait for maturity, pay a second wallet, confirm; both
balances must be exact to the unit with the fee accounted for. Restoring the first wallet
from its mnemonic into a fresh data directory brings back the same balance and history.
A wrong passphrase and a damaged keystore each give one clear line and change nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from framework import Network, Node, generate, mempool, wait_for

from chain.params import REGTEST, block_subsidy

PASSPHRASE = "correct horse battery staple"
pytestmark = pytest.mark.slow


class Fc:
    """``fc`` as a holder runs it: a process per command, secrets from files."""

    def __init__(self, datadir: Path, node: Node, secrets: Path) -> None:
        self.datadir = datadir
        self.node = node
        self.secrets = secrets
        secrets.mkdir(exist_ok=True)
        (secrets / "pass").write_text(PASSPHRASE + "\n")
        (secrets / "wrong").write_text("not the passphrase\n")

    def run(
        self, *args: str, wallet: str = "default", stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cookie = (self.node.datadir / ".cookie").read_text().strip()
        url = self.node.info["rpc_url"]
        command = [
            sys.executable, "-m", "node.cli", "--network", "regtest", "--datadir", str(self.datadir),
            "--rpc-url", url, "--rpc-token", cookie, "--json", "wallet", "--wallet", wallet, *args,
        ]  # fmt: skip
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)

    def ok(self, *args: str, wallet: str = "default") -> Any:
        done = self.run(*args, wallet=wallet)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def balance(self, wallet: str = "default") -> tuple[int, int, int]:
        b = self.ok("balance", wallet=wallet)
        return b["confirmed"], b["unconfirmed"], b["immature"]


def subsidies(heights: range) -> int:
    return sum(block_subsidy(h, REGTEST) for h in heights)


def test_create_mine_send_confirm_restore(network: Network, tmp_path: Path) -> None:
    (node,) = network.start_nodes(1)
    fc = Fc(tmp_path / "holder", node, tmp_path / "secrets")
    pw = ("--passphrase-file", str(fc.secrets / "pass"))
    created = fc.ok("create", "--words", "12", *pw)
    mnemonic = created["mnemonic"]
    assert len(mnemonic.split()) == 12 and created["xpub"].startswith("tpub")
    fc.ok("create", *pw, wallet="bob")
    alice_address = fc.ok("address")["address"]
    bob_address = fc.ok("address", wallet="bob")["address"]
    assert alice_address.startswith("fcrt1p") and alice_address != bob_address

    # A coinbase of height h may be spent in block h + 100: at tip 100 block 1's is mature.
    generate(node, 100, pay_to=alice_address)
    next_address = fc.ok("address")["address"]  # the paid address is not handed out again
    assert next_address != alice_address
    assert fc.ok("address")["address"] == next_address
    assert fc.ok("address", "--new")["address"] not in (alice_address, next_address)
    assert fc.balance() == (subsidies(range(1, 2)), 0, subsidies(range(2, 101)))

    sent = fc.ok("send", bob_address, "12.5", "--fee-rate", "2000", *pw)
    fee, change = sent["fee"], sent["change"]
    assert sent["amount"] == 1_250_000_000 and fee > 0
    assert change == subsidies(range(1, 2)) - 1_250_000_000 - fee
    wait_for(lambda: sent["txid"] in mempool(node), what="the payment in the mempool")
    # Unconfirmed: the spent coin is gone from confirmed, the change and Bob's coin pending.
    assert fc.balance() == (0, change, subsidies(range(2, 101)))
    assert fc.balance("bob") == (0, 1_250_000_000, 0)

    generate(node, 1)  # to the node's own key: confirms the payment, matures block 2
    alice = fc.balance()
    assert alice == (change + subsidies(range(2, 3)), 0, subsidies(range(3, 101)))
    assert fc.balance("bob") == (1_250_000_000, 0, 0)
    # Value is conserved to the unit: what Alice lost is exactly Bob's gain plus the fee.
    total_mined = subsidies(range(1, 101))
    assert sum(alice) + 1_250_000_000 + fee == total_mined

    history = fc.ok("history")
    payment = next(h for h in history if h["txid"] == sent["txid"])
    assert payment["net"] == -(1_250_000_000 + fee) and payment["height"] == 101
    assert [h["net"] for h in fc.ok("history", wallet="bob")] == [1_250_000_000]

    # Restored into a fresh data directory: the same balance and history, from the chain.
    fresh = Fc(tmp_path / "restored", node, tmp_path / "secrets")
    (tmp_path / "secrets" / "mnemonic").write_text(mnemonic + "\n")
    restored = fresh.ok("restore", "--mnemonic-file", str(tmp_path / "secrets" / "mnemonic"), *pw)
    assert restored["next_receive"] == 1 and restored["next_change"] == 1
    assert fresh.balance() == alice
    assert fresh.ok("history") == history
    assert fresh.ok("xpub") == fc.ok("xpub")
    # Secrets from stdin, as a script gives them: the account key at its path, derived again.
    at_path = fresh.run("xpub", "--path", "m/86h/1h/0h", "--passphrase-stdin", stdin=PASSPHRASE)
    assert at_path.returncode == 0 and json.loads(at_path.stdout)["xpub"] == created["xpub"]

    # Watch-only from the account xpub: the same balance, and it cannot send.
    fc.ok("create", "--watch", created["xpub"], wallet="watch")
    fc.ok("rescan", wallet="watch")
    assert fc.balance("watch") == alice
    refused = fc.run("send", bob_address, "1", *pw, wallet="watch")
    assert refused.returncode == 1 and "watch-only" in refused.stderr

    # --subtract-fee: the recipient's output pays the fee, to the unit.
    bob_before = fc.balance("bob")[0]
    gift = fc.ok("send", bob_address, "1", "--subtract-fee", *pw)
    assert gift["amount"] == 100_000_000 - gift["fee"]
    generate(node, 1)
    assert fc.balance("bob") == (bob_before + 100_000_000 - gift["fee"], 0, 0)


def test_wrong_passphrase_and_damaged_keystore_change_nothing(
    network: Network, tmp_path: Path
) -> None:
    (node,) = network.start_nodes(1)
    fc = Fc(tmp_path / "holder", node, tmp_path / "secrets")
    fc.ok("create", "--passphrase-file", str(fc.secrets / "pass"))
    address = fc.ok("address")["address"]
    generate(node, 100, pay_to=address)
    wallet_file = tmp_path / "holder" / "wallets" / "default.wallet"
    assert wallet_file.stat().st_mode & 0o777 == 0o600
    before = wallet_file.read_bytes()
    pool_before = mempool(node)

    wrong = fc.run("send", address, "1", "--passphrase-file", str(fc.secrets / "wrong"))
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "fc: error: wrong passphrase for this wallet"
    assert wallet_file.read_bytes() == before and mempool(node) == pool_before

    damaged = bytearray(before)
    damaged[damaged.index(b'"secret": "') + 12] ^= 0x01  # one bit of the ciphertext
    wallet_file.write_bytes(bytes(damaged))
    for args in (
        ("balance",),
        ("send", address, "1", "--passphrase-file", str(fc.secrets / "pass")),
    ):
        done = fc.run(*args)
        assert done.returncode == 1 and "is damaged" in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1
    assert wallet_file.read_bytes() == bytes(damaged)  # reported, never replaced
    assert mempool(node) == pool_before

    refused = fc.run("create", "--passphrase-file", str(fc.secrets / "pass"))
    assert refused.returncode == 1 and "already exists" in refused.stderr
    assert wallet_file.read_bytes() == bytes(damaged)
    assert fc.run("send", address, "0.000000001").stderr.count("at most 8 decimals") == 1
