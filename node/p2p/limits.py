"""Bounds on what a peer can make us do: token buckets, seen caches, misbehaviour scores.

A node must keep serving honest peers while one peer misbehaves, so every way in has a
limit (specs/p2p.md §5):

* **Rates.** Each message type a peer can send us has a :class:`TokenBucket` per peer:
  ``rate`` tokens a second, up to ``burst`` saved. A message that finds the bucket empty is
  dropped unprocessed and adds to the peer's ban score, so a flood costs the flooder its
  connection long before it costs us memory or CPU.
* **Memory.** Caches of what we have seen are :class:`SeenCache` LRUs with a fixed size.
* **Misbehaviour.** :class:`Penalty` lists every offence with its score. A peer's score
  only grows while it is connected; at :data:`BAN_THRESHOLD` the peer is disconnected and
  discouraged (refused) for the configured time. An honest peer never earns a point: we
  punish only what an honest implementation cannot send.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

BAN_THRESHOLD = 100

K = TypeVar("K", bound=Hashable)


class Penalty(Enum):
    """Offences and their scores (specs/p2p.md §5.2). Values are (label, score)."""

    MALFORMED_FRAME = ("malformed-frame", 100)  # not msgpack, not canonical, wrong shape
    OVERSIZE_FRAME = ("oversize-frame", 100)  # length over the type's cap
    UNKNOWN_MESSAGE = ("unknown-message-type", 100)  # a type not allowed on that stream
    INVALID_BLOCK = ("invalid-block", 100)  # a block that breaks a consensus rule
    INVALID_HEADER = ("invalid-header", 100)  # a header failing check_header, or bad linkage
    INVALID_TX = ("invalid-transaction", 100)  # a transaction no honest node would relay
    MALFORMED_GOSSIP = ("malformed-gossip", 100)  # undecodable announcement or tx batch
    UNREQUESTED_BLOCK = ("unrequested-block", 100)  # a reply that does not answer the request
    DISCONNECTED_HEADERS = (
        "headers-do-not-connect",
        20,
    )  # reply to a locator that connects nowhere
    RATE_EXCEEDED = ("rate-exceeded", 10)  # a message over the type's rate limit
    BEFORE_HANDSHAKE = ("before-handshake", 10)  # a request stream before the handshake; adds up
    DUPLICATE_HELLO = ("duplicate-hello", 10)

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def score(self) -> int:
        return self.value[1]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def take(self, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are that many; say whether we could."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False


@dataclass(frozen=True)
class Rate:
    """A per-peer limit: ``rate`` units a second, ``burst`` at once."""

    rate: float
    burst: float

    def bucket(self) -> TokenBucket:
        return TokenBucket(self.rate, self.burst)


class SeenCache(Generic[K]):
    """A set that remembers only its ``size`` most recently added or touched keys."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, key: K) -> bool:
        """Add ``key``; return False if it was already there (and refresh it)."""
        if key in self._items:
            self._items.move_to_end(key)
            return False
        self._items[key] = None
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return True

    def discard(self, key: K) -> None:
        self._items.pop(key, None)
