"""``fcd``: the Foundation Coin daemon.

One process, one trio loop, one nursery. In it run the node's three parts:

* :class:`node.core.NodeCore`, the only owner of the chainstate and the mempool;
* :class:`node.p2p.service.P2PService`, the libp2p host that syncs and relays;
* the RPC app (FastAPI) served by hypercorn on the same loop, so a handler calls the
  core and the network directly, with no locks or queues between threads;
* with ``--mine``, :class:`node.mining.Miner`, drawing for blocks on the tip in a worker
  thread and submitting what it wins to the core (the p2p relay announces it).

Start-up, in order: read the settings (``node.config``); lock the data directory, so a
second daemon on it fails at once with a clear message instead of deep inside LevelDB;
open the log; open the chainstate (in a worker thread: finishing an activation that a
kill interrupted may take a while, and a SIGTERM meanwhile must still be heard); start
the p2p listener and the RPC server, then the miner if asked; then write the ready file
``fcd.json``::

    {"network": "regtest", "pid": 4242,
     "rpc_url": "http://127.0.0.1:27332", "rpc_port": 27332,
     "p2p_port": 27333, "peer_id": "12D3KooW…",
     "p2p_addrs": ["/ip4/127.0.0.1/tcp/27333/p2p/12D3KooW…"]}

It is written atomically (temporary file, fsync, rename) only once both listeners are
up, with the ports actually bound (port 0 asks for any free one), so whoever sees it
(``fc --datadir``, the functional tests) can talk to the node at once. It is removed on a
clean exit; after a kill it stays behind, and its ``pid`` tells whether it is stale.

Shutdown: SIGINT or SIGTERM cancels the nursery. Cancellation never abandons a worker
thread, so a block being validated is committed (or not) whole before the services
stop; then the ready file goes, and the chainstate closes, flushing LevelDB. Each
step is logged, and the exit status is 0. Whatever stops the node from starting (a bad
flag, a port in use, a data directory of another network or in use) is one line on
stderr and exit status 1.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import click
import plyvel
import trio

from chain.chainstate import K_NETWORK, ChainstateError
from chain.params import NETWORKS, ChainParams
from node.auth import write_cookie
from node.config import LOG_LEVELS, ConfigError, NodeConfig, load_config
from node.core import NodeCore
from node.files import write_atomically
from node.indexes import ChainIndexes
from node.logs import setup_logging
from node.mining import Miner, MinerKeyError, miner_for
from node.p2p.identity import IdentityError
from node.p2p.service import P2PConfig, P2PService
from node.rpc import RpcContext, create_app, serve_rpc
from wallet.address import AddressError, decode_address

log = logging.getLogger("fcd")

READY_FILE = "fcd.json"
LOCK_FILE = ".lock"
P2P_KEY_FILE = "p2p.key"
# What to run for torch's CUDA build (scripts/setup.sh --cuda); --device cuda names it.
CUDA_SETUP_COMMAND = "make setup CUDA=1"


class StartupError(Exception):
    """The node cannot start; the message is one line for the operator."""


# -- the data directory ------------------------------------------------------------
@contextmanager
def datadir_lock(datadir: Path) -> Any:
    """Hold an exclusive lock on ``datadir`` for the life of the process.

    ``flock`` is released by the kernel when the process dies, however it dies, so a
    killed node never leaves a stale lock behind.
    """
    path = datadir / LOCK_FILE
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise StartupError(
                f"data directory {datadir} is in use by another fcd (pid {holder})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def ready_info(config: NodeConfig, rpc_port: int, p2p: P2PService) -> dict[str, Any]:
    peer_id = str(p2p.peer_id)
    suffix = f"/p2p/{peer_id}"
    addrs = [a if a.endswith(suffix) else a + suffix for a in p2p.listen_addrs]
    ports = [int(a.split("/tcp/")[1].split("/")[0]) for a in addrs if "/tcp/" in a]
    host = f"[{config.rpc_bind}]" if ":" in config.rpc_bind else config.rpc_bind
    return {
        "network": config.network,
        "pid": os.getpid(),
        "rpc_url": f"http://{host}:{rpc_port}",
        "rpc_port": rpc_port,
        "p2p_port": ports[0] if ports else None,
        "peer_id": peer_id,
        "p2p_addrs": addrs,
    }


def check_port_free(what: str, flag: str, host: str, port: int) -> None:
    """Fail early, and clearly, when a fixed port is taken (0 always binds).

    Only a courtesy: the real bind comes later and can still lose a race, which then
    surfaces as a plain OSError (see :func:`main`).
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Same option the real listeners set, so a port in TIME_WAIT is not "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"{what} port {host}:{port} is already in use (choose another with {flag})"
                ) from None
            raise StartupError(f"cannot bind {what} to {host}:{port}: {exc.strerror}") from None


