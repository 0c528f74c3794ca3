"""One ``fcd`` process: start, serve, refuse what it must, stop, survive a kill.

These are the promises an operator relies on before any peer is involved: the node says
clearly why it will not start (bad flag, bad config key, port taken, data directory in
use or of another network) and exits with status 1; its RPC answers only with the
cookie's token; SIGTERM stops it cleanly (status 0, ready file gone, chain intact on
restart); SIGKILL loses no connected block.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from framework import Network, generate, tip


def error_line(stderr: str) -> str:
    """The one error line a refused start ends with (earlier lines are its log)."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert [line for line in lines if line.startswith("fcd: error: ")] == lines[-1:], stderr
    return lines[-1]


def test_node_starts_and_serves_health(network: Network) -> None:
    (node,) = network.start_nodes(1)
    info = json.loads((node.datadir / "fcd.json").read_text())
    assert info["network"] == "regtest"
    assert info["pid"] == node.pid
    assert info["p2p_addrs"][0] == f"/ip4/127.0.0.1/tcp/{info['p2p_port']}/p2p/{info['peer_id']}"
    health = httpx.get(info["rpc_url"] + "/health", timeout=10)
    assert health.status_code == 200
    assert tip(node)["height"] == 0


def test_rpc_requires_the_cookie_token(network: Network) -> None:
    (node,) = network.start_nodes(1)
    url = node.info["rpc_url"] + "/chain/tip"
    assert httpx.get(url, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer " + "0" * 64}
    assert httpx.get(url, headers=wrong, timeout=10).status_code == 401
    token = (node.datadir / ".cookie").read_text().strip()
    right = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url, headers=right, timeout=10).status_code == 200
    # A refused request changed nothing.
    refused = httpx.post(node.info["rpc_url"] + "/generate", json={"count": 1}, timeout=10)
    assert refused.status_code == 401
    assert tip(node)["height"] == 0


def test_sigterm_stops_cleanly_and_the_chain_survives(network: Network) -> None:
    (node,) = network.start_nodes(1)
    hashes = generate(node, 20)
    assert node.stop() == 0
    assert not (node.datadir / "fcd.json").exists()
    log = (node.datadir / "fcd.log").read_text()
    assert "SIGTERM: stopping" in log
    assert "chainstate closed at height 20" in log
    node.start()
    assert tip(node)["height"] == 20
    assert tip(node)["hash"] == hashes[-1]


def test_sigkill_keeps_every_connected_block(network: Network) -> None:
    (node,) = network.start_nodes(1)
    hashes = generate(node, 30)
    assert node.kill() != 0
    assert (node.datadir / "fcd.json").exists()  # stale: its pid is gone
    node.start()  # the same ports: nothing else took them meanwhile
    assert tip(node)["height"] == 30
    assert tip(node)["hash"] == hashes[-1]
    generate(node, 1)  # and it goes on from there
    assert tip(node)["height"] == 31


def test_second_daemon_on_the_same_datadir_is_refused(network: Network) -> None:
    (node,) = network.start_nodes(1)
    twin = network.add_node()
    twin.datadir = node.datadir
    status, stderr = twin.run_to_exit("--p2p-port", "0", "--rpc-port", "0")
    assert status == 1
    assert error_line(stderr) == (
        f"fcd: error: data directory {node.datadir} is in use by another fcd (pid {node.pid})"
    )
    assert node.running
    assert tip(node)["height"] == 0


def test_port_in_use_is_a_clear_error(network: Network) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        node = network.add_node()
        node.rpc_port = port
        status, stderr = node.run_to_exit()
    assert status == 1
    assert error_line(stderr) == (
        f"fcd: error: rpc port 127.0.0.1:{port} is already in use (choose another with --rpc-port)"
    )


@pytest.mark.parametrize(
    ("flags", "config", "message"),
    [
        (["--p2p-port", "70000"], "", "--p2p-port must be an integer in 0..65535, got 70000"),
        (["--connect", "not-an-address"], "", "--connect: 'not-an-address' is not a peer"),
        (["--bogus"], "", "No such option '--bogus'"),
        ([], "rpc_prot = 1\n", "fc.toml: unknown key 'rpc_prot'"),
        ([], 'rpc_port = "abc"\n', "fc.toml: rpc_port must be an integer in 0..65535"),
        ([], "[policy]\nmax_orphans = -1\n", "fc.toml: policy: policy max_orphans must be"),
        ([], "network = [\n", "fc.toml: not valid TOML"),
    ],
)
def test_bad_settings_are_one_line_errors(
    network: Network, flags: list[str], config: str, message: str
) -> None:
    node = network.add_node()
    node.datadir.mkdir(parents=True)
    if config:
        (node.datadir / "fc.toml").write_text(config)
    status, stderr = node.run_to_exit(*flags)
    assert status == 1
    assert stderr == error_line(stderr) + "\n"  # nothing logged: the settings come first
    assert message in stderr
    assert not (node.datadir / "chainstate").exists()  # nothing was opened


def test_flags_override_the_config_file(network: Network) -> None:
    node = network.add_node()
    node.datadir.mkdir(parents=True)
    # The file asks for a port that is surely taken (our own listener); the flag wins.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (node.datadir / "fc.toml").write_text(
            f'network = "regtest"\nrpc_port = {port}\nlog_level = "debug"\n'
        )
        node.start()  # --rpc-port 0 from the harness overrides the file
    assert node.info["rpc_port"] != port
    assert " DEBUG " in (node.datadir / "fcd.log").read_text()


def test_datadir_of_another_network_is_refused(network: Network) -> None:
    (node,) = network.start_nodes(1)
    generate(node, 2)
    assert node.stop() == 0
    node.network = "testnet"
    status, stderr = node.run_to_exit()
    assert status == 1
    assert "data directory belongs to 'regtest', not 'testnet'" in error_line(stderr)
    node.network = "regtest"
    node.start()
    assert tip(node)["height"] == 2


def test_damaged_p2p_key_is_a_clear_error(network: Network) -> None:
    (node,) = network.start_nodes(1)
    peer_id = node.peer_id
    assert node.stop() == 0
    key = node.datadir / "p2p.key"
    seed = key.read_bytes()
    key.write_bytes(seed[:7])
    status, stderr = node.run_to_exit()
    assert status == 1
    assert error_line(stderr) == (
        f"fcd: error: p2p key {key} holds 7 bytes, expected a 32-byte Ed25519 seed"
    )
    key.write_bytes(seed)  # the same key: the same peer id as before
    node.start()
    assert node.peer_id == peer_id
