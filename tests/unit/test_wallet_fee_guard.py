"""``fc wallet send``'s fee guard and its one fee-rate unit (specs/wallet.md §4).

``fc`` runs through click's ``CliRunner`` with a real keystore against a real node: a
:class:`tests.rpcnode.ServerThread` serving a ``NodeCore`` on a copy of the mined base
chain over HTTP, reached with ``--rpc-url``/``--rpc-token``. The wallet is funded
honestly: a signed transfer of ten of the producer's mature coinbases pays its first
receive address twelve 10 FC coins and two 150 FC coins, submitted with ``fc send`` and
mined with ``fc generate``. What was submitted is read back from the node's ``/mempool``.

The node's estimate is its floor unless more than a block's worth (2 MB) is pooled, which
cannot be arranged here quickly; so "a high fee within 10x a high node estimate passes"
is checked on :func:`fee_guard` itself (``test_the_guard_rule``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from chain.amounts import COIN
from chain.params import REGTEST
from chain.policy import DEFAULT_MIN_RELAY_FEE
from chain.transaction import TxOut
from node.cli import cli
from tests.chainbuilder import BOB, BaseChain, key, pay
from tests.rpcnode import ServerThread, copy_base, mine_base
from wallet.address import encode_address
from wallet.amounts import AmountError, parse_fee_rate_kb
from wallet.keys import RECEIVE, Account
from wallet.keystore import Keystore
from wallet.wallet import fee_guard

PASSPHRASE = "fee guard passphrase"
BOB_ADDRESS = encode_address(key(BOB), REGTEST)
FUNDING_FEE = 10_000


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseChain:
    return mine_base(tmp_path_factory.mktemp("fee-guard-base"))


@pytest.fixture(scope="module")
def server(base: BaseChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    datadir = copy_base(base, tmp_path_factory.mktemp("fee-guard-node") / "node")
    running = ServerThread(datadir).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def datadir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fee-guard")
    (root / "pass").write_text(PASSPHRASE + "\n")
    result = fc(root, None, "create", "--words", "12")  # no node needed to create one
    assert result.exit_code == 0, (result.stderr, result.exception)
    return root


@pytest.fixture(scope="module")
def funded(datadir: Path, server: ServerThread, base: BaseChain) -> str:
    """The wallet's first receive address, paid by a real, mined transaction."""
    keystore = Keystore.load(datadir / "wallets" / "default.wallet")
    pubkey = Account.from_xpub(keystore.xpub, REGTEST).pubkey(RECEIVE, 0)
    coins = base.mature(10)  # 10 x 50 FC
    outputs = [TxOut(10 * COIN, pubkey)] * 12 + [TxOut(150 * COIN, pubkey)] * 2
    change = sum(c.amount for c in coins) - sum(o.amount for o in outputs) - FUNDING_FEE
    tx = pay(coins, [*outputs, TxOut(change, key(BOB))])
    rpc = ["--rpc-url", server.url, "--rpc-token", server.token]
    submitted = CliRunner().invoke(cli, [*rpc, "send", "-"], input=tx.encoded.hex() + "\n")
    assert submitted.exit_code == 0, (submitted.stdout, submitted.stderr, submitted.exception)
    assert submitted.stdout.strip() == tx.txid.hex()
    mined = CliRunner().invoke(cli, [*rpc, "generate", "1", "--to", BOB_ADDRESS])
    assert mined.exit_code == 0, (mined.stdout, mined.stderr, mined.exception)
    assert tx.txid.hex() not in mempool(server)  # confirmed, not pooled
    return encode_address(pubkey, REGTEST)


@pytest.fixture
def node(server: ServerThread, funded: str) -> ServerThread:
    return server


def rpc_get(server: ServerThread, path: str) -> Any:
    response = httpx.get(
        server.url + path, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )
    response.raise_for_status()
    return response.json()


def mempool(server: ServerThread) -> list[str]:
    data = rpc_get(server, "/mempool")
    assert not data["truncated"]
    txids: list[str] = data["txids"]
    return txids


def fc(datadir: Path, server: ServerThread | None, *args: str) -> Result:
    command = ["--network", "regtest", "--datadir", str(datadir)]
    if server is not None:
        command += ["--rpc-url", server.url, "--rpc-token", server.token]
    command += ["--json", "wallet", *args]
    if args[0] in ("create", "send"):
        command += ["--passphrase-file", str(datadir / "pass")]
    return CliRunner().invoke(cli, command)