# -- running -------------------------------------------------------------------
def check_device(device: str) -> None:
    """``--device cuda`` needs a torch built for CUDA and a GPU it can see."""
    if device != "cuda":
        return
    import torch  # imported here: only a CUDA node pays for it before the model loads

    if torch.version.cuda is None:
        raise StartupError(
            f"--device cuda: torch {torch.__version__} is the CPU build; install the CUDA "
            f"build with: {CUDA_SETUP_COMMAND}"
        )
    if not torch.cuda.is_available():
        raise StartupError(
            f"--device cuda: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no "
            "GPU; check the NVIDIA driver and CUDA_VISIBLE_DEVICES"
        )


def payee(config: NodeConfig, params: ChainParams) -> bytes | None:
    """The key ``--pay-to`` names, or None (the miner pays its own key)."""
    if config.pay_to is None:
        return None
    try:
        return decode_address(config.pay_to, params)
    except AddressError as exc:
        raise StartupError(f"--pay-to {config.pay_to!r}: {exc}") from None


def open_lottery(config: NodeConfig, params: ChainParams) -> Any:
    """Load the network's integer lottery model (deriving it into the store the first
    time: about 5 s for the tiny model, a minute for SmolLM2)."""
    from workloads.lottery import ExactLottery, LotteryError
    from workloads.store import BlobStore

    check_device(config.device)
    # torch's thread count is process-wide: a miner's --mine-threads serves validation
    # too; a node that does not mine checks blocks on one thread (the lottery's default).
    threads = config.mine_threads if config.mine else 1
    try:
        return ExactLottery(params, BlobStore(config.store_dir), config.device, threads=threads)
    except (LotteryError, OSError) as exc:
        raise StartupError(
            f"cannot load the lottery model into {config.store_dir}: {exc}"
        ) from None


def check_datadir_network(config: NodeConfig) -> None:
    """Refuse another network's data directory before loading the lottery model (which
    may take a minute to derive the first time)."""
    path = config.datadir / "chainstate"
    if not path.exists():
        return
    try:
        db = plyvel.DB(str(path), create_if_missing=False)
    except plyvel.Error as exc:
        raise StartupError(f"cannot open the chainstate in {config.datadir}: {exc}") from None
    try:
        network = db.get(K_NETWORK)
    finally:
        db.close()
    if network is not None and network != config.network.encode():
        raise StartupError(
            f"cannot open the chainstate in {config.datadir}: data directory belongs to "
            f"{network.decode(errors='replace')!r}, not {config.network!r}"
        )


def open_core(config: NodeConfig) -> NodeCore:
    params = config.chain_params()
    check_datadir_network(config)
    lottery = open_lottery(config, params)
    try:
        return NodeCore(config.datadir, params, config.policy, lottery=lottery)
    except ChainstateError as exc:
        raise StartupError(f"cannot open the chainstate in {config.datadir}: {exc}") from None
    except plyvel.Error as exc:
        raise StartupError(f"cannot open the chainstate in {config.datadir}: {exc}") from None


async def stop_on_signal(signals: Any, scope: trio.CancelScope) -> None:
    async for signum in signals:
        if scope.cancel_called:
            log.info("%s: already stopping", signal.Signals(signum).name)
        else:
            log.info("%s: stopping", signal.Signals(signum).name)
            scope.cancel()


def open_miner(config: NodeConfig, core: NodeCore, pay_to: bytes | None) -> Miner | None:
    """The miner ``--mine`` asks for, signing with ``DATADIR/miner.key``; else None."""
    if not config.mine:
        return None
    try:
        return miner_for(
            core,
            config.datadir,
            pay_to=pay_to,
            batch=config.mine_batch,
            device=config.device,
            threads=config.mine_threads,
        )
    except MinerKeyError as exc:
        raise StartupError(str(exc)) from None


async def run_node(config: NodeConfig) -> None:
    """Run until SIGINT or SIGTERM; raise :class:`StartupError` if the node cannot start."""
    ready_path = config.datadir / READY_FILE
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        check_port_free("p2p", "--p2p-port", config.bind, config.p2p_port)
        check_port_free("rpc", "--rpc-port", config.rpc_bind, config.rpc_port)
        pay_to = payee(config, config.chain_params())
        started_at = time.time()
        core = await trio.to_thread.run_sync(open_core, config)
        log.info(
            "chainstate open: %s, height %d, tip %s",
            config.network,
            core.chainstate.height,
            core.chainstate.tip.hash.hex(),
        )
        try:
            miner = open_miner(config, core, pay_to)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stop_on_signal, signals, nursery.cancel_scope)
                p2p = P2PService(
                    core,
                    P2PConfig(
                        listen_host=config.bind,
                        port=config.p2p_port,
                        connect=config.connect,
                        key_path=config.datadir / P2P_KEY_FILE,
                        max_peers=config.max_peers,
                    ),
                )
                await nursery.start(p2p.run)
                context = RpcContext(
                    core=core,
                    peers=p2p,
                    token=write_cookie(config.datadir),
                    indexes=ChainIndexes(core),
                    started_at=started_at,
                    datadir=config.datadir,
                    miner=miner,
                )
                rpc_port = await nursery.start(
                    serve_rpc, create_app(context), config.rpc_bind, config.rpc_port
                )
                if miner is not None:
                    # Last: its blocks go out through the p2p service, and its counters
                    # are read through the RPC, so both are up first.
                    await nursery.start(miner.run)
                info = ready_info(config, rpc_port, p2p)
                write_atomically(ready_path, json.dumps(info, indent=2).encode() + b"\n")
                log.info("ready: rpc %s, p2p %s", info["rpc_url"], " ".join(info["p2p_addrs"]))
        finally:
            # Every task has ended here, worker threads included (trio never abandons
            # one on cancel), so no block is half-way through validation.
            with suppress(FileNotFoundError):
                ready_path.unlink()
            core.close()
            log.info("chainstate closed at height %d", core.chainstate.height)


