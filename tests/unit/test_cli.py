"""``fc`` against a real node: hypercorn serving the app on a free port from a thread.

The server thread runs ``serve_rpc`` in its own trio loop over a node on a copy of the
base chain, with the cookie and the ready file ``fcd.json`` written the way ``fcd``
writes them, so ``fc --datadir`` finds it as it would find a daemon. Commands run
through click's ``CliRunner``, and once as a real subprocess.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from chain.params import MAINNET, REGTEST
from chain.transaction import TxOut
from node.auth import write_cookie
from node.cli import cli
from tests.chainbuilder import ALICE, BOB, BaseChain, key, pay
from tests.rpcnode import ServerThread, copy_base, mine_base
from wallet.address import encode_address

BOB_ADDRESS = encode_address(key(BOB), REGTEST)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseChain:
    return mine_base(tmp_path_factory.mktemp("cli-base"))


@pytest.fixture(scope="module")
def server(base: BaseChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    datadir = copy_base(base, tmp_path_factory.mktemp("cli") / "node")
    running = ServerThread(datadir).start()
    yield running
    running.stop()


def fc(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def ok(*args: str, input: str | None = None) -> str:
    result = fc(*args, input=input)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert result.stderr == ""
    return result.stdout


def as_json(server: ServerThread, *args: str) -> Any:
    return json.loads(ok("--datadir", str(server.datadir), "--json", *args))


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


# -- reading ---------------------------------------------------------------------------------
def test_node_info_as_a_table_and_as_json(server: ServerThread) -> None:
    table = ok("--datadir", str(server.datadir), "node", "info")
    info = as_json(server, "node", "info")
    assert info["network"] == "regtest"
    for word in ("regtest", info["tip"], f"{info['height']}", "p2p off"):
        assert word in table
    # --json after the command works too, and gives the same document.
    again = json.loads(ok("--datadir", str(server.datadir), "node", "info", "--json"))
    assert again["tip"] == info["tip"]


def test_chain_tip_and_blocks(server: ServerThread, base: BaseChain) -> None:
    datadir = str(server.datadir)
    tip = as_json(server, "chain", "tip")
    assert tip["hash"] in ok("--datadir", datadir, "chain", "tip")
    block = ok("--datadir", datadir, "chain", "block", "102")
    assert base.funding.txid.hex() in block and "transfer" in block and "coinbase" in block
    by_hash = as_json(server, "chain", "block", tip["hash"])
    assert by_hash["height"] == tip["height"] and by_hash["hex"] is None
    raw = as_json(server, "chain", "block", "0", "--raw")
    assert raw["hex"] and raw["header"]["height"] == 0
    assert "peers" in as_json(server, "node", "peers")
    assert "no peers" in ok("--datadir", datadir, "node", "peers")


def test_address_commands(server: ServerThread, base: BaseChain) -> None:
    alice = encode_address(key(ALICE), REGTEST)
    coins = as_json(server, "address", "coins", alice)
    assert len(coins["coins"]) >= 290 and coins["address"] == alice
    table = ok("--datadir", str(server.datadir), "address", "history", alice, "--limit", "5")
    assert "more: --cursor" in table and "received" in table


# -- changing things ------------------------------------------------------------------------------
def test_send_then_generate_then_look_the_transaction_up(
    server: ServerThread, base: BaseChain
) -> None:
    datadir = str(server.datadir)
    coin = base.alice[150]
    tx = pay([coin], [TxOut(2_000_000, key(BOB)), TxOut(coin.amount - 2_010_000, key(ALICE))])
    txid = tx.txid.hex()
    assert ok("--datadir", datadir, "send", "-", input=tx.encoded.hex() + "\n").strip() == txid
    assert txid in ok("--datadir", datadir, "mempool")
    assert "mempool" in ok("--datadir", datadir, "tx", txid)
    before = as_json(server, "chain", "tip")["height"]
    made = ok("--datadir", datadir, "generate", "2", "--to", BOB_ADDRESS)
    assert f"2 blocks to {BOB_ADDRESS}" in made
    tip = as_json(server, "chain", "tip")
    assert tip["height"] == before + 2 and tip["hash"] in made
    found = as_json(server, "tx", txid)
    assert found["block_height"] == before + 1 and found["confirmations"] == 2
    shown = ok("--datadir", datadir, "tx", txid)
    assert f"block {before + 1}" in shown and BOB_ADDRESS in shown and "0.02000000 FC" in shown
    history = as_json(server, "address", "history", BOB_ADDRESS)
    assert txid in {e["txid"] for e in history["entries"]}


def test_explicit_url_and_token_override_the_data_directory(server: ServerThread) -> None:
    info = json.loads(
        ok("--rpc-url", server.url, "--rpc-token", server.token, "--json", "node", "info")
    )
    assert info["network"] == "regtest"


# -- failing clearly --------------------------------------------------------------------------------
def test_a_node_that_is_down_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    write_cookie(tmp_path)
    (tmp_path / "fcd.json").write_text(json.dumps({"rpc_url": f"http://127.0.0.1:{port}"}))
    line = one_line_error(fc("--datadir", str(tmp_path), "node", "info"))
    assert line == f"fc: error: cannot reach node at http://127.0.0.1:{port}: connection refused"
    # Without a ready file, fc.toml's port is used.
    (tmp_path / "fcd.json").unlink()
    (tmp_path / "fc.toml").write_text(f'network = "regtest"\nrpc_port = {port}\n')
    line = one_line_error(fc("--datadir", str(tmp_path), "chain", "tip"))
    assert line == f"fc: error: cannot reach node at http://127.0.0.1:{port}: connection refused"


def test_a_wrong_token_is_one_line(server: ServerThread) -> None:
    result = fc("--datadir", str(server.datadir), "--rpc-token", "f" * 64, "chain", "tip")
    assert one_line_error(result) == (
        "fc: error: the node refused the RPC token (401); check --datadir or --rpc-token"
    )


def test_a_missing_cookie_is_one_line(server: ServerThread, tmp_path: Path) -> None:
    result = fc("--datadir", str(tmp_path), "--rpc-url", server.url, "node", "info")
    line = one_line_error(result)
    assert line.startswith("fc: error: no RPC cookie at ") and "--rpc-token" in line


def test_api_errors_are_one_line_with_their_code(server: ServerThread) -> None:
    datadir = str(server.datadir)
    line = one_line_error(fc("--datadir", datadir, "chain", "block", "99999"))
    assert line.startswith("fc: error: not-found: no block at height 99999")
    mainnet = encode_address(key(BOB), MAINNET)
    line = one_line_error(fc("--datadir", datadir, "generate", "1", "--to", mainnet))
    assert line.startswith("fc: error: bad-address: ") and "mainnet address" in line
    line = one_line_error(fc("--datadir", datadir, "send", "c1"))
    assert line.startswith("fc: error: decode-malformed: ")
    line = one_line_error(fc("--datadir", datadir, "tx", "00" * 32))
    assert line.startswith("fc: error: not-found: ")


def test_the_real_command_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    write_cookie(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "node.cli",
            "--datadir",
            str(tmp_path),
            "--network",
            "regtest",
            "--rpc-url",
            f"http://127.0.0.1:{port}",
            "chain",
            "tip",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert (
        done.stderr
        == f"fc: error: cannot reach node at http://127.0.0.1:{port}: connection refused\n"
    )
