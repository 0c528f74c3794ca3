"""A small harness for functional tests: real ``fcd`` processes on 127.0.0.1.

In the spirit of Bitcoin Core's test framework. A test gets a :class:`Network` (the
``network`` fixture in ``conftest.py``), adds nodes to it, and drives them through their
RPC like an operator would::

    def test_blocks_relay(network):
        a, b = network.start_nodes(2)
        network.connect(a, b)
        network.generate(a, 5)
        network.sync_blocks([a, b])

Each node is a separate ``python -m node.daemon`` process with its own temporary data
directory. Every node loads the lottery model from the blob store all test processes
share (``tests.exactwork.TEST_STORE``, ``--store``), where ``conftest.py`` has derived it
once before any node starts, so no node spends seconds deriving its own. Ports are never guessed: a node first starts with port 0 (any free port) and
the harness reads the ports it bound from its ready file ``fcd.json``; a restart reuses
them, so peers can dial it at the same address again. A node counts as ready when its
process is alive, its ready file names its pid, and ``/health`` answers.

Every wait polls with a deadline (:func:`wait_for`), never a bare sleep. When a test
fails, ``conftest.py`` attaches the tail of every node's log to the report; at the end
of each test every process still running is stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from chain.block import decode_block
from chain.params import REGTEST
from chain.producer import sign_transaction
from chain.schnorr import pubkey_of
from chain.transaction import NO_SIGNATURE, OutPoint, Transaction, TxIn, TxKind, TxOut
from tests.exactwork import TEST_STORE
from wallet.address import encode_address

REPO = Path(__file__).resolve().parents[2]
NETWORK = "regtest"
START_TIMEOUT = 60.0  # seconds for a node to come up (opening a chainstate replays its log)
STOP_TIMEOUT = 60.0
SYNC_TIMEOUT = 60.0
# Blocks one /generate call makes: each wins a draw (~20 ms) and has it re-executed when
# it connects (~8 ms), so a call stays far inside the RPC client's timeout even on a
# loaded machine.
GENERATE_CHUNK = 100


class NodeError(AssertionError):
    """A node did something a test did not expect (died, refused, timed out)."""


def wait_for(
    predicate: Callable[[], Any], timeout: float = SYNC_TIMEOUT, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that. Raise after
    ``timeout`` seconds, naming ``what`` and the last exception the predicate raised."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise NodeError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


class Rpc:
    """The node's RPC over HTTP, with its cookie token. Errors raise :class:`RpcError`."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RpcError(response.status_code, response.text)
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)


