"""``fc``: what a person types to ask a running node something, over its RPC.

Finding the node. ``fc`` needs the RPC address and the cookie token. With ``--datadir``
(default ``~/.foundation-coin/<network>``) it reads both from the data directory the
daemon writes: the address from the ready file ``fcd.json`` (the port the node really
bound), or failing that from ``fc.toml``'s ``rpc_port``/``rpc_bind``, or the network's
default port; the token from ``.cookie``. ``--rpc-url`` and ``--rpc-token`` (or
``FC_RPC_URL``/``FC_RPC_TOKEN``) override either.

The network. The data directory says which network it belongs to: ``fcd.json``'s
``network`` (the daemon's), else ``fc.toml``'s ``network``. Without ``--network`` that
is the network every command uses (mainnet when neither says); a ``--network`` that
disagrees is refused before anything is done, and so is a damaged file.

Output. Tables for people by default (rich); ``--json`` (before or after the command)
prints the API's own JSON instead, for scripts. A failure is exactly one line on
stderr and a non-zero exit status, e.g.::

    fc: error: cannot reach node at http://127.0.0.1:27332: connection refused
    fc: error: the node refused the RPC token (401); check --datadir or --rpc-token
    fc: error: bad-txns-inputs-missingorspent: input 0 spends a missing coin

The HTTP client is synchronous (httpx): one command, one or two requests, no loop to run.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import click
import httpx
from rich.console import Console
from rich.table import Table

from chain.params import NETWORKS
from node.auth import CookieError, read_cookie
from wallet.cli import wallet
from workloads.cli import job
from workloads.exact.cli import exact

READY_FILE = "fcd.json"  # written by fcd once it listens (node.daemon)
CONFIG_FILE = "fc.toml"
DEFAULT_NETWORK = "mainnet"  # as node.config's, which is slow to import
TIMEOUT = 120.0  # seconds; generating many blocks takes a while
WIDE = 200  # columns when not on a terminal: full hashes, no wrapping in pipes and tests


class FcError(click.ClickException):
    """A failure shown as one line, ``fc: error: ...``, with exit status 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"fc: error: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    raise FcError(" ".join(message.split()))  # one line, whatever the message held


# -- finding the node ---------------------------------------------------------------
def default_datadir(network: str) -> Path:
    # Imported late: node.config pulls in libp2p (a second of start-up) for its checks.
    from node.config import default_datadir as daemon_default

    return daemon_default(network)


def default_rpc_port(network: str) -> int:
    from node.config import DEFAULT_PORTS

    return DEFAULT_PORTS[network][1]


