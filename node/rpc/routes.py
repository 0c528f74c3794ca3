"""The endpoints. Each handler reads the node's parts from the app's :class:`RpcContext`.

Handlers are ``async`` and run on the node's trio loop, next to the p2p service. Reads
that may take a while (a block from LevelDB and its decoding, index scans) go to a
worker thread; small reads (the tip, a mempool entry) happen inline. Changes to the
ledger go through :class:`node.core.NodeCore` only (``submit_transaction``,
``generate``), which serialises them behind its lock. ``/mining/info`` reads the miner's
counters (``node.mining``) when the node mines.

Queries that use the address and transaction index first bring it up to the
chainstate's tip (``ChainIndexes.catch_up``, a no-op when it already is), so a client
that submits a transaction and generates a block sees it at once.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import time
from typing import Annotated

import trio
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BeforeValidator

from chain.amounts import format_amount
from chain.block import MAX_BLOCK_SIZE, Block, decode_block
from chain.errors import RuleError
from chain.transaction import HASH_SIZE, Transaction, decode_transaction
from node.indexes import AddressCoin, HistoryPage
from node.mining import idle_info
from node.rpc import errors, schemas
from node.rpc.context import PeerControl, PeerDialer, RpcContext
from node.rpc.errors import ApiError
from node.rpc.metrics import CONTENT_TYPE, render
from node.rpc.views import amount_fields, header_view, jsonable, target_hex, tx_fields, tx_view
from wallet.address import AddressError, decode_address, encode_address

CONNECT_TIMEOUT = 20  # seconds a /peers/connect may take
HISTORY_CURSOR_SIZE = 13  # height, position, direction, index: see node.indexes

try:
    VERSION = importlib.metadata.version("foundation-coin")
except importlib.metadata.PackageNotFoundError:  # running from a bare checkout
    VERSION = "unknown"

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": schemas.ErrorResponse} for status in (400, 401, 404, 413, 500)
}
router = APIRouter(responses=ERROR_RESPONSES)


def _ctx(request: Request) -> RpcContext:
    ctx: RpcContext = request.app.state.ctx
    return ctx


Ctx = Annotated[RpcContext, Depends(_ctx)]


# -- parsing what clients send ---------------------------------------------------------
# By regular expression over ASCII classes only: int() and bytes.fromhex() also take
# Unicode digits, '_' separators, signs and whitespace, none of which is an id.
_HASH_RE = re.compile(schemas.HEX64_IN[1:-1])
_HEIGHT_RE = re.compile(schemas.HEIGHT_DIGITS[1:-1])
_DECIMAL_RE = re.compile("[0-9]+")
_CURSOR_RE = re.compile(f"[0-9a-fA-F]{{{2 * HISTORY_CURSOR_SIZE}}}")

# Path parameters, documented with the formats the handlers enforce (they refuse anything
# else themselves, with a message saying what was expected).
BlockId = Annotated[
    str,
    Path(
        description="a height (ASCII decimal digits) or a block hash (64 hex digits)",
        json_schema_extra={"pattern": schemas.BLOCK_ID, "minLength": 1, "maxLength": 64},
    ),
]
TxId = Annotated[
    str,
    Path(
        description="64 hex digits",
        json_schema_extra={"pattern": schemas.HEX64_IN, "minLength": 64, "maxLength": 64},
    ),
]
AddressParam = Annotated[
    str,
    Path(
        description="a bech32m address of this node's network",
        json_schema_extra={
            "pattern": schemas.ADDRESS_IN,
            "maxLength": schemas.ADDRESS_MAX_LENGTH,
        },
    ),
]


def _ascii_decimal(value: object) -> object:
    """Refuse a query number that is not plain ASCII digits before pydantic's int()."""
    if isinstance(value, str) and (len(value) > 10 or _DECIMAL_RE.fullmatch(value) is None):
        raise ValueError("must be 1 to 10 ASCII decimal digits")
    return value


AsciiDecimal = BeforeValidator(_ascii_decimal)


