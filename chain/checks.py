"""Context-free checks: what can be decided from a transaction or block alone.

These run before anything is looked up, so garbage is turned away cheaply and the
expensive contextual checks (``contextual.py``) only see well-formed data. Each check
cites its section of ``specs/consensus.md``.
"""

from __future__ import annotations

from chain.amounts import MAX_MONEY
from chain.block import BLOCK_VERSION, MAX_BLOCK_SIZE, Block, BlockHeader
from chain.errors import InvalidBlock, InvalidTransaction, Reject
from chain.kinds import check_payload
from chain.lottery import check_work_pow, check_work_shape, draw_seed
from chain.merkle import EMPTY_ROOT, merkle_root
from chain.params import ChainParams
from chain.schnorr import verify
from chain.transaction import MAX_TX_SIZE, Transaction, TxKind

TX_VERSION = 1


def check_transaction(tx: Transaction) -> None:
    """§2: shape, kind, amounts and duplicate inputs of one transaction."""
    if tx.size > MAX_TX_SIZE:  # §2.1
        raise InvalidTransaction(Reject.TX_OVERSIZE, f"{tx.size} bytes > {MAX_TX_SIZE}")
    if tx.version != TX_VERSION:  # §2.2
        raise InvalidTransaction(Reject.TX_VERSION, f"version {tx.version}")
    check_payload(tx)  # §2.3: kind known, payload schema, inputs present (or absent for coinbase)
    if not tx.outputs:  # §2.4
        raise InvalidTransaction(Reject.TX_VOUT_EMPTY, "no outputs")
    total = 0
    for out in tx.outputs:  # §2.5: each amount and every running sum within MAX_MONEY
        if out.amount < 0:
            raise InvalidTransaction(Reject.TX_VOUT_NEGATIVE, f"amount {out.amount}")
        if out.amount > MAX_MONEY:
            raise InvalidTransaction(Reject.TX_VOUT_TOOLARGE, f"amount {out.amount}")
        total += out.amount
        if total > MAX_MONEY:
            raise InvalidTransaction(Reject.TX_TXOUTTOTAL_TOOLARGE, f"running total {total}")
    if len({i.prevout for i in tx.inputs}) != len(tx.inputs):  # §2.6 (CVE-2018-17144)
        raise InvalidTransaction(Reject.TX_INPUTS_DUPLICATE, "an outpoint is spent twice")


def header_seed(header: BlockHeader, params: ChainParams) -> bytes:
    """The seed of the header's draw (specs/pob.md §2)."""
    return draw_seed(params.magic, header.draw_wire())


def check_header(header: BlockHeader, params: ChainParams) -> None:
    """§4.1–4.4: version, target range, the draw's shape and hash, producer signature.

    Everything here is cheap (hashes and one signature), so a header can be judged
    before its block is fetched; whether the tokens are really the model's draw is
    checked when the block connects (``chain.contextual.check_block_work``).
    """
    if header.version != BLOCK_VERSION:  # §4.1
        raise InvalidBlock(Reject.BLK_VERSION, f"version {header.version}")
    if not 1 <= header.target <= params.max_target:  # §4.2
        raise InvalidBlock(Reject.TARGET_RANGE, "target outside [1, max_target]")
    check_work_shape(header.work.tokens, params.lottery)  # §4.3
    check_work_pow(header_seed(header, params), header.work.tokens, header.target)  # §4.3
    if not verify(  # §4.4
        header.work.worker_key, header.producer_sig, header.signing_message(params.magic)
    ):
        raise InvalidBlock(Reject.PRODUCER_SIG, "producer signature invalid for this network")


def check_block(block: Block, params: ChainParams) -> None:
    """§4: everything about a block that needs no chain state."""
    if block.size > MAX_BLOCK_SIZE:  # §4.5
        raise InvalidBlock(Reject.BLK_OVERSIZE, f"{block.size} bytes > {MAX_BLOCK_SIZE}")
    check_header(block.header, params)
    txs = block.transactions
    if not txs:  # §4.6
        raise InvalidBlock(Reject.BLK_NO_TX, "no transactions")
    if txs[0].kind != TxKind.COINBASE:  # §4.7
        raise InvalidBlock(Reject.CB_MISSING, "first transaction is not a coinbase")
    for tx in txs[1:]:
        if tx.kind == TxKind.COINBASE:
            raise InvalidBlock(Reject.CB_MULTIPLE, "more than one coinbase")
    for tx in txs:  # §4.8
        try:
            check_transaction(tx)
        except InvalidTransaction as exc:
            raise InvalidBlock(exc.code, f"tx {tx.txid.hex()[:16]}: {exc.detail}") from None
    if len({tx.txid for tx in txs}) != len(txs):  # §4.9
        raise InvalidBlock(Reject.TX_DUPLICATE, "a transaction appears twice")
    if merkle_root([tx.wtxid for tx in txs]) != block.header.merkle_root:  # §4.10
        raise InvalidBlock(Reject.MERKLE_ROOT, "merkle root does not match transactions")
    if block.header.benefit_root != EMPTY_ROOT:  # §4.11: no benefit records before PoB
        raise InvalidBlock(Reject.BENEFIT_ROOT, "benefit root must be empty")