def send(datadir: Path, server: ServerThread, amount: str, *options: str) -> Result:
    return fc(datadir, server, "send", BOB_ADDRESS, amount, *options)


def sent(server: ServerThread, result: Result) -> Any:
    """The JSON of a send that went through, after checking the node pools it."""
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert data["txid"] in mempool(server)
    return data


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# The case: 0.1 FC at a million units a byte (10**9 per 1,000 bytes) pays 2.04 FC.
HUGE = str(10**9)


def test_a_huge_fee_rate_is_refused_with_one_line_and_nothing_sent(
    datadir: Path, node: ServerThread
) -> None:
    before = mempool(node)
    line = one_line_error(send(datadir, node, "0.1", "--fee-rate", HUGE))
    assert line.startswith("fc: error: fee 2.04000000 FC to send 0.10000000 FC")
    assert "more than 10% of the amount" in line and "--force" in line
    assert mempool(node) == before


def test_a_fee_over_the_absolute_cap_is_refused_even_when_small_against_the_amount(
    datadir: Path, node: ServerThread
) -> None:
    # 2.04 FC is 2 % of 100 FC, but above the 1 FC cap and far above the node's rate.
    before = mempool(node)
    line = one_line_error(send(datadir, node, "100", "--fee-rate", HUGE))
    assert "fee 2.04000000 FC to send 100.00000000 FC" in line
    assert "more than 1.00000000 FC" in line and "--force" in line
    assert mempool(node) == before


def test_force_pays_the_fee_the_guard_refuses(datadir: Path, node: ServerThread) -> None:
    before = mempool(node)
    data = sent(node, send(datadir, node, "0.1", "--fee-rate", HUGE, "--force"))
    assert data["fee"] == 204_000_000 and data["amount"] == 10_000_000
    assert data["fee_rate"] == 10**9
    assert mempool(node) == [*before, data["txid"]]


def test_a_normal_fee_rate_is_unaffected(datadir: Path, node: ServerThread) -> None:
    before = mempool(node)
    data = sent(node, send(datadir, node, "0.1", "--fee-rate", "2000"))
    assert data["fee"] == 408 and data["fee_rate"] == 2000  # 204 bytes at 2 units a byte
    # Without --fee-rate: the node's estimate, in the same unit.
    estimate = rpc_get(node, "/fees/estimate")
    expected = max(estimate["fee_rate"], estimate["min_fee_rate"], DEFAULT_MIN_RELAY_FEE)
    default = sent(node, send(datadir, node, "0.1"))
    assert default["fee_rate"] == expected
    assert default["fee"] == expected * 204 // 1000
    assert mempool(node) == [*before, data["txid"], default["txid"]]


def test_the_flag_and_the_json_share_one_unit(datadir: Path, node: ServerThread) -> None:
    # Units per 1,000 bytes, as /fees/estimate and /mempool report: what is typed comes back.
    assert parse_fee_rate_kb("1500") == 1500 and parse_fee_rate_kb(" 7 ") == 7
    for bad in ("1.5", "0", "-1", "1e3", "x", "", str(10**9 + 1)):
        with pytest.raises(AmountError):
            parse_fee_rate_kb(bad)
    assert sent(node, send(datadir, node, "0.1", "--fee-rate", "1500"))["fee_rate"] == 1500
    before = mempool(node)
    line = one_line_error(send(datadir, node, "0.1", "--fee-rate", "1.5"))
    assert "units per 1,000 bytes" in line
    assert mempool(node) == before


def test_the_guard_rule() -> None:
    # 204 bytes at 1000 units per 1,000 bytes: the node asks 204 units.
    assert fee_guard(2040, 100, 204, 1000) is None  # 10x the node's fee is still fine
    assert fee_guard(2041, 100_000, 204, 1000) is None  # above 10x, but 2 % and under 1 FC
    assert fee_guard(2041, 20_000, 204, 1000) is not None  # above 10x and above 10 %
    assert fee_guard(COIN + 1, 100 * COIN, 204, 1000) is not None  # above 10x and 1 FC
    assert fee_guard(COIN + 1, 100 * COIN, 204, 10**9) is None  # the node asks that much
    # A crowded pool (a node estimate of 10**8): the 2.04 FC for 0.1 FC is within
    # 10x of the 0.204 FC the node asks, so it passes; the same fee is refused at the floor.
    assert fee_guard(204_000_000, 10_000_000, 204, 10**8) is None
    assert fee_guard(204_000_000, 10_000_000, 204, 1000) is not None
