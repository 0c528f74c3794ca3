"""``fcd --mine``: a real daemon drawing for blocks with the tiny regtest model.

The node mines on regtest with a fixed target of 20 draws a block on average (each draw
a real generation of the tiny model, ~10 ms batched), so it finds a block every few
tenths of a second on one core. A second node, not mining, receives the blocks through
the p2p relay and re-executes every draw. The model is read from the tests' shared blob
store (``tests.exactwork.TEST_STORE``), so no node derives it again.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from framework import REPO, Network, Node, connect, tip, wait_for

from chain.params import MAINNET, REGTEST
from chain.schnorr import pubkey_of
from tests.exactwork import TEST_STORE, tiny_lottery
from wallet.address import encode_address

DRAWS_PER_BLOCK = "20"
MINE_TIMEOUT = 120.0  # seconds to 5 blocks: start-up (torch, the model) and ~100 draws


def error_line(stderr: str) -> str:
    """The one error line a refused start ends with (earlier lines are its log)."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert [line for line in lines if line.startswith("fcd: error: ")] == lines[-1:], stderr
    return lines[-1]


def regtest_node(network: Network) -> Node:
    """A node on the 20-draw regtest chain reading the shared model store."""
    tiny_lottery()  # derive the model into the shared store once, before any daemon reads it
    node = network.add_node()
    node.extra_args += [
        "--store",
        str(TEST_STORE),
        "--regtest-draws-per-block",
        DRAWS_PER_BLOCK,
    ]
    return node


def fc(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "node.cli", "--network", "regtest"]
    command += ["--datadir", str(node.datadir), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_a_mining_node_finds_blocks_and_peers_accept_them(network: Network) -> None:
    miner = regtest_node(network).start("--mine")
    wait_for(lambda: tip(miner)["height"] >= 5, MINE_TIMEOUT, "the miner to reach height 5")

    info = miner.rpc.get("/mining/info")
    assert info["mining"] is True
    assert (info["device"], info["threads"], info["batch"]) == ("cpu", 1, 8)
    assert info["draws"] > 0 and info["draws_per_second"] > 0
    assert info["blocks_found"] >= 5
    assert info["expected_seconds_per_block"] > 0
    assert info["network_draws_per_block"] == int(DRAWS_PER_BLOCK)
    assert info["height"] >= 6
    for found in info["found"][:5]:  # one miner, no reorganisation: its blocks are the chain
        block = miner.rpc.get(f"/chain/block/{found['height']}")
        assert block["hash"] == found["hash"]
    # Blocks pay the miner's own key, kept in DATADIR/miner.key (0600).
    key_file = miner.datadir / "miner.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    miner_key = pubkey_of(key_file.read_bytes()).hex()
    first = miner.rpc.get("/chain/block/1")
    assert first["header"]["work"]["worker_key"] == miner_key
    assert first["transactions"][0]["outputs"][0]["pubkey"] == miner_key

    shown = fc(miner, "mining", "info")
    assert shown.returncode == 0, shown.stderr
    assert "yes, on cpu" in shown.stdout and "blocks found" in shown.stdout
    assert "time to a block" in shown.stdout
    as_json = fc(miner, "mining", "info", "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["mining"] is True and data["blocks_found"] >= 5

    # A peer that does not mine gets the blocks through the relay and checks every draw.
    watcher = regtest_node(network).start()
    assert watcher.rpc.get("/mining/info")["mining"] is False
    connect(watcher, miner)

    def watcher_has_block_5() -> bool:
        return bool(tip(watcher)["height"] >= 5)

    wait_for(watcher_has_block_5, MINE_TIMEOUT, "the watcher to reach height 5")
    assert watcher.rpc.get("/chain/block/5")["hash"] == miner.rpc.get("/chain/block/5")["hash"]

    assert miner.stop() == 0
    log = (miner.datadir / "fcd.log").read_text()
    assert "mining stopped" in log and "Traceback" not in log


def test_mining_pays_the_address_given(network: Network) -> None:
    payee = pubkey_of(bytes(31) + b"\x07")
    address = encode_address(payee, REGTEST)
    miner = regtest_node(network).start("--mine", "--pay-to", address, "--mine-batch", "4")
    wait_for(lambda: tip(miner)["height"] >= 1, MINE_TIMEOUT, "a block")
    outputs = miner.rpc.get("/chain/block/1")["transactions"][0]["outputs"]
    assert [o["address"] for o in outputs] == [address]
    assert miner.rpc.get("/mining/info")["batch"] == 4


def test_device_cuda_without_cuda_fails_in_one_line(network: Network) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda starts")
    node = regtest_node(network)
    status, stderr = node.run_to_exit("--mine", "--device", "cuda")
    assert status == 1
    line = error_line(stderr)
    assert line.startswith("fcd: error: --device cuda: ")
    assert line.endswith("install the CUDA build with: make setup CUDA=1")


def test_a_bad_pay_to_fails_in_one_line(network: Network) -> None:
    node = regtest_node(network)
    status, stderr = node.run_to_exit("--mine", "--pay-to", "fcrt1notanaddress")
    assert status == 1
    assert error_line(stderr).startswith("fcd: error: --pay-to 'fcrt1notanaddress': ")

    mainnet = encode_address(pubkey_of(bytes(31) + b"\x07"), MAINNET)
    status, stderr = node.run_to_exit("--mine", "--pay-to", mainnet)
    assert status == 1
    assert error_line(stderr).startswith(f"fcd: error: --pay-to {mainnet!r}: ")
    assert not (node.datadir / "miner.key").exists()  # refused before anything was made