def parse_hash(text: str, what: str) -> bytes:
    """64 hex digits (either case), nothing around them."""
    if _HASH_RE.fullmatch(text) is None:
        raise ApiError(
            errors.BAD_REQUEST,
            f"{what} must be {HASH_SIZE} bytes as 64 hex digits, got {text[:80]!r}",
        )
    return bytes.fromhex(text)


def parse_height(text: str) -> int | None:
    """A height written as 1 to 10 ASCII decimal digits, at most a uint32; else None."""
    if _HEIGHT_RE.fullmatch(text) is None:
        return None
    height = int(text)
    return height if height <= schemas.MAX_HEIGHT else None


def parse_address(ctx: RpcContext, text: str) -> bytes:
    try:
        return decode_address(text, ctx.params)
    except AddressError as exc:
        raise ApiError(errors.BAD_ADDRESS, str(exc)) from None


def check_peer_address(addr: str) -> None:
    """Refuse anything but ``/ip4|ip6|dns/HOST/tcp/PORT/p2p/<peer id>`` as bad input."""
    # Imported here: libp2p is heavy, and only a node with p2p ever dials.
    import multiaddr  # type: ignore[import-untyped]
    from libp2p.peer.peerinfo import info_from_p2p_addr

    try:
        info_from_p2p_addr(multiaddr.Multiaddr(addr))
    except Exception as exc:  # the parsers raise several unrelated types
        raise ApiError(
            errors.BAD_REQUEST,
            f"addr: {addr!r} is not a peer address like /ip4/127.0.0.1/tcp/27333/p2p/<peer id> ({exc})",
        ) from None


def need_p2p(ctx: RpcContext) -> PeerControl:
    if ctx.peers is None:
        raise ApiError(errors.P2P_DISABLED, "this node runs without a p2p service")
    return ctx.peers


# -- node ---------------------------------------------------------------------------------
@router.get("/health", response_model=schemas.Health, tags=["node"])
async def health() -> schemas.Health:
    """Liveness; the only endpoint that needs no token."""
    return schemas.Health(status="ok")


@router.get("/node/info", response_model=schemas.NodeInfo, tags=["node"])
async def node_info(ctx: Ctx) -> schemas.NodeInfo:
    tip = ctx.core.chainstate.tip
    pool = ctx.core.mempool
    peers = ctx.peers
    return schemas.NodeInfo(
        network=ctx.params.name,
        version=VERSION,
        peer_id=None if peers is None else str(peers.peer_id),
        listen_addrs=[] if peers is None else [str(a) for a in peers.listen_addrs],
        height=tip.height,
        tip=tip.hash.hex(),
        mempool=schemas.MempoolSummary(count=len(pool), bytes=pool.total_bytes),
        peers=None if peers is None else len(peers.peers()),
        index_height=ctx.indexes.height,
        uptime_seconds=int(time.time() - ctx.started_at),
    )


@router.get("/peers", response_model=schemas.PeerList, tags=["peers"])
async def list_peers(ctx: Ctx) -> schemas.PeerList:
    """Connected peers; empty when the node runs without p2p."""
    if ctx.peers is None:
        return schemas.PeerList(peers=[])
    return schemas.PeerList(peers=[jsonable(peer) for peer in ctx.peers.peers()])


@router.get("/peers/banned", response_model=schemas.BannedList, tags=["peers"])
async def list_banned(ctx: Ctx) -> schemas.BannedList:
    banned = need_p2p(ctx).banned()
    return schemas.BannedList(
        banned=[schemas.BannedPeer(peer_id=p, until=u) for p, u in sorted(banned.items())]
    )


@router.post("/peers/ban", response_model=schemas.BanResult, tags=["peers"])
async def ban_peer(ctx: Ctx, body: schemas.BanRequest) -> schemas.BanResult:
    """Disconnect a peer and refuse it for ``seconds``."""
    need_p2p(ctx).ban(body.peer_id, body.seconds)
    return schemas.BanResult(peer_id=body.peer_id, seconds=body.seconds)


