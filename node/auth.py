"""The RPC cookie: a random bearer token in a file only the node's user can read.

Like Bitcoin Core's ``.cookie``: at every start the daemon draws a fresh token and
writes it to ``DATADIR/.cookie`` with mode 0600, and every RPC request except
``/health`` must carry it as ``Authorization: Bearer <token>``. Whoever can read the
data directory can drive the node; nobody else on the machine can, and there is no
password to configure, leak in a config file or forget to change. A token from a
previous run stops working when the node restarts.

The file is created with its final mode (never world-readable, not even for an
instant) under a temporary name, then renamed over the old one, so a reader sees the
old token or the new, never half a file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

COOKIE_FILE = ".cookie"
TOKEN_BYTES = 32  # 256 bits, written as 64 hex characters


class CookieError(Exception):
    """The cookie file is missing or unreadable; the message says where to look."""


def cookie_path(datadir: Path) -> Path:
    return datadir / COOKIE_FILE


def write_cookie(datadir: Path) -> str:
    """Draw a new token, store it in ``datadir/.cookie`` (mode 0600) and return it."""
    token = secrets.token_hex(TOKEN_BYTES)
    path = cookie_path(datadir)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)  # left by a kill; O_EXCL below wants it gone
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, token.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    return token


def read_cookie(datadir: Path) -> str:
    """The token the node running on ``datadir`` wrote."""
    path = cookie_path(datadir)
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise CookieError(
            f"no RPC cookie at {path}; is fcd running with this data directory?"
        ) from None
    except OSError as exc:
        raise CookieError(f"cannot read the RPC cookie {path}: {exc.strerror}") from None
    if not token:
        raise CookieError(f"the RPC cookie {path} is empty")
    return token
