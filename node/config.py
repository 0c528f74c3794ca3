"""The daemon's settings: defaults, an optional ``fc.toml`` in the data directory, flags.

A setting comes from the first of these that names it: a command-line flag, the data
directory's ``fc.toml``, the built-in default. The data directory is chosen first (flag,
or ``~/.foundation-coin/<network>``), because that is where the file lives.

``fc.toml`` takes the same settings as the flags, with underscores for dashes, plus a
``[policy]`` table with the mempool numbers of :class:`chain.policy.PolicyConfig`::

    network = "regtest"
    p2p_port = 27333
    rpc_port = 27332
    connect = ["/ip4/127.0.0.1/tcp/27433/p2p/12D3KooW..."]
    log_level = "debug"
    store = "/var/lib/fc-store"      # where the integer lottery model is kept
    mine = true
    device = "cpu"
    mine_threads = 2
    pay_to = "fcrt1..."

    [policy]
    max_mempool_bytes = 50_000_000

Everything is checked before the node opens anything, and a mistake is one line naming
the key (``fc.toml: rpc_port must be an integer in 0..65535, got "abc"``), never a
traceback and never a silently ignored typo: an unknown key is an error.

Port 0 means "any free port": the daemon reports the ports it actually bound in its
ready file (see ``node.daemon``), which is how tests run many nodes side by side.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import multiaddr  # type: ignore[import-untyped]
from libp2p.peer.peerinfo import InvalidAddrError, info_from_p2p_addr

from chain.params import NETWORKS, ChainParams, params_for, regtest_with
from chain.policy import PolicyConfig

CONFIG_FILE = "fc.toml"
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_NETWORK = "mainnet"

# (p2p, rpc) per network, apart so nodes of several networks can run on one machine.
DEFAULT_PORTS: dict[str, tuple[int, int]] = {
    "mainnet": (7333, 7332),
    "testnet": (17333, 17332),
    "regtest": (27333, 27332),
}


class ConfigError(Exception):
    """A setting is missing, unknown or out of range; the message is one line for a person."""


def default_datadir(network: str) -> Path:
    return Path.home() / ".foundation-coin" / network


@dataclass(frozen=True)
class NodeConfig:
    network: str
    datadir: Path
    p2p_port: int
    rpc_port: int
    bind: str = "127.0.0.1"  # where the p2p listener binds
    rpc_bind: str = "127.0.0.1"  # where RPC binds; widen it only behind a firewall
    connect: tuple[str, ...] = ()  # peers to dial at start, as /ip4/…/tcp/…/p2p/<id>
    log_level: str = "info"
    max_peers: int = 32
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    store: Path | None = None  # the blob store of the lottery model (default DATADIR/store)
    mine: bool = False  # draw for blocks on the tip (specs/pob.md)
    device: str = "cpu"  # where draws run: cpu or cuda
    mine_threads: int = 1  # torch threads the miner's draws use
    mine_batch: int = 8  # draws computed together (one batched generation)
    pay_to: str | None = None  # address the miner's coinbase pays (default: DATADIR/miner.key)
    assume_valid: str | None = None  # block hash (hex) or "0" to re-execute every draw
    regtest_draws_per_block: int = 1  # regtest only: a fixed target this many draws hard

    @property
    def config_file(self) -> Path:
        return self.datadir / CONFIG_FILE

    @property
    def store_dir(self) -> Path:
        return self.store if self.store is not None else self.datadir / "store"

    def chain_params(self) -> ChainParams:
        """The network's parameters with this node's overrides (assume-valid; regtest's
        target)."""
        params = params_for(self.network)
        if self.network == "regtest":
            params = regtest_with(self.regtest_draws_per_block)
        if self.assume_valid is not None:
            hash_ = None if self.assume_valid == "0" else bytes.fromhex(self.assume_valid)
            params = replace(params, assume_valid=hash_)
        return params


# The settings a flag or the file may give, with the check each value must pass.
def _port(key: str, value: Any) -> int:
    if type(value) is not int or not 0 <= value <= 65535:
        raise ConfigError(f"{key} must be an integer in 0..65535, got {value!r}")
    return value


def _address(key: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(f"{key} must be an IP address, got {value!r}") from None


def _network(key: str, value: Any) -> str:
    if value not in NETWORKS:
        raise ConfigError(f"{key} must be one of {', '.join(NETWORKS)}, got {value!r}")
    return str(value)


def _log_level(key: str, value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in LOG_LEVELS:
        raise ConfigError(f"{key} must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value.lower()


def _max_peers(key: str, value: Any) -> int:
    if type(value) is not int or not 1 <= value <= 1000:
        raise ConfigError(f"{key} must be an integer in 1..1000, got {value!r}")
    return value


def _peer_address(key: str, value: Any) -> str:
    """A dialable peer: a multiaddr that ends in /p2p/<peer id>."""
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a multiaddr string, got {value!r}")
    try:
        info_from_p2p_addr(multiaddr.Multiaddr(value))
    except (ValueError, InvalidAddrError, multiaddr.exceptions.Error) as exc:
        raise ConfigError(
            f"{key}: {value!r} is not a peer address like "
            f"/ip4/127.0.0.1/tcp/27333/p2p/<peer id> ({exc})"
        ) from None
    return value


def _connect(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"{key} must be a list of peer addresses, got {value!r}")
    return tuple(_peer_address(key, item) for item in value)


def _path(key: str, value: Any) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise ConfigError(f"{key} must be a directory path, got {value!r}")
    return Path(value).expanduser().resolve()


def _bool(key: str, value: Any) -> bool:
    if type(value) is not bool:
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def _device(key: str, value: Any) -> str:
    if value not in ("cpu", "cuda"):
        raise ConfigError(f"{key} must be cpu or cuda, got {value!r}")
    return str(value)


def _count(lo: int, hi: int) -> Any:
    def check(key: str, value: Any) -> int:
        if type(value) is not int or not lo <= value <= hi:
            raise ConfigError(f"{key} must be an integer in {lo}..{hi}, got {value!r}")
        return value

    return check


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ConfigError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _assume_valid(key: str, value: Any) -> str:
    if value == "0" or (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value.lower())
    ):
        return str(value).lower()
    raise ConfigError(
        f"{key} must be a 64-hex-digit block hash or 0 (check every draw), got {value!r}"
    )


CHECKS = {
    "network": _network,
    "p2p_port": _port,
    "rpc_port": _port,
    "bind": _address,
    "rpc_bind": _address,
    "connect": _connect,
    "log_level": _log_level,
    "max_peers": _max_peers,
    "store": _path,
    "mine": _bool,
    "device": _device,
    "mine_threads": _count(1, 256),
    "mine_batch": _count(1, 256),
    "pay_to": _text,
    "assume_valid": _assume_valid,
    "regtest_draws_per_block": _count(1, 2**32),
}
POLICY_KEYS = frozenset(f.name for f in fields(PolicyConfig))


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in ``fc.toml`` (checked), or nothing when there is no file."""
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    settings: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "policy":
            settings["policy"] = _policy(path, value)
        elif key in CHECKS:
            settings[key] = _checked(key, value, f"{path.name}: {key}")
        else:
            known = ", ".join([*CHECKS, "policy"])
            raise ConfigError(f"{path.name}: unknown key {key!r} (known: {known})")
    return settings


