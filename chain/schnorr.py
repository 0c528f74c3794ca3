"""BIP340 Schnorr signatures over secp256k1, through coincurve (libsecp256k1).

Thin wrappers so the rest of ``chain`` never handles a library exception: an x-only key
that is not on the curve simply fails to verify. coincurve releases the GIL while it
verifies, so batches can be spread over threads (``verify_batch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor

from coincurve import PrivateKey, PublicKeyXOnly


def verify(pubkey: bytes, signature: bytes, message: bytes) -> bool:
    try:
        return bool(PublicKeyXOnly(pubkey).verify(signature, message))
    except (ValueError, TypeError):
        return False


def sign(secret: bytes, message: bytes, aux_rand: bytes = b"\x00" * 32) -> bytes:
    """Sign ``message`` (32 bytes). ``aux_rand`` is BIP340's auxiliary randomness."""
    return bytes(PrivateKey(secret).sign_schnorr(message, aux_rand))


def pubkey_of(secret: bytes) -> bytes:
    """The 32-byte x-only public key of a 32-byte secret."""
    return bytes(PrivateKey(secret).public_key_xonly.format())


def _verify_all(items: Sequence[tuple[bytes, bytes, bytes]]) -> int:
    """Index of the first bad signature, or -1 when all verify."""
    for n, (pubkey, signature, message) in enumerate(items):
        if not verify(pubkey, signature, message):
            return n
    return -1


def verify_batch(
    items: Sequence[tuple[bytes, bytes, bytes]], executor: Executor | None = None, chunks: int = 1
) -> int:
    """Verify ``(pubkey, signature, message)`` triples; index of the first failure or -1.

    With an executor, the list is split into ``chunks`` slices verified in parallel.
    The answer (which index fails first) does not depend on how the work was split.
    """
    if executor is None or chunks <= 1 or len(items) < 64:
        return _verify_all(items)
    size = -(-len(items) // chunks)
    slices = [items[i : i + size] for i in range(0, len(items), size)]
    results = list(executor.map(_verify_all, slices))
    for n, bad in enumerate(results):
        if bad >= 0:
            return n * size + bad
    return -1
