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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import multiaddr  # type: ignore[import-untyped]
from libp2p.peer.peerinfo import InvalidAddrError, info_from_p2p_addr

from chain.params import NETWORKS
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

    @property
    def config_file(self) -> Path:
        return self.datadir / CONFIG_FILE


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


CHECKS = {
    "network": _network,
    "p2p_port": _port,
    "rpc_port": _port,
    "bind": _address,
    "rpc_bind": _address,
    "connect": _connect,
    "log_level": _log_level,
    "max_peers": _max_peers,
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
    p2p_default, rpc_default = DEFAULT_PORTS[network]
    settings.setdefault("p2p_port", p2p_default)
    settings.setdefault("rpc_port", rpc_default)
    return NodeConfig(datadir=datadir, **settings)