@router.post("/peers/unban", response_model=schemas.UnbanResult, tags=["peers"])
async def unban_peer(ctx: Ctx, body: schemas.UnbanRequest) -> schemas.UnbanResult:
    unbanned = need_p2p(ctx).unban(body.peer_id)
    return schemas.UnbanResult(peer_id=body.peer_id, unbanned=unbanned)


@router.post("/peers/connect", response_model=schemas.ConnectResult, tags=["peers"])
async def connect_peer(ctx: Ctx, body: schemas.ConnectRequest) -> schemas.ConnectResult:
    """Dial a peer at a multiaddr ending in ``/p2p/<peer id>``."""
    peers = need_p2p(ctx)
    if not isinstance(peers, PeerDialer):
        raise ApiError(errors.NOT_SUPPORTED, "this node's p2p service cannot dial on request")
    check_peer_address(body.addr)
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            await peers.connect(body.addr)
    except trio.TooSlowError:
        raise ApiError(
            errors.CONNECT_FAILED, f"dialling {body.addr} took over {CONNECT_TIMEOUT} s"
        ) from None
    except Exception as exc:  # whatever the network says; the node itself is fine
        raise ApiError(errors.CONNECT_FAILED, f"cannot dial {body.addr}: {exc}") from None
    return schemas.ConnectResult(addr=body.addr)


# -- chain -------------------------------------------------------------------------------
@router.get("/chain/tip", response_model=schemas.ChainTip, tags=["chain"])
async def chain_tip(ctx: Ctx) -> schemas.ChainTip:
    chain = ctx.core.chainstate
    tip = chain.tip
    info = chain.parent_info(tip.hash)
    return schemas.ChainTip(
        height=tip.height,
        hash=tip.hash.hex(),
        time=tip.header.time,
        median_time_past=info.median_time_past,
        target=target_hex(tip.header.target),
        chain_work=format(tip.chain_work, "x"),
    )


def resolve_block(ctx: RpcContext, block_id: str) -> bytes:
    """A block hash from a height (ASCII decimal) or a hash (64 hex digits)."""
    chain = ctx.core.chainstate
    height = parse_height(block_id)
    if height is not None:
        found = chain.block_hash_at(height)
        if found is None:
            raise ApiError(
                errors.NOT_FOUND, f"no block at height {height} (the tip is {chain.height})"
            )
        return found
    if _HASH_RE.fullmatch(block_id) is None:
        raise ApiError(
            errors.BAD_REQUEST,
            "block id must be a height (1 to 10 ASCII decimal digits, at most "
            f"{schemas.MAX_HEIGHT}) or a block hash (64 hex digits), got {block_id[:80]!r}",
        )
    block_hash = bytes.fromhex(block_id)
    if block_hash not in chain.index:
        raise ApiError(errors.NOT_FOUND, f"no block with hash {block_id}")
    return block_hash


def _load_block(ctx: RpcContext, block_hash: bytes) -> Block:
    data = ctx.core.chainstate.get_block_bytes(block_hash)
    if data is None:
        raise ApiError(errors.NOT_FOUND, f"block {block_hash.hex()} has no stored data")
    return decode_block(data)


def _block_view(ctx: RpcContext, block_hash: bytes, raw: bool) -> schemas.BlockView:
    chain = ctx.core.chainstate
    block = _load_block(ctx, block_hash)
    entry = chain.index[block_hash]
    active = chain.is_active(block_hash)
    next_hash = chain.block_hash_at(entry.height + 1) if active else None
    return schemas.BlockView(
        hash=block_hash.hex(),
        height=entry.height,
        in_active_chain=active,
        confirmations=chain.height - entry.height + 1 if active else -1,
        next_hash=None if next_hash is None else next_hash.hex(),
        chain_work=format(entry.chain_work, "x"),
        size=block.size,
        header=header_view(block.header),
        transactions=[tx_view(tx, ctx.params) for tx in block.transactions],
        hex=block.encoded.hex() if raw else None,
    )