def _checked(key: str, value: Any, label: str) -> Any:
    """``value`` for setting ``key`` after its check; errors name it as ``label``."""
    return CHECKS[key](label, value)


def _policy(path: Path, table: Any) -> PolicyConfig:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path.name}: policy must be a table ([policy])")
    for key in table:
        if key not in POLICY_KEYS:
            raise ConfigError(
                f"{path.name}: unknown key 'policy.{key}' (known: {', '.join(sorted(POLICY_KEYS))})"
            )
    try:
        return PolicyConfig(**table)
    except ValueError as exc:
        raise ConfigError(f"{path.name}: policy: {exc}") from None


def load_config(
    flags: Mapping[str, Any], datadir: Path | None = None, *, read_file: bool = True
) -> NodeConfig:
    """Merge ``flags`` (unset ones are None or absent) over ``fc.toml`` over the defaults.

    ``datadir`` None means the default directory of the network given by the flags (or
    mainnet): the file can choose the network but not its own directory.
    """
    given = {key: value for key, value in flags.items() if value is not None}
    for key in given:
        if key not in CHECKS:
            raise ConfigError(f"unknown setting {key!r}")
    checked = {
        key: _checked(key, value, "--" + key.replace("_", "-")) for key, value in given.items()
    }
    if datadir is None:
        datadir = default_datadir(checked.get("network", DEFAULT_NETWORK))
    datadir = datadir.expanduser().resolve()
    settings = read_config_file(datadir / CONFIG_FILE) if read_file else {}
    settings.update(checked)
    network = settings.setdefault("network", DEFAULT_NETWORK)
    if settings.get("regtest_draws_per_block", 1) != 1 and network != "regtest":
        raise ConfigError("regtest_draws_per_block applies to regtest only")
    p2p_default, rpc_default = DEFAULT_PORTS[network]
    settings.setdefault("p2p_port", p2p_default)
    settings.setdefault("rpc_port", rpc_default)
    return NodeConfig(datadir=datadir, **settings)
