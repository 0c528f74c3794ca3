"""The node's libp2p identity: an Ed25519 key kept in the data directory.

The peer id is derived from this key, so keeping the key keeps the id: peers that list
us by ``/ip4/…/tcp/…/p2p/<id>`` can still find us after a restart. The file holds the
32-byte Ed25519 seed and nothing else; it is created readable by its owner only (mode
0600) and written atomically (temporary file, fsync, rename), so a kill while creating it
leaves either no key or a whole one, never half of one.
"""

from __future__ import annotations

from pathlib import Path

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair

from node.files import read_or_create_secret

SEED_SIZE = 32


class IdentityError(Exception):
    """The key file exists but cannot be used; the message says why, in one line."""


def load_or_create_identity(path: Path) -> KeyPair:
    """The key pair stored at ``path``, made (mode 0600) if the file does not exist."""
    try:
        seed = read_or_create_secret(path, SEED_SIZE)
    except OSError as exc:
        raise IdentityError(f"cannot read p2p key {path}: {exc.strerror}") from None
    if len(seed) != SEED_SIZE:
        raise IdentityError(
            f"p2p key {path} holds {len(seed)} bytes, expected a {SEED_SIZE}-byte Ed25519 seed"
        )
    return create_new_key_pair(seed)