@router.get(
    "/chain/block/{block_id}",
    response_model=schemas.BlockView,
    response_model_exclude_none=False,
    tags=["chain"],
)
async def chain_block(
    ctx: Ctx,
    block_id: BlockId,
    raw: Annotated[bool, Query(description="add the block's encoding as hex")] = False,
) -> schemas.BlockView:
    """A block by height (on the active chain) or by hash (any stored block)."""
    block_hash = resolve_block(ctx, block_id)
    return await trio.to_thread.run_sync(_block_view, ctx, block_hash, raw)


# -- transactions ----------------------------------------------------------------------------
def _confirmed_tx(ctx: RpcContext, txid: bytes, raw: bool) -> schemas.TxInfo:
    chain = ctx.core.chainstate
    location = ctx.indexes.tx_location(txid)
    if location is None or not chain.is_active(location.block_hash):
        raise ApiError(errors.NOT_FOUND, f"no transaction {txid.hex()} in the mempool or the chain")
    block = _load_block(ctx, location.block_hash)
    tx = block.transactions[location.position]
    return schemas.TxInfo(
        **tx_fields(tx, ctx.params),
        in_mempool=False,
        block_hash=location.block_hash.hex(),
        block_height=block.header.height,
        position=location.position,
        confirmations=chain.height - block.header.height + 1,
        **amount_fields("fee", None),
        hex=tx.encoded.hex() if raw else None,
    )


def _pooled_tx(ctx: RpcContext, tx: Transaction, fee: int, raw: bool) -> schemas.TxInfo:
    return schemas.TxInfo(
        **tx_fields(tx, ctx.params),
        in_mempool=True,
        block_hash=None,
        block_height=None,
        position=None,
        confirmations=0,
        **amount_fields("fee", fee),
        hex=tx.encoded.hex() if raw else None,
    )


@router.get("/tx/{txid}", response_model=schemas.TxInfo, tags=["transactions"])
async def get_tx(
    ctx: Ctx,
    txid: TxId,
    raw: Annotated[bool, Query(description="add the transaction's encoding as hex")] = False,
) -> schemas.TxInfo:
    """A transaction from the mempool, or from the active chain through the tx index."""
    wanted = parse_hash(txid, "txid")
    entry = ctx.core.mempool.get(wanted)
    if entry is not None:
        return _pooled_tx(ctx, entry.tx, entry.fee, raw)
    await ctx.indexes.catch_up()
    return await trio.to_thread.run_sync(_confirmed_tx, ctx, wanted, raw)


@router.post(
    "/tx",
    response_model=schemas.SubmitResult,
    tags=["transactions"],
    responses={422: {"model": schemas.ErrorResponse}},
)
async def submit_tx(ctx: Ctx, body: schemas.SubmitTxRequest) -> schemas.SubmitResult:
    """Offer a signed transaction to the mempool (and so to the network)."""
    data = bytes.fromhex(body.hex)  # the model admits only pairs of hex digits
    try:
        tx = decode_transaction(data)
        result = await ctx.core.submit_transaction(tx)
    except RuleError as exc:
        raise errors.rejected(exc) from None
    return schemas.SubmitResult(
        txid=result.txid.hex(),
        orphan=result.orphan,
        missing_parents=[t.hex() for t in result.missing_parents],
        accepted=[t.txid.hex() for t in result.accepted],
        replaced=[t.txid.hex() for t in result.replaced],
    )


@router.get("/mempool", response_model=schemas.MempoolView, tags=["transactions"])
async def mempool(
    ctx: Ctx,
    limit: Annotated[
        int, AsciiDecimal, Query(ge=0, le=100_000, description="most txids to list")
    ] = 10_000,
) -> schemas.MempoolView:
    """Size of the pool and its transaction ids in arrival order."""
    pool = ctx.core.mempool
    entries = pool.entries()
    return schemas.MempoolView(
        count=len(entries),
        bytes=pool.total_bytes,
        orphans=len(pool.orphans),
        min_fee_rate=max(pool.config.min_relay_fee, pool.min_fee(ctx.core.now())),
        txids=[e.txid.hex() for e in entries[:limit]],
        truncated=len(entries) > limit,
    )


