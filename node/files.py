"""Writing the node's small files so that a kill at any instant leaves the old file or
the new one, never half of one (the ready file ``fcd.json``, the p2p and miner keys)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file, fsynced, renamed over it."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def read_or_create_secret(path: Path, size: int) -> bytes:
    """The bytes kept at ``path``, or ``size`` random bytes written there (mode 0600) if
    the file does not exist. Raises ``OSError`` when it cannot be read; the caller checks
    what it read and words the message for its key."""
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        secret = secrets.token_bytes(size)
        write_private(path, secret)
    return secret


def write_private(path: Path, data: bytes) -> None:
    """Write a secret atomically, its file created mode 0600 (never readable by others,
    not even for an instant)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by the umask; be exact
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    _fsync_directory(path.parent)
