"""The ledger every Foundation Coin node agrees on.

How a block travels through this package, in order:

1. **Decode** (``encoding``, ``transaction``, ``block``). Bytes become objects only through
   canonical msgpack: fixed-order arrays, strict shapes, and a re-encoding check, so one
   value has exactly one byte string and one hash. Failures raise ``DecodeError``.
2. **Context-free checks** (``checks``). Everything decidable from the block alone: sizes,
   the coinbase, amounts and running sums, duplicate inputs and transactions, the Merkle
   root over wtxids, the draw's shape and hash, and the producer's signature. Cheap, so garbage dies early.
3. **Header in context** (``contextual.check_header_contextual``). Height, median time
   past, the timewarp bound, the 2-hour future limit (a retryable ``BlockTooNew``), and the
   ASERT target (``difficulty``).
4. **Connect** (``contextual.connect_block``). Spend inputs over a ``CoinsOverlay``: inputs
   exist and are mature, values add up, the coinbase claims at most subsidy + fees, and
   every signature (``sighash``, ``schnorr``) verifies. The result is an overlay of coin
   changes and an ``Undo`` record; nothing is written yet.
5. **Commit** (``chainstate``). One LevelDB ``WriteBatch`` per connected or disconnected
   block: coin changes, undo data, block status and the best-block marker together, so a
   kill at any instant leaves the database at one block or the next, never between.
   ``Chainstate.activate_best_chain`` reorganises to the most-work valid chain.

Policy (``mempool``) sits on top: it reuses the same checks, then adds its own limits
(fee rates, size caps, replacement rules) that a block is free to ignore.

Consensus code here does no I/O, reads no clock, draws no randomness and uses no floats:
storage, time and the network enter as parameters. Every rule raises a ``RuleError``
subclass with a stable code from ``errors.Reject``; ``specs/consensus.md`` says why each
rule exists.
"""
