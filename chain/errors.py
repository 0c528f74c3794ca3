"""Typed rule errors with stable reject codes.

Every consensus rule raises :class:`RuleError` (through one of its subclasses) with a
code from :class:`Reject`. Codes are part of the protocol: peers, tests and logs key on
them, so a code is never renamed or reused. ``specs/consensus.md`` has one line per code
saying why the rule exists.

Three kinds of failure must never be confused (Bitcoin Core learned this the hard way):

* ``InvalidTransaction`` / ``InvalidBlock``: the data breaks a rule and always will.
  A block that fails is marked invalid forever, together with its descendants.
* ``BlockTooNew``: the block's time is too far ahead of *our* clock. That is a
  judgement about now, not about the block; the caller may retry later.
* ``MissingInputs``: a transaction spends coins we do not know (yet). In a block this is
  fatal (``bad-txns-inputs-missingorspent``); in the mempool it makes an orphan.
"""

from __future__ import annotations

from enum import StrEnum


class Reject(StrEnum):
    """Stable reject codes. Values never change once released."""

    # Decoding (specs/encoding.md)
    DECODE_MALFORMED = "decode-malformed"
    DECODE_NONCANONICAL = "decode-noncanonical"

    # Transaction, context-free (specs/consensus.md §2)
    TX_OVERSIZE = "bad-txns-oversize"
    TX_VERSION = "bad-txns-version"
    TX_KIND_UNKNOWN = "bad-txns-kind-unknown"
    TX_VIN_EMPTY = "bad-txns-vin-empty"
    TX_VOUT_EMPTY = "bad-txns-vout-empty"
    TX_VOUT_NEGATIVE = "bad-txns-vout-negative"
    TX_VOUT_TOOLARGE = "bad-txns-vout-toolarge"
    TX_TXOUTTOTAL_TOOLARGE = "bad-txns-txouttotal-toolarge"
    TX_INPUTS_DUPLICATE = "bad-txns-inputs-duplicate"
    TX_PAYLOAD = "bad-txns-payload"
    CB_HAS_INPUTS = "bad-cb-has-inputs"
    CB_PAYLOAD = "bad-cb-payload"

    # Transaction, contextual (specs/consensus.md §3)
    TX_INPUTS_MISSING = "bad-txns-inputs-missingorspent"
    TX_PREMATURE_SPEND = "bad-txns-premature-spend-of-coinbase"
    TX_INPUT_VALUES_OUTOFRANGE = "bad-txns-inputvalues-outofrange"
    TX_IN_BELOWOUT = "bad-txns-in-belowout"
    TX_FEE_OUTOFRANGE = "bad-txns-fee-outofrange"
    TX_SIG_INVALID = "bad-txns-sig-invalid"

    # Block, context-free (specs/consensus.md §4)
    BLK_OVERSIZE = "bad-blk-length"
    BLK_VERSION = "bad-blk-version"
    BLK_NO_TX = "bad-blk-no-txns"
    CB_MISSING = "bad-cb-missing"
    CB_MULTIPLE = "bad-cb-multiple"
    TX_DUPLICATE = "bad-txns-duplicate"
    MERKLE_ROOT = "bad-txnmrklroot"
    BENEFIT_ROOT = "bad-benefitroot"
    PRODUCER_SIG = "bad-producer-sig"
    TARGET_RANGE = "bad-target-range"
    BAD_WORK_SHAPE = "bad-work-shape"
    BAD_WORK_POW = "bad-work-pow"

    # Block, contextual (specs/consensus.md §5)
    PREV_UNKNOWN = "prev-blk-not-found"
    PREV_INVALID = "bad-prevblk"
    BLK_KNOWN_INVALID = "duplicate-invalid"
    HEIGHT = "bad-blk-height"
    CB_HEIGHT = "bad-cb-height"
    TIME_TOO_OLD = "time-too-old"
    TIME_TOO_NEW = "time-too-new"
    TIME_TIMEWARP = "time-timewarp-attack"
    TARGET_WRONG = "bad-diffbits"
    CB_AMOUNT = "bad-cb-amount"
    BAD_WORK = "bad-work"

    # Lottery jobs (specs/consensus.md §3.7, specs/pob.md §4)
    JOB_SPEC = "bad-job-spec"
    JOB_LOTTERY = "bad-job-lottery"
    JOB_PROMPTS = "bad-job-prompts"
    JOB_STEWARD = "bad-job-steward"
    JOB_DUPLICATE = "bad-job-duplicate"

    # ---- Policy (not consensus): specs/consensus.md §8.2, chain/policy.py ----------------
    # Raised only by the mempool and relay, always as ``PolicyError``. A block is never
    # judged by these, and a peer is never punished for a transaction that breaks them.
    POLICY_COINBASE = "coinbase"
    POLICY_TX_SIZE = "tx-size"
    POLICY_DUST = "dust"
    POLICY_ALREADY_IN_MEMPOOL = "txn-already-in-mempool"
    POLICY_SAME_TXID_IN_MEMPOOL = "txn-same-nonwitness-data-in-mempool"
    POLICY_ALREADY_KNOWN = "txn-already-known"
    POLICY_MIN_RELAY_FEE = "min-relay-fee-not-met"
    POLICY_MEMPOOL_MIN_FEE = "mempool-min-fee-not-met"
    POLICY_MEMPOOL_FULL = "mempool-full"
    POLICY_CHAIN_TOO_LONG = "too-long-mempool-chain"
    POLICY_RBF_SPENDS_CONFLICT = "replacement-spends-conflicting-tx"
    POLICY_RBF_TOO_MANY = "too-many-replacements"
    POLICY_RBF_INSUFFICIENT_FEERATE = "insufficient-feerate"
    POLICY_RBF_INSUFFICIENT_FEE = "insufficient-fee"
    POLICY_ORPHAN_TOO_LARGE = "orphan-too-large"
    POLICY_JOB_DUPLICATE = "txn-job-duplicate"


class RuleError(Exception):
    """A rule was broken. ``code`` is stable; ``detail`` is for humans and may change."""

    def __init__(self, code: Reject, detail: str = "") -> None:
        super().__init__(f"{code.value}: {detail}" if detail else code.value)
        self.code = code
        self.detail = detail


class DecodeError(RuleError):
    """Bytes that are not a canonical encoding of the expected structure."""


class InvalidTransaction(RuleError):
    """The transaction breaks a consensus rule."""


class MissingInputs(InvalidTransaction):
    """The transaction spends an outpoint the view does not have (spent or unknown)."""


class InvalidBlock(RuleError):
    """The block breaks a consensus rule and is invalid forever."""


class BlockTooNew(RuleError):
    """The block's time is too far beyond our clock: not invalid, try again later."""


class UnknownParent(RuleError):
    """The block's parent is not in our block index: fetch it first, then retry."""