def url_from_datadir(datadir: Path, network: str) -> str:
    """Where the node on ``datadir`` listens: its ready file, its fc.toml, the default."""
    try:
        ready = json.loads((datadir / READY_FILE).read_text())
        return str(ready["rpc_url"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    host, port = "127.0.0.1", None
    try:
        with (datadir / CONFIG_FILE).open("rb") as f:
            settings = tomllib.load(f)
        network = str(settings.get("network", network))
        port = settings.get("rpc_port")
        host = str(settings.get("rpc_bind", host))
    except (OSError, tomllib.TOMLDecodeError):
        pass
    if not isinstance(port, int) or port == 0:
        port = default_rpc_port(network if network in NETWORKS else "mainnet")
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def network_of_datadir(datadir: Path) -> tuple[str, str] | None:
    """The network ``datadir`` belongs to and the file that says so: ``fcd.json``'s
    ``network``, else ``fc.toml``'s, else None. A file that cannot be read is a failure."""
    ready = datadir / READY_FILE
    try:
        doc = json.loads(ready.read_text())
    except FileNotFoundError:
        doc = {}
    except OSError as exc:
        fail(f"cannot read {ready}: {exc.strerror or exc}")
    except ValueError as exc:
        fail(f"{ready} is damaged: not JSON ({exc})")
    if not isinstance(doc, dict):
        fail(f"{ready} is damaged: not a JSON object")
    if "network" in doc:
        return _known_network(ready, doc["network"]), READY_FILE
    config = datadir / CONFIG_FILE
    try:
        with config.open("rb") as f:
            settings = tomllib.load(f)
    except FileNotFoundError:
        return None
    except OSError as exc:
        fail(f"cannot read {config}: {exc.strerror or exc}")
    except ValueError as exc:  # TOMLDecodeError, or bytes that are not UTF-8
        fail(f"{config} is damaged: {exc}")
    if "network" in settings:
        return _known_network(config, settings["network"]), CONFIG_FILE
    return None


def _known_network(path: Path, value: Any) -> str:
    if not isinstance(value, str) or value not in NETWORKS:
        fail(f"{path} is damaged: network must be one of {', '.join(NETWORKS)}, got {value!r}")
    return value


@dataclass
class Settings:
    datadir: Path | None
    network: str
    rpc_url: str | None
    rpc_token: str | None
    as_json: bool

    @classmethod
    def resolve(
        cls,
        datadir: Path | None,
        network: str | None,
        rpc_url: str | None,
        rpc_token: str | None,
        as_json: bool,
    ) -> Settings:
        """The settings every command uses: the network the data directory says, unless
        ``network`` (the flag) is given, which must then agree with it."""
        datadir = datadir or default_datadir(network or DEFAULT_NETWORK)
        said = network_of_datadir(datadir)
        if said is not None:
            found, source = said
            if network is not None and network != found:
                fail(
                    f"--network {network} but {datadir / source} says the data directory "
                    f"is {found}; drop --network or pick another --datadir"
                )
            network = found
        return cls(datadir, network or DEFAULT_NETWORK, rpc_url, rpc_token, as_json)

    def resolve_datadir(self) -> Path:
        return self.datadir or default_datadir(self.network)

    def url(self) -> str:
        if self.rpc_url:
            return self.rpc_url.rstrip("/")
        return url_from_datadir(self.resolve_datadir(), self.network)

    def node(self) -> Node:
        """An RPC client for the node these settings point at."""
        return Node(self)

    def token(self) -> str:
        if self.rpc_token:
            return self.rpc_token
        try:
            return read_cookie(self.resolve_datadir())
        except CookieError as exc:
            fail(f"{exc} (or pass --rpc-token)")


# -- talking to it ---------------------------------------------------------------------------
class Node:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.url()
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {settings.token()}"},
            timeout=TIMEOUT,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            fail(f"cannot reach node at {self.url}: {_reason(exc)}")
        except httpx.TimeoutException:
            fail(f"the node at {self.url} did not answer within {TIMEOUT:.0f} s")
        except httpx.HTTPError as exc:
            fail(f"talking to the node at {self.url} failed: {exc}")
        if response.status_code == 401:
            fail("the node refused the RPC token (401); check --datadir or --rpc-token")
        try:
            body = response.json()
        except ValueError:
            fail(f"the node answered HTTP {response.status_code} with something not JSON")
        if response.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            code = error.get("code", f"http-{response.status_code}")
            fail(f"{code}: {error.get('message', response.reason_phrase)}")
        return body

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.call("POST", path, json=body)


def _reason(exc: BaseException) -> str:
    """Why a connection failed, in words: 'connection refused' rather than a repr."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            if cause.errno == errno.ECONNREFUSED:
                return "connection refused"
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    text = str(exc).lower()
    return "connection refused" if "refused" in text else (text or type(exc).__name__)


# -- printing ----------------------------------------------------------------------------------
def console() -> Console:
    out = Console()
    return out if out.is_terminal else Console(width=WIDE)


def show(settings: Settings, data: Any, render: Callable[[Any], None]) -> None:
    if settings.as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        render(data)


def key_values(title: str, rows: Iterable[tuple[str, Any]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, "" if value is None else str(value))
    console().print(table)


def rows_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console().print(table)


# -- the commands --------------------------------------------------------------------------------
def json_flag(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` after the command too (``fc chain tip --json``)."""

    def remember(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            ctx.find_object(Settings).as_json = True  # type: ignore[union-attr]

    return click.option(
        "--json",
        "json_",
        is_flag=True,
        expose_value=False,
        callback=remember,
        help="print the API's JSON instead of tables",
    )(command)


pass_settings = click.make_pass_decorator(Settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--datadir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FC_DATADIR",
    help="the node's data directory (default ~/.foundation-coin/NETWORK)",
)
@click.option(
    "--network",
    type=click.Choice(list(NETWORKS)),
    envvar="FC_NETWORK",
    help="default: what the data directory says (fcd.json, fc.toml), else mainnet",
)
@click.option("--rpc-url", envvar="FC_RPC_URL", help="e.g. http://127.0.0.1:27332")
@click.option("--rpc-token", envvar="FC_RPC_TOKEN", help="instead of DATADIR/.cookie")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
@click.pass_context
def cli(
    ctx: click.Context,
    datadir: Path | None,
    network: str | None,
    rpc_url: str | None,
    rpc_token: str | None,
    as_json: bool,
) -> None:
    """Talk to a running Foundation Coin node (fcd)."""
    ctx.obj = Settings.resolve(datadir, network, rpc_url, rpc_token, as_json)


# -- fc node ...
@cli.group()
def node() -> None:
    """The node itself and its peers."""


@node.command("info")
@json_flag
@pass_settings
def node_info(settings: Settings) -> None:
    """Network, version, tip, mempool and peers at a glance."""
    data = Node(settings).get("/node/info")

    def render(d: Any) -> None:
        key_values(
            "node",
            [
                ("network", d["network"]),
                ("version", d["version"]),
                ("height", d["height"]),
                ("tip", d["tip"]),
                ("mempool", f"{d['mempool']['count']} txs, {d['mempool']['bytes']} bytes"),
                ("peers", "p2p off" if d["peers"] is None else d["peers"]),
                ("peer id", d["peer_id"]),
                ("listening", " ".join(d["listen_addrs"])),
                ("index height", d["index_height"]),
                ("uptime", f"{d['uptime_seconds']} s"),
            ],
        )

    show(settings, data, render)


@node.command("peers")
@json_flag
@pass_settings
def node_peers(settings: Settings) -> None:
    """Connected peers."""
    data = Node(settings).get("/peers")

    def render(d: Any) -> None:
        peers = d["peers"]
        if not peers:
            click.echo("no peers")
            return
        columns = list(peers[0])
        rows_table(f"{len(peers)} peers", columns, ([p.get(c) for c in columns] for p in peers))

    show(settings, data, render)


@node.command("ban")
@click.argument("peer_id")
@click.option("--seconds", type=click.IntRange(min=1), default=86_400, show_default=True)
@json_flag
@pass_settings
def node_ban(settings: Settings, peer_id: str, seconds: int) -> None:
    """Disconnect PEER_ID and refuse it for a while."""
    data = Node(settings).post("/peers/ban", {"peer_id": peer_id, "seconds": seconds})
    show(settings, data, lambda d: click.echo(f"banned {d['peer_id']} for {d['seconds']} s"))


@node.command("unban")
@click.argument("peer_id")
@json_flag
@pass_settings
def node_unban(settings: Settings, peer_id: str) -> None:
    """Lift a ban."""
    data = Node(settings).post("/peers/unban", {"peer_id": peer_id})
    show(
        settings,
        data,
        lambda d: click.echo(
            f"unbanned {d['peer_id']}" if d["unbanned"] else f"{d['peer_id']} was not banned"
        ),
    )


# -- fc chain ...
@cli.group()
def chain() -> None:
    """Blocks of the active chain."""


@chain.command("tip")
@json_flag
@pass_settings
def chain_tip(settings: Settings) -> None:
    """Height and hash of the best block."""
    data = Node(settings).get("/chain/tip")
    show(
        settings,
        data,
        lambda d: key_values(
            "tip",
            [
                ("height", d["height"]),
                ("hash", d["hash"]),
                ("time", d["time"]),
                ("median time past", d["median_time_past"]),
                ("chain work", d["chain_work"]),
            ],
        ),
    )


@chain.command("block")
@click.argument("block_id", metavar="HEIGHT|HASH")
@click.option("--raw", is_flag=True, help="include the block's encoding (hex)")
@json_flag
@pass_settings
def chain_block(settings: Settings, block_id: str, raw: bool) -> None:
    """One block: its header and transactions."""
    data = Node(settings).get(f"/chain/block/{block_id}", raw=raw or None)

    def render(d: Any) -> None:
        h = d["header"]
        key_values(
            f"block {d['height']}",
            [
                ("hash", d["hash"]),
                ("confirmations", d["confirmations"]),
                ("previous", h["prev_hash"]),
                ("next", d["next_hash"]),
                ("time", h["time"]),
                ("merkle root", h["merkle_root"]),
                ("producer", h["work"]["worker_key"]),
                ("size", f"{d['size']} bytes"),
                ("transactions", len(d["transactions"])),
            ],
        )
        rows_table(
            "transactions",
            ["txid", "kind", "inputs", "outputs", "amount"],
            (
                [t["txid"], t["kind"], len(t["inputs"]), len(t["outputs"]), t["output_total_fc"]]
                for t in d["transactions"]
            ),
        )
        if d.get("hex"):
            click.echo(d["hex"])

    show(settings, data, render)


# -- fc tx, fc send, fc mempool
@cli.command("tx")
@click.argument("txid")
@click.option("--raw", is_flag=True, help="include the transaction's encoding (hex)")
@json_flag
@pass_settings
def tx(settings: Settings, txid: str, raw: bool) -> None:
    """A transaction from the mempool or the chain."""
    data = Node(settings).get(f"/tx/{txid}", raw=raw or None)

    def render(d: Any) -> None:
        where = "mempool" if d["in_mempool"] else f"block {d['block_height']} ({d['block_hash']})"
        key_values(
            "transaction",
            [
                ("txid", d["txid"]),
                ("kind", d["kind"]),
                ("in", where),
                ("confirmations", d["confirmations"]),
                ("fee", None if d["fee_fc"] is None else f"{d['fee_fc']} FC"),
                ("size", f"{d['size']} bytes"),
            ],
        )
        rows_table(
            "inputs",
            ["spends"],
            ([f"{i['txid']}:{i['vout']}"] for i in d["inputs"]),
        )
        rows_table(
            "outputs",
            ["n", "address", "amount"],
            ([o["n"], o["address"], f"{o['amount_fc']} FC"] for o in d["outputs"]),
        )
        if d.get("hex"):
            click.echo(d["hex"])

    show(settings, data, render)


@cli.command("send")
@click.argument("hex_or_dash", metavar="HEX|-")
@json_flag
@pass_settings
def send(settings: Settings, hex_or_dash: str) -> None:
    """Submit a signed transaction (hex; '-' reads it from stdin)."""
    text = sys.stdin.read() if hex_or_dash == "-" else hex_or_dash
    data = Node(settings).post("/tx", {"hex": text.strip()})
    show(settings, data, lambda d: click.echo(d["txid"] + (" (orphan)" if d["orphan"] else "")))


@cli.command("mempool")
@click.option("--limit", type=click.IntRange(0, 100_000), default=100, show_default=True)
@json_flag
@pass_settings
def mempool(settings: Settings, limit: int) -> None:
    """Transactions waiting for a block."""
    data = Node(settings).get("/mempool", limit=limit)

    def render(d: Any) -> None:
        key_values(
            "mempool",
            [
                ("transactions", d["count"]),
                ("bytes", d["bytes"]),
                ("orphans", d["orphans"]),
                ("min fee rate", f"{d['min_fee_rate']} units/kB"),
            ],
        )
        if d["txids"]:
            more = f" (first {len(d['txids'])})" if d["truncated"] else ""
            rows_table(f"txids{more}", ["txid"], ([t] for t in d["txids"]))

    show(settings, data, render)


# -- fc address ...
@cli.group()
def address() -> None:
    """Coins and history of an address."""


@address.command("coins")
@click.argument("addr", metavar="ADDRESS")
@json_flag
@pass_settings
def address_coins(settings: Settings, addr: str) -> None:
    """Unspent coins of ADDRESS."""
    data = Node(settings).get(f"/address/{addr}/coins")

    def render(d: Any) -> None:
        rows_table(
            f"{len(d['coins'])} coins, {d['total_fc']} FC",
            ["outpoint", "amount", "height", "mature", "spent in mempool"],
            (
                [
                    f"{c['txid']}:{c['vout']}",
                    f"{c['amount_fc']} FC",
                    c["height"],
                    "yes" if c["mature"] else "no",
                    c["spent_in_mempool"] or "",
                ]
                for c in d["coins"]
            ),
        )

    show(settings, data, render)


@address.command("history")
@click.argument("addr", metavar="ADDRESS")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--cursor", help="next_cursor of the previous page")
@json_flag
@pass_settings
def address_history(settings: Settings, addr: str, limit: int, cursor: str | None) -> None:
    """What ADDRESS received and spent, newest first."""
    data = Node(settings).get(f"/address/{addr}/history", limit=limit, cursor=cursor)

    def render(d: Any) -> None:
        rows_table(
            "history",
            ["height", "txid", "", "amount"],
            (
                [e["height"], e["txid"], e["direction"], f"{e['amount_fc']} FC"]
                for e in d["entries"]
            ),
        )
        if d["next_cursor"]:
            click.echo(f"more: --cursor {d['next_cursor']}")

    show(settings, data, render)


# -- fc generate
@cli.command("generate")
@click.argument("count", type=click.IntRange(1, 1000))
@click.option("--to", "pay_to", metavar="ADDRESS", help="who the coinbases pay (default: node)")
@json_flag
@pass_settings
def generate(settings: Settings, count: int, pay_to: str | None) -> None:
    """Produce COUNT blocks now (regtest only)."""
    body: dict[str, Any] = {"count": count}
    if pay_to is not None:
        body["pay_to"] = pay_to
    data = Node(settings).post("/generate", body)

    def render(d: Any) -> None:
        first = d["height"] - len(d["hashes"]) + 1
        rows_table(
            f"{len(d['hashes'])} blocks to {d['pay_to']}",
            ["height", "hash"],
            ([first + n, h] for n, h in enumerate(d["hashes"])),
        )

    show(settings, data, render)


# -- fc mining ...
@cli.group()
def mining() -> None:
    """The node's miner (fcd --mine)."""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (no draws yet)"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@mining.command("info")
@json_flag
@pass_settings
def mining_info(settings: Settings) -> None:
    """Whether the node mines, its draw rate, blocks found and time to a block."""
    data = Node(settings).get("/mining/info")

    def render(d: Any) -> None:
        if d["mining"]:
            threads = f"{d['threads']} thread{'' if d['threads'] == 1 else 's'}"
            state = f"yes, on {d['device']} ({threads}, batches of {d['batch']})"
        else:
            state = "no (start fcd with --mine)"
        key_values(
            "mining",
            [
                ("mining", state),
                ("height", d["height"]),
                ("target", d["target"]),
                ("draws per block", f"{d['network_draws_per_block']:,} expected"),
                ("draws", f"{d['draws']:,}"),
                ("draws/s", f"{d['draws_per_second']:.2f}"),
                (
                    "time to a block",
                    _duration(d["expected_seconds_per_block"]) if d["mining"] else "-",
                ),
                ("blocks found", d["blocks_found"]),
            ],
        )
        if d["found"]:
            rows_table(
                "latest blocks found",
                ["height", "hash"],
                ([f["height"], f["hash"]] for f in d["found"][-10:]),
            )

    show(settings, data, render)


cli.add_command(job)
cli.add_command(exact)
cli.add_command(wallet)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=argv, prog_name="fc")


if __name__ == "__main__":
    main()
