"""Errors of the p2p service that callers (the RPC, ``fc``, tests) may catch."""

from __future__ import annotations


class P2PError(Exception):
    """A connect or request failed; the message says why, in one line."""


class PeerUnavailable(P2PError):
    """The peer went away, stalled, or broke a rule during a request."""
