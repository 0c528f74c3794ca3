"""The shapes of the RPC's requests and responses (pydantic models).

They are the API's contract twice over: FastAPI validates request bodies against them
(unknown fields are refused, so a typo in a field name is an error rather than a
silently ignored option) and publishes them in ``/openapi.json``. ``specs/rpc.md``
describes the same shapes in prose.

Conventions: hashes, keys and raw bytes are lower-case hex strings; every amount is an
integer in base units (``amount``) next to its exact decimal rendering in FC
(``amount_fc``, eight decimals) and never a float; heights and times are integers.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from chain.params import NETWORKS
from chain.transaction import MAX_TX_SIZE

MAX_GENERATE = 1_000  # blocks one /generate call may produce (it holds a worker meanwhile)
MAX_BAN_SECONDS = 10 * 365 * 24 * 60 * 60


# -- string formats ---------------------------------------------------------------------
# Defined once: the response types below, the request bodies, and the path parameters of
# ``routes`` (which also enforce them, with their own messages) use these.
HEX64 = r"^[0-9a-f]{64}$"  # a hash, txid or key as the node writes it
HEX64_IN = r"^[0-9a-fA-F]{64}$"  # ... as the node reads it (either case)
HEX128 = r"^[0-9a-f]{128}$"  # a signature
RAW_HEX = r"^([0-9a-f]{2})*$"  # bytes, lowercase hex
RAW_HEX_IN = r"^([0-9a-fA-F]{2})*$"
HEX_NUMBER = r"^[0-9a-f]+$"  # a number in hex (chain work)
MAX_HEIGHT = 2**32 - 1  # a header's height is a uint32
# A block id in a path: a height (1 to 10 ASCII decimal digits, no sign) or a hash.
BLOCK_ID = r"^([0-9]{1,10}|[0-9a-fA-F]{64})$"
HEIGHT_DIGITS = r"^[0-9]{1,10}$"
# bech32m (BIP350) over a witness version 1 (``p``) 32-byte program: 52 data characters
# and a 6-character checksum; the alphabet is bech32's (no 1, b, i, o). wallet/address.py
_HRPS = "|".join(sorted({params.hrp for params in NETWORKS.values()}))
_BECH32 = "02-9ac-hj-np-z"
ADDRESS = rf"^({_HRPS})1p[{_BECH32}]{{58}}$"
# Read in either case (bech32 allows an all-uppercase string); routes enforce it with
# wallet.address, which says what is wrong (400 bad-address).
ADDRESS_IN = rf"^(({_HRPS})1p[{_BECH32}]{{58}}|({_HRPS.upper()})1P[{_BECH32.upper()}]{{58}})$"
ADDRESS_MAX_LENGTH = 90

Hash = Annotated[str, Field(pattern=HEX64, min_length=64, max_length=64)]
Signature = Annotated[str, Field(pattern=HEX128, min_length=128, max_length=128)]
RawHex = Annotated[str, Field(pattern=RAW_HEX)]
Target = Annotated[str, Field(pattern=HEX64, min_length=64, max_length=64)]
HexNumber = Annotated[str, Field(pattern=HEX_NUMBER, min_length=1)]
Address = Annotated[str, Field(pattern=ADDRESS, max_length=ADDRESS_MAX_LENGTH)]
# An address a client sends: documented with its format, but not enforced by the model, so
# that the route's decoder answers with what is wrong (400 bad-address, specs/rpc.md §3).
AddressInput = Annotated[
    str,
    Field(max_length=ADDRESS_MAX_LENGTH),
    WithJsonSchema({"type": "string", "pattern": ADDRESS_IN, "maxLength": ADDRESS_MAX_LENGTH}),
]
Cursor = Annotated[str, Field(pattern=r"^[0-9a-f]{26}$", min_length=26, max_length=26)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ------------------------------------------------------------------------
class SubmitTxRequest(Request):
    hex: str = Field(
        min_length=2,
        max_length=2 * MAX_TX_SIZE,
        pattern=RAW_HEX_IN,
        description="the transaction's canonical encoding, hex",
    )


class GenerateRequest(Request):
    count: int = Field(default=1, ge=1, le=MAX_GENERATE, description="blocks to produce")
    pay_to: AddressInput | None = Field(
        default=None, description="address the coinbases pay; default: the node's own key"
    )


class BanRequest(Request):
    peer_id: str = Field(min_length=1, max_length=128)
    seconds: int = Field(default=24 * 60 * 60, ge=1, le=MAX_BAN_SECONDS)


class UnbanRequest(Request):
    peer_id: str = Field(min_length=1, max_length=128)


class ConnectRequest(Request):
    addr: str = Field(min_length=1, max_length=512, description="/ip4/HOST/tcp/PORT/p2p/ID")


# -- pieces ------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    code: str
    message: str
    rule: str | None = None  # "consensus" or "policy", for a rejected transaction


class ErrorResponse(BaseModel):
    error: ErrorBody


class Work(BaseModel):
    """The draw that won the block (specs/pob.md §2)."""

    worker_key: Hash  # the worker's x-only key
    counter: int
    tokens: list[int]  # the draw's token ids, exactly max_new_tokens of them


class Header(BaseModel):
    version: int
    prev_hash: Hash
    merkle_root: Hash
    benefit_root: Hash
    time: int
    target: Target  # 64 hex digits, big-endian
    height: int
    work: Work
    producer_sig: Signature


class TxInput(BaseModel):
    txid: Hash
    vout: int
    signature: Signature


class TxOutput(BaseModel):
    n: int
    amount: int
    amount_fc: str
    pubkey: Hash
    address: Address


class TxView(BaseModel):
    txid: Hash
    wtxid: Hash
    version: int
    kind: str  # "transfer", "coinbase", or "kind-N" for kinds not active yet
    size: int
    inputs: list[TxInput]
    outputs: list[TxOutput]
    payload: list[Any]  # bytes as hex
    output_total: int
    output_total_fc: str


# -- responses -----------------------------------------------------------------------------
class Health(BaseModel):
    status: str


class MempoolSummary(BaseModel):
    count: int
    bytes: int


class NodeInfo(BaseModel):
    network: str
    version: str
    peer_id: str | None
    listen_addrs: list[str]
    height: int
    tip: Hash
    mempool: MempoolSummary
    peers: int | None
    index_height: int
    uptime_seconds: int


class PeerList(BaseModel):
    peers: list[dict[str, Any]]


class BannedPeer(BaseModel):
    peer_id: str
    until: int


class BannedList(BaseModel):
    banned: list[BannedPeer]


class BanResult(BaseModel):
    peer_id: str
    seconds: int


class UnbanResult(BaseModel):
    peer_id: str
    unbanned: bool  # false when the peer was not banned


class ConnectResult(BaseModel):
    addr: str


class ChainTip(BaseModel):
    height: int
    hash: Hash
    time: int
    median_time_past: int
    target: Target
    chain_work: HexNumber


class BlockView(BaseModel):
    hash: Hash
    height: int
    in_active_chain: bool
    confirmations: int  # -1 when the block is not on the active chain
    next_hash: Hash | None
    chain_work: HexNumber
    size: int
    header: Header
    transactions: list[TxView]
    hex: RawHex | None = None


class TxInfo(TxView):
    in_mempool: bool
    block_hash: Hash | None
    block_height: int | None
    position: int | None
    confirmations: int  # 0 in the mempool
    fee: int | None  # known for mempool transactions
    fee_fc: str | None
    hex: RawHex | None = None


class SubmitResult(BaseModel):
    txid: Hash
    orphan: bool  # parents missing: kept aside until they arrive
    missing_parents: list[Hash]
    accepted: list[Hash]  # this transaction and any orphans it resolved
    replaced: list[Hash]  # evicted by this replacement


class MempoolView(BaseModel):
    count: int
    bytes: int
    orphans: int
    min_fee_rate: int  # units per 1,000 bytes a new transaction must pay now
    txids: list[Hash]  # arrival order
    truncated: bool


class AddressCoinView(BaseModel):
    txid: Hash
    vout: int
    amount: int
    amount_fc: str
    height: int
    confirmations: int
    coinbase: bool
    mature: bool
    spent_in_mempool: Hash | None  # txid of a pooled transaction spending it


class AddressCoins(BaseModel):
    address: Address
    coins: list[AddressCoinView]
    total: int
    total_fc: str
    truncated: bool


class UnconfirmedOutput(BaseModel):
    txid: Hash
    vout: int
    amount: int
    amount_fc: str


class UnconfirmedSpend(BaseModel):
    txid: Hash  # the pooled transaction spending the coin
    prev_txid: Hash
    prev_vout: int


class AddressUnconfirmed(BaseModel):
    address: Address
    received: list[UnconfirmedOutput]  # outputs of pooled transactions paying the address
    spent: list[UnconfirmedSpend]  # coins of the address (confirmed or pooled) spent in the pool


class FeeEstimate(BaseModel):
    fee_rate: int  # base units per 1,000 bytes
    min_fee_rate: int  # the floor a transaction must pay to enter this mempool now
    mempool_bytes: int
    basis: str  # "floor" (the pool fits in one block) or "next-block cutoff"


class HistoryEntryView(BaseModel):
    height: int
    block_hash: Hash | None
    txid: Hash
    direction: str  # "received" or "spent"
    index: int  # output index received, or input index spending
    amount: int
    amount_fc: str


class AddressHistory(BaseModel):
    address: Address
    entries: list[HistoryEntryView]
    next_cursor: Cursor | None


class GenerateResult(BaseModel):
    hashes: list[Hash]
    height: int
    pay_to: Address


class FoundBlockView(BaseModel):
    height: int
    hash: Hash


class MiningInfo(BaseModel):
    mining: bool  # false when the node runs without --mine (the counters are then 0)
    device: str | None  # "cpu" or "cuda"; null when not mining
    threads: int  # torch threads the draws use (process-wide)
    batch: int  # draws computed together
    draws: int  # since the miner started
    draws_per_second: float  # over the last minute
    blocks_found: int  # accepted blocks this miner won since it started
    found: list[FoundBlockView]  # the latest found blocks, oldest first (at most 100)
    started_at: int | None  # unix time the miner started
    expected_seconds_per_block: float | None  # network_draws_per_block / draws_per_second
    target: Target  # 64 hex digits: the target of the block being drawn for
    height: int  # the height of the block being drawn for (the tip's child)
    network_draws_per_block: int  # expected draws to win a block at this target