# -- addresses -------------------------------------------------------------------------------
@router.get("/address/{address}/coins", response_model=schemas.AddressCoins, tags=["addresses"])
async def address_coins(
    ctx: Ctx,
    address: AddressParam,
    limit: Annotated[int, AsciiDecimal, Query(ge=1, le=10_000)] = 1_000,
) -> schemas.AddressCoins:
    """Confirmed unspent coins of an address, with whether a pooled transaction spends them."""
    pubkey = parse_address(ctx, address)
    await ctx.indexes.catch_up()
    coins, more = await trio.to_thread.run_sync(ctx.indexes.coins, pubkey, limit)
    tip_height = ctx.core.chainstate.height
    maturity = ctx.params.coinbase_maturity
    pool = ctx.core.mempool

    def view(coin: AddressCoin) -> schemas.AddressCoinView:
        spender = pool.spender(coin.outpoint)
        return schemas.AddressCoinView(
            txid=coin.outpoint.txid.hex(),
            vout=coin.outpoint.vout,
            **amount_fields("amount", coin.amount),
            height=coin.height,
            confirmations=tip_height - coin.height + 1,
            coinbase=coin.coinbase,
            # Spendable in the next block (height tip + 1), as consensus counts it.
            mature=not coin.coinbase or tip_height + 1 - coin.height >= maturity,
            spent_in_mempool=None if spender is None else spender.hex(),
        )

    total = sum(c.amount for c in coins)
    return schemas.AddressCoins(
        address=encode_address(pubkey, ctx.params),
        coins=[view(c) for c in coins],
        total=total,
        total_fc=format_amount(total),
        truncated=more,
    )