class RpcError(NodeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class Node:
    """One ``fcd`` process and its data directory."""

    def __init__(self, index: int, datadir: Path, network: str = NETWORK) -> None:
        self.index = index
        self.datadir = datadir
        self.network = network
        self.p2p_port = 0  # 0 until the first start has bound one; then kept
        self.rpc_port = 0
        self.extra_args: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._rpc: Rpc | None = None

    def __repr__(self) -> str:
        return f"<node{self.index} {self.datadir.name} pid {self.pid}>"

    # -- process -------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def output_path(self) -> Path:
        """stdout and stderr of the process (its log lines and anything it crashed with)."""
        return self.datadir.parent / f"node{self.index}.out"

    def args(self, extra: Sequence[str] = ()) -> list[str]:
        return [
            sys.executable,
            "-m",
            "node.daemon",
            "--network",
            self.network,
            "--datadir",
            str(self.datadir),
            "--p2p-port",
            str(self.p2p_port),
            "--rpc-port",
            str(self.rpc_port),
            "--store",
            str(TEST_STORE),
            *self.extra_args,
            *extra,
        ]

    def start(self, *extra: str, wait: bool = True) -> Node:
        """Start the daemon with ``extra`` flags (for this start only)."""
        assert not self.running, f"{self} is already running"
        self.datadir.mkdir(parents=True, exist_ok=True)
        with self.output_path.open("ab") as out:
            out.write(f"--- start: {' '.join(self.args(extra))}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.args(extra), cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_ready()
        return self

    def run_to_exit(self, *extra: str, timeout: float = START_TIMEOUT) -> tuple[int, str]:
        """Run the daemon in the foreground expecting it to exit; (status, stderr)."""
        done = subprocess.run(
            self.args(extra), cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        return done.returncode, done.stderr

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            if not self.running:
                raise NodeError(f"{self} exited with status {self.returncode()}:\n{self.tail()}")
            info = json.loads((self.datadir / "fcd.json").read_text())
            if info["pid"] != self.pid:
                return False  # a stale file from a killed run
            with httpx.Client(timeout=5.0) as client:
                if client.get(info["rpc_url"] + "/health").status_code != 200:
                    return False
            self.info = info
            return True

        wait_for(ready, timeout, f"{self} to be ready")
        self.p2p_port = self.info["p2p_port"]
        self.rpc_port = self.info["rpc_port"]
        token = (self.datadir / ".cookie").read_text().strip()
        self._close_rpc()
        self._rpc = Rpc(self.info["rpc_url"], token)

    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait for the exit; returns the exit status."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: the process gets no chance to clean up."""
        return self._signal(signal.SIGKILL, STOP_TIMEOUT)

    def _signal(self, signum: int, timeout: float) -> int:
        assert self.process is not None, f"{self} was never started"
        self._close_rpc()
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise NodeError(f"{self} did not exit within {timeout:.0f}s of {signum}") from None

    def restart(self, *extra: str) -> Node:
        status = self.stop()
        if status != 0:
            raise NodeError(f"{self} exited with status {status} on SIGTERM:\n{self.tail()}")
        return self.start(*extra)

    def _close_rpc(self) -> None:
        if self._rpc is not None:
            self._rpc.close()
            self._rpc = None

    # -- talking to it -------------------------------------------------------------
    @property
    def rpc(self) -> Rpc:
        if self._rpc is None:
            raise NodeError(f"{self} is not running")
        return self._rpc

    @property
    def p2p_addr(self) -> str:
        """The address peers dial: /ip4/127.0.0.1/tcp/PORT/p2p/ID."""
        return str(self.info["p2p_addrs"][0])

    @property
    def peer_id(self) -> str:
        return str(self.info["peer_id"])

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` of the node's log and of its process output."""
        parts = []
        for path in (self.datadir / "fcd.log", self.output_path):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"== {path} ==\n" + "\n".join(text))
        return "\n".join(parts)


class Network:
    """The nodes of one test, in temporary directories under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[Node] = []

    def add_node(self, network: str = NETWORK) -> Node:
        node = Node(len(self.nodes), self.root / f"node{len(self.nodes)}", network)
        self.nodes.append(node)
        return node

    def start_nodes(self, count: int, *extra: str) -> list[Node]:
        """Start ``count`` new nodes side by side and wait until all are ready."""
        nodes = [self.add_node() for _ in range(count)]
        for node in nodes:
            node.start(*extra, wait=False)
        for node in nodes:
            node.wait_ready()
        return nodes

    def shutdown(self) -> None:
        """Stop whatever still runs: SIGTERM, and SIGKILL for any that hangs."""
        for node in self.nodes:
            if node.running and node.process is not None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()
            node._close_rpc()

    def logs(self, lines: int = 80) -> str:
        return "\n\n".join(node.tail(lines) for node in self.nodes)


# -- chain helpers ---------------------------------------------------------------
def tip(node: Node) -> dict[str, Any]:
    result: dict[str, Any] = node.rpc.get("/chain/tip")
    return result


def generate(node: Node, count: int, pay_to: str | None = None) -> list[str]:
    """Have ``node`` produce ``count`` blocks (regtest); their hashes in order."""
    hashes: list[str] = []
    while len(hashes) < count:
        body: dict[str, Any] = {"count": min(count - len(hashes), GENERATE_CHUNK)}
        if pay_to is not None:
            body["pay_to"] = pay_to
        hashes += node.rpc.post("/generate", body)["hashes"]
    return hashes


def sync_blocks(nodes: Sequence[Node], timeout: float = SYNC_TIMEOUT) -> str:
    """Wait until every node has the same tip; return its hash."""

    def same_tip() -> str | None:
        tips = {tip(node)["hash"] for node in nodes}
        return tips.pop() if len(tips) == 1 else None

    result: str = wait_for(same_tip, timeout, f"{list(nodes)} to agree on a tip")
    return result


def sync_mempools(nodes: Sequence[Node], timeout: float = SYNC_TIMEOUT) -> set[str]:
    """Wait until every node's mempool holds the same transactions; return their ids."""

    def same_pool() -> set[str] | None:
        pools = [frozenset(mempool(node)) for node in nodes]
        return set(pools[0]) if all(p == pools[0] for p in pools) else None

    result: set[str] = wait_for(same_pool, timeout, f"{list(nodes)} to agree on mempools")
    return result


def mempool(node: Node) -> list[str]:
    txids: list[str] = node.rpc.get("/mempool")["txids"]
    return txids


def peers(node: Node) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = node.rpc.get("/peers")["peers"]
    return result


def connect(a: Node, b: Node, timeout: float = SYNC_TIMEOUT) -> None:
    """Have ``a`` dial ``b`` and wait until each lists the other as a peer."""
    a.rpc.post("/peers/connect", {"addr": b.p2p_addr})

    def linked() -> bool:
        return b.peer_id in {p["peer_id"] for p in peers(a)} and a.peer_id in {
            p["peer_id"] for p in peers(b)
        }

    wait_for(linked, timeout, f"{a} and {b} to be connected")


# -- coins for transactions ---------------------------------------------------------
class Wallet:
    """A key the test holds: blocks pay their coinbases to it, and it spends them."""

    def __init__(self, label: str = "wallet") -> None:
        self.secret = hashlib.sha256(b"fc-functional/" + label.encode()).digest()
        self.pubkey = pubkey_of(self.secret)
        self.address = encode_address(self.pubkey, REGTEST)

    def coinbase(self, node: Node, height: int) -> tuple[OutPoint, TxOut]:
        """The coinbase output of ``node``'s block at ``height`` (it must pay us)."""
        raw = node.rpc.get(f"/chain/block/{height}", raw="true")["hex"]
        coinbase = decode_block(bytes.fromhex(raw)).transactions[0]
        assert coinbase.outputs[0].pubkey == self.pubkey, f"block {height} does not pay us"
        return OutPoint(coinbase.txid, 0), coinbase.outputs[0]

    def pay_self(self, coin: tuple[OutPoint, TxOut], fee: int = 10_000) -> Transaction:
        """A signed transaction moving ``coin`` back to us, less ``fee``."""
        outpoint, out = coin
        tx = Transaction(
            1,
            TxKind.TRANSFER,
            (TxIn(outpoint, NO_SIGNATURE),),
            (TxOut(out.amount - fee, self.pubkey),),
            [],
        )
        return sign_transaction(tx, [self.secret], [out], REGTEST)


def submit(node: Node, tx: Transaction) -> str:
    """Offer ``tx`` to ``node``'s mempool; its txid."""
    txid: str = node.rpc.post("/tx", {"hex": tx.encoded.hex()})["txid"]
    return txid
