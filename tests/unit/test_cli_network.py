"""``fc`` takes its network from the data directory when ``--network`` is not given.

The data directory says which network it belongs to: the ready file ``fcd.json`` that
``fcd`` writes (``"network"``), else ``fc.toml``'s ``network`` key. ``--network`` that
disagrees with it is refused in one line, before anything is written; a damaged file is
one line too, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chain.params import MAINNET, REGTEST, ChainParams
from node.cli import cli
from wallet.address import encode_address
from wallet.keys import Account


def fc(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def create_wallet(datadir: Path, *flags: str) -> Result:
    secret = datadir.parent / f"{datadir.name}-passphrase"
    secret.write_text("correct horse\n")
    return fc(*flags, "--datadir", str(datadir), "--json", "wallet", "create",
              "--words", "12", "--passphrase-file", str(secret))  # fmt: skip


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fc: error: ")
    return lines[0]


def assert_wallet_of(datadir: Path, result: Result, params: ChainParams) -> str:
    """Check the wallet ``result`` made is one of ``params``; its first receive address."""
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    data = json.loads(result.stdout)
    path = datadir / "wallets" / "default.wallet"
    assert data["network"] == params.name and Path(data["wallet"]) == path
    assert json.loads(path.read_text())["network"] == params.name
    account = Account.from_xpub(data["xpub"], params)  # the xpub has the network's version
    address = encode_address(account.pubkey(0, 0), params)
    assert address.startswith(params.hrp + "1")
    return address


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FC_NETWORK", "FC_DATADIR", "FC_RPC_URL", "FC_RPC_TOKEN", "FC_WALLET"):
        monkeypatch.delenv(name, raising=False)


def test_fc_toml_network_picks_a_regtest_wallet(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    datadir.mkdir()
    (datadir / "fc.toml").write_text('network = "regtest"\nrpc_port = 0\n')
    assert assert_wallet_of(datadir, create_wallet(datadir), REGTEST).startswith("fcrt1")


def test_the_ready_file_network_wins(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    datadir.mkdir()
    (datadir / "fcd.json").write_text(
        json.dumps({"network": "regtest", "rpc_url": "http://127.0.0.1:1", "rpc_port": 1})
    )
    (datadir / "fc.toml").write_text('network = "testnet"\n')  # the running daemon says
    assert assert_wallet_of(datadir, create_wallet(datadir), REGTEST).startswith("fcrt1")
    # an fcd.json without a network (an older daemon's) leaves it to fc.toml
    other = tmp_path / "other"
    other.mkdir()
    (other / "fcd.json").write_text('{"rpc_url": "http://127.0.0.1:1", "rpc_port": 1}')
    (other / "fc.toml").write_text('network = "regtest"\n')
    assert_wallet_of(other, create_wallet(other), REGTEST)


@pytest.mark.parametrize("source", ["fcd.json", "fc.toml"])
def test_a_network_flag_that_disagrees_is_refused(tmp_path: Path, source: str) -> None:
    datadir = tmp_path / "node"
    datadir.mkdir()
    if source == "fcd.json":
        (datadir / source).write_text('{"network": "regtest", "rpc_port": 1}')
    else:
        (datadir / source).write_text('network = "regtest"\n')
    before = sorted(p.name for p in tmp_path.rglob("*"))
    line = one_line_error(create_wallet(datadir, "--network", "mainnet"))
    assert "mainnet" in line and "regtest" in line and source in line
    after = sorted(p.name for p in tmp_path.rglob("*") if not p.name.endswith("-passphrase"))
    assert after == before  # no wallets/ directory, no wallet
    # every command is refused the same way, not only the wallet's
    assert one_line_error(fc("--network", "mainnet", "--datadir", str(datadir), "chain", "tip"))
    # the flag that agrees is fine
    assert_wallet_of(datadir, create_wallet(datadir, "--network", "regtest"), REGTEST)


def test_without_a_word_from_the_directory_it_is_mainnet(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    datadir.mkdir()
    (datadir / "fc.toml").write_text("rpc_port = 0\n")  # no network key
    assert assert_wallet_of(datadir, create_wallet(datadir), MAINNET).startswith("fc1")
    empty = tmp_path / "empty"  # not even created yet
    assert_wallet_of(empty, create_wallet(empty), MAINNET)
    flagged = tmp_path / "flagged"
    assert_wallet_of(flagged, create_wallet(flagged, "--network", "regtest"), REGTEST)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("fcd.json", "{not json"),
        ("fcd.json", "[1, 2]"),
        ("fcd.json", '{"network": "moonnet"}'),
        ("fcd.json", '{"network": 7}'),
        ("fc.toml", "network = \n"),
        ("fc.toml", 'network = "moonnet"\n'),
        ("fc.toml", "network = 1\n"),
    ],
)
def test_a_damaged_file_is_one_line(tmp_path: Path, name: str, text: str) -> None:
    datadir = tmp_path / "node"
    datadir.mkdir()
    (datadir / name).write_text(text)
    line = one_line_error(create_wallet(datadir))
    assert name in line
    assert not (datadir / "wallets").exists()