# Errors the operator can fix, shown as one line: a port lost to a race after the
# check above, an unreadable file, a damaged p2p key. Anything else is a bug: traceback.
OPERATOR_ERRORS = (OSError, IdentityError)


def operator_error(exc: BaseException) -> BaseException | None:
    """The first operator error inside ``exc`` (trio nurseries wrap errors in groups)."""
    if isinstance(exc, OPERATOR_ERRORS):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = operator_error(inner)
            if found is not None:
                return found
    return None


# -- the command ---------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--network", type=click.Choice(list(NETWORKS)), help="chain (default mainnet)")
@click.option("--datadir", type=click.Path(path_type=Path), help="data directory")
@click.option("--p2p-port", type=int, help="p2p listen port (0: any free port)")
@click.option("--rpc-port", type=int, help="RPC listen port (0: any free port)")
@click.option("--bind", help="p2p listen address (default 127.0.0.1)")
@click.option("--rpc-bind", help="RPC listen address (default 127.0.0.1)")
@click.option(
    "--connect", multiple=True, help="peer to dial, /ip4/HOST/tcp/PORT/p2p/ID (repeatable)"
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), help="default info")
@click.option("--max-peers", type=int, help="most peers at once (default 32)")
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="blob store of the lottery model (default DATADIR/store)",
)
@click.option(
    "--mine/--no-mine", default=None, help="draw for blocks on the tip (default: do not mine)"
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    help="where draws run, mined and verified (default cpu; cuda needs: make setup CUDA=1)",
)
@click.option(
    "--mine-threads",
    type=int,
    help="torch threads for drawing (default 1); torch's setting is process-wide",
)
@click.option("--mine-batch", type=int, help="draws computed together (default 8)")
@click.option(
    "--pay-to", metavar="ADDRESS", help="address the mined coinbases pay (default: miner.key)"
)
@click.option(
    "--assume-valid",
    metavar="HASH|0",
    help="skip re-executing the draws of this block and its ancestors in sync (0: check all)",
)
@click.option(
    "--regtest-draws-per-block",
    type=int,
    help="regtest only: a fixed target this many draws hard (default 1)",
)
def command(datadir: Path | None, connect: tuple[str, ...], **flags: Any) -> NodeConfig:
    """Run a Foundation Coin node. Settings may also live in DATADIR/fc.toml."""
    return load_config({**flags, "connect": list(connect) or None}, datadir)


def parse_args(argv: Sequence[str] | None) -> NodeConfig:
    try:
        config = command.main(args=argv, prog_name="fcd", standalone_mode=False)
    except click.ClickException as exc:
        raise ConfigError(exc.format_message()) from None
    if not isinstance(config, NodeConfig):  # --help printed and returned an exit code
        raise SystemExit(0)
    return config


def fail(message: str, stderr_log: logging.Handler | None = None) -> None:
    """Log ``message`` to the file (if open), print it as one line, exit with status 1."""
    if stderr_log is not None:
        logging.getLogger().removeHandler(stderr_log)  # stderr gets the plain line below
        log.error("%s", message)
    print(f"fcd: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        config = parse_args(argv)
    except ConfigError as exc:
        fail(str(exc))
    try:
        config.datadir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create data directory {config.datadir}: {exc.strerror}")
    stderr_log = None
    try:
        with datadir_lock(config.datadir):
            stderr_log = setup_logging(config.datadir, config.log_level)
            log.info("fcd %s starting in %s (pid %d)", config.network, config.datadir, os.getpid())
            log.debug("settings: %s", config)
            trio.run(run_node, config)
    except StartupError as exc:
        fail(str(exc), stderr_log)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        fail("interrupted while starting", stderr_log)
    except BaseException as exc:
        error = operator_error(exc)
        if error is None:
            log.exception("fcd stopped by an unexpected error")
            raise
        fail(str(error), stderr_log)
    log.info("fcd stopped cleanly")


if __name__ == "__main__":
    main()