@router.get("/address/{address}/history", response_model=schemas.AddressHistory, tags=["addresses"])
async def address_history(
    ctx: Ctx,
    address: AddressParam,
    limit: Annotated[int, AsciiDecimal, Query(ge=1, le=1_000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
) -> schemas.AddressHistory:
    """Confirmed outputs received and spent by an address, newest first, in pages."""
    pubkey = parse_address(ctx, address)
    after: bytes | None = None
    if cursor is not None:
        if _CURSOR_RE.fullmatch(cursor) is None:
            raise ApiError(errors.BAD_REQUEST, "cursor: pass back a next_cursor unchanged")
        after = bytes.fromhex(cursor)
    await ctx.indexes.catch_up()
    page: HistoryPage = await trio.to_thread.run_sync(
        functools.partial(ctx.indexes.history, pubkey, limit, after)
    )
    chain = ctx.core.chainstate

    def block_at(height: int) -> str | None:
        found = chain.block_hash_at(height)
        return None if found is None else found.hex()

    return schemas.AddressHistory(
        address=encode_address(pubkey, ctx.params),
        entries=[
            schemas.HistoryEntryView(
                height=e.height,
                block_hash=block_at(e.height),
                txid=e.txid.hex(),
                direction=e.direction,
                index=e.index,
                **amount_fields("amount", e.amount),
            )
            for e in page.entries
        ],
        next_cursor=None if page.cursor is None else page.cursor.hex(),
    )


@router.get(
    "/address/{address}/unconfirmed",
    response_model=schemas.AddressUnconfirmed,
    tags=["addresses"],
)
async def address_unconfirmed(ctx: Ctx, address: AddressParam) -> schemas.AddressUnconfirmed:
    """What the mempool does to an address: pooled outputs paying it, and its coins that
    pooled transactions spend. A scan of the pool (bounded by its size cap)."""
    pubkey = parse_address(ctx, address)
    pool = ctx.core.mempool
    received: list[schemas.UnconfirmedOutput] = []
    spent: list[schemas.UnconfirmedSpend] = []
    ours: set[tuple[bytes, int]] = set()
    for entry in pool.entries():
        for vout, out in enumerate(entry.tx.outputs):
            if out.pubkey == pubkey:
                ours.add((entry.txid, vout))
                received.append(
                    schemas.UnconfirmedOutput(
                        txid=entry.txid.hex(), vout=vout, **amount_fields("amount", out.amount)
                    )
                )
    chain = ctx.core.chainstate
    for entry in pool.entries():
        for txin in entry.tx.inputs:
            prev = txin.prevout
            coin = None if (prev.txid, prev.vout) in ours else chain.get_coin(prev)
            if (prev.txid, prev.vout) in ours or (coin is not None and coin.pubkey == pubkey):
                spent.append(
                    schemas.UnconfirmedSpend(
                        txid=entry.txid.hex(), prev_txid=prev.txid.hex(), prev_vout=prev.vout
                    )
                )
    return schemas.AddressUnconfirmed(
        address=encode_address(pubkey, ctx.params), received=received, spent=spent
    )


@router.get("/fees/estimate", response_model=schemas.FeeEstimate, tags=["transactions"])
async def fee_estimate(ctx: Ctx) -> schemas.FeeEstimate:
    """A fee rate (units per 1,000 bytes) for the next block, read off the mempool: the
    pool's floor while everything pooled fits in one block, else just above the fee rate
    at which a block's worth of the best-paying transactions is cut off."""
    pool = ctx.core.mempool
    floor = max(pool.config.min_relay_fee, pool.min_fee(ctx.core.now()))
    rate, basis = floor, "floor"
    if pool.total_bytes > MAX_BLOCK_SIZE:
        room = MAX_BLOCK_SIZE
        for entry in sorted(pool.entries(), key=lambda e: e.fee_rate, reverse=True):
            room -= entry.size
            if room < 0:
                cutoff = -(-entry.fee * 1000 // entry.size)
                rate, basis = max(floor, cutoff + 1), "next-block cutoff"
                break
    return schemas.FeeEstimate(
        fee_rate=rate, min_fee_rate=floor, mempool_bytes=pool.total_bytes, basis=basis
    )


# -- regtest ----------------------------------------------------------------------------------
@router.post("/generate", response_model=schemas.GenerateResult, tags=["regtest"])
async def generate(
    ctx: Ctx, request: Request, body: schemas.GenerateRequest
) -> schemas.GenerateResult:
    """Produce ``count`` blocks now, with mempool transactions (regtest only)."""
    if ctx.params.name != "regtest":
        raise ApiError(
            errors.REGTEST_ONLY,
            f"generate works only on regtest; this node runs {ctx.params.name}",
        )
    secret: bytes = request.app.state.producer_secret
    pay_to = None if body.pay_to is None else parse_address(ctx, body.pay_to)
    try:
        hashes = await ctx.core.generate(body.count, secret, pay_to)
    except RuleError as exc:  # our own template refused: a bug, not the client's fault
        raise ApiError(errors.GENERATE_FAILED, f"produced an invalid block: {exc}") from None
    payee = pay_to if pay_to is not None else request.app.state.producer_key
    return schemas.GenerateResult(
        hashes=[h.hex() for h in hashes],
        height=ctx.core.chainstate.height,
        pay_to=encode_address(payee, ctx.params),
    )


# -- mining -------------------------------------------------------------------------------------
@router.get("/mining/info", response_model=schemas.MiningInfo, tags=["mining"])
async def mining_info(ctx: Ctx) -> schemas.MiningInfo:
    """The miner's counters (``fcd --mine``); zeros, and the next block's target, when
    the node does not mine."""
    info = idle_info(ctx.core) if ctx.miner is None else ctx.miner.info()
    return schemas.MiningInfo(
        mining=info.mining,
        device=info.device,
        threads=info.threads,
        batch=info.batch,
        draws=info.draws,
        draws_per_second=info.draws_per_second,
        blocks_found=info.blocks_found,
        found=[schemas.FoundBlockView(height=f.height, hash=f.hash.hex()) for f in info.found],
        started_at=None if info.started_at is None else int(info.started_at),
        expected_seconds_per_block=info.expected_seconds_per_block,
        target=target_hex(info.target),
        height=info.height,
        network_draws_per_block=info.network_draws_per_block,
    )


# -- metrics -----------------------------------------------------------------------------------
@router.get("/metrics", tags=["node"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the node's numbers."""
    return Response(render(request.app.state.registry), media_type=CONTENT_TYPE)
