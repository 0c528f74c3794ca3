"""The peer-to-peer layer of a Foundation Coin node.

Read in this order:

* ``service.py``: the libp2p host (Noise, yamux, Ed25519 identity), the handshake, the
  request/response protocol, peers, bans; the public :class:`P2PService` the daemon runs;
* ``sync.py``: headers-first sync with block locators, parallel block download;
* ``relay.py``: block announcements and transaction batches over gossipsub;
* ``messages.py`` and ``framing.py``: every message's wire form and size cap, and how
  frames travel on a stream;
* ``limits.py``, ``peers.py``, ``identity.py``, ``errors.py``: rate limits, ban scores and
  caches; per-peer state and counters; the key file; exceptions.

specs/p2p.md is the normative description of the protocols.
"""
