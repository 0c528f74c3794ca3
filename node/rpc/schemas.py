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

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chain.transaction import MAX_TX_SIZE

MAX_GENERATE = 1_000  # blocks one /generate call may produce (it holds a worker meanwhile)
MAX_BAN_SECONDS = 10 * 365 * 24 * 60 * 60


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ------------------------------------------------------------------------
class SubmitTxRequest(Request):
    hex: str = Field(
        min_length=2,
        max_length=2 * MAX_TX_SIZE,
        description="the transaction's canonical encoding, hex",
    )


class GenerateRequest(Request):
    count: int = Field(default=1, ge=1, le=MAX_GENERATE, description="blocks to produce")
    pay_to: str | None = Field(
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

    worker_key: str  # 64 hex digits
    counter: int
    tokens: list[int]  # the draw's token ids, exactly max_new_tokens of them


class Header(BaseModel):
    version: int
    prev_hash: str
    merkle_root: str
    benefit_root: str
    time: int
    target: str  # 64 hex digits, big-endian
    height: int
    work: Work
    producer_sig: str


class TxInput(BaseModel):
    txid: str
    vout: int
    signature: str


class TxOutput(BaseModel):
    n: int
    amount: int
    amount_fc: str
    pubkey: str
    address: str


class TxView(BaseModel):
    txid: str
    wtxid: str
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
    tip: str
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
    hash: str
    time: int
    median_time_past: int
    target: str
    chain_work: str  # hex


class BlockView(BaseModel):
    hash: str
    height: int
    in_active_chain: bool
    confirmations: int  # -1 when the block is not on the active chain
    next_hash: str | None
    chain_work: str
    size: int
    header: Header
    transactions: list[TxView]
    hex: str | None = None


class TxInfo(TxView):
    in_mempool: bool
    block_hash: str | None
    block_height: int | None
    position: int | None
    confirmations: int  # 0 in the mempool
    fee: int | None  # known for mempool transactions
    fee_fc: str | None
    hex: str | None = None


class SubmitResult(BaseModel):
    txid: str
    orphan: bool  # parents missing: kept aside until they arrive
    missing_parents: list[str]
    accepted: list[str]  # this transaction and any orphans it resolved
    replaced: list[str]  # evicted by this replacement


class MempoolView(BaseModel):
    count: int
    bytes: int
    orphans: int
    min_fee_rate: int  # units per 1,000 bytes a new transaction must pay now
    txids: list[str]  # arrival order
    truncated: bool


class AddressCoinView(BaseModel):
    txid: str
    vout: int
    amount: int
    amount_fc: str
    height: int
    confirmations: int
    coinbase: bool
    mature: bool
    spent_in_mempool: str | None  # txid of a pooled transaction spending it


class AddressCoins(BaseModel):
    address: str
    coins: list[AddressCoinView]
    total: int
    total_fc: str
    truncated: bool


class UnconfirmedOutput(BaseModel):
    txid: str
    vout: int
    amount: int
    amount_fc: str


class UnconfirmedSpend(BaseModel):
    txid: str  # the pooled transaction spending the coin
    prev_txid: str
    prev_vout: int


class AddressUnconfirmed(BaseModel):
    address: str
    received: list[UnconfirmedOutput]  # outputs of pooled transactions paying the address
    spent: list[UnconfirmedSpend]  # coins of the address (confirmed or pooled) spent in the pool


class FeeEstimate(BaseModel):
    fee_rate: int  # base units per 1,000 bytes
    min_fee_rate: int  # the floor a transaction must pay to enter this mempool now
    mempool_bytes: int
    basis: str  # "floor" (the pool fits in one block) or "next-block cutoff"


class HistoryEntryView(BaseModel):
    height: int
    block_hash: str | None
    txid: str
    direction: str  # "received" or "spent"
    index: int  # output index received, or input index spending
    amount: int
    amount_fc: str


class AddressHistory(BaseModel):
    address: str
    entries: list[HistoryEntryView]
    next_cursor: str | None


class GenerateResult(BaseModel):
    hashes: list[str]
    height: int
    pay_to: str


class FoundBlockView(BaseModel):
    height: int
    hash: str


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
    target: str  # 64 hex digits: the target of the block being drawn for
    height: int  # the height of the block being drawn for (the tip's child)
    network_draws_per_block: int  # expected draws to win a block at this target
