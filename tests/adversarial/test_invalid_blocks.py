"""Invalid blocks, in the spirit of Bitcoin Core's feature_block.py and its bug history.

Each test hands the node one block (as bytes, through ``decode_block``, the way a peer's
block arrives) that breaks exactly one rule, then asserts the exact reject code, the
exception class, and that the node is unchanged:

* rejected before storage (decoding, context-free checks, the header in context): the
  database is byte-for-byte the same and the block hash is not in the index;
* rejected when connected (coinbase height and amount): the block is stored and marked
  failed, tip and UTXO commitment are unchanged, and its child gets ``bad-prevblk``.

Headers are re-signed after every mutation (``tests/chainbuilder.resign``), so the
producer signature never hides the rule under test. Every block wins a real draw of the
regtest model (``tests/exactwork.py``), and every block the node connects has its draw
re-executed. Everything runs on REGTEST, where every draw meets the target, except:

* the draw missing its target, on ``regtest_with(1_000_000)`` (a fixed target that one
  draw in a million meets);
* the ASERT rule, on ``ASERT_NET``: testnet's difficulty rules (its target moves) with
  regtest's lottery, since testnet's own model (SmolLM2) is far too slow to draw with
  in a test;
* the network's maximum target, on TESTNET itself: that block is refused before its
  draw matters, so it carries none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack
import pytest

from chain.block import BLOCK_VERSION, MAX_BLOCK_SIZE, Block, decode_block
from chain.chainstate import BlockStatus
from chain.checks import check_header, header_seed
from chain.contextual import ParentInfo, next_target
from chain.encoding import pack
from chain.errors import (
    BlockTooNew,
    DecodeError,
    InvalidBlock,
    Reject,
    RuleError,
    UnknownParent,
)
from chain.lottery import MAX_WORK_TOKENS, TOKEN_BYTES, decode_tokens, encode_tokens, pow_value
from chain.merkle import merkle_root
from chain.params import (
    MAX_FUTURE_BLOCK_TIME,
    MAX_TIMEWARP,
    REGTEST,
    TESTNET,
    VOCAB,
    ChainParams,
    block_subsidy,
    regtest_with,
)
from chain.producer import assemble_block, make_coinbase, search_work, unsigned_header
from chain.schnorr import sign
from chain.sighash import sighashes
from chain.transaction import OutPoint, Transaction, TxIn, TxKind, TxOut
from tests.chainbuilder import (
    BOB,
    NOW,
    PRODUCER,
    BaseChain,
    Node,
    flip_bit,
    key,
    pay_all,
    reject,
    reject_on_connect,
    with_header,
    with_transactions,
)
from tests.exactwork import sample

BOB_KEY = key(BOB)
TESTNET_NOW = TESTNET.genesis_time + 1_000_000
# Testnet's difficulty rules (ASERT from a target ~30 draws hard) with regtest's lottery.
ASERT_NET = replace(TESTNET, lottery=REGTEST.lottery)
# Regtest with a fixed target one draw in a million meets.
HARD = regtest_with(1_000_000)


@pytest.fixture
def testnet(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "testnet", TESTNET, TESTNET_NOW)
    yield n
    n.close()


@pytest.fixture
def asert_net(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "asert", ASERT_NET, TESTNET_NOW)
    yield n
    n.close()


@pytest.fixture
def hard(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "hard", HARD)
    yield n
    n.close()


def undrawn(node: Node) -> Block:
    """A block on the tip as ``assemble_block`` lays it out, but with no draw (counter 0,
    no tokens) and no signature: for rules that refuse it before its work matters."""
    info = node.cs.parent_info(node.tip_hash)
    coinbase = make_coinbase(info.height + 1, node.params, key(PRODUCER), 0)
    header = unsigned_header(node.params, info, key(PRODUCER), [coinbase], info.time + 30)
    return Block(header, (coinbase,))


def draw_for_target(params: ChainParams, block: Block, target: int) -> Block:
    """``block`` with its header's target set to ``target`` and a draw that meets it,
    signed for ``params``: only the rules about the target itself can fail."""
    unsigned = block.header._replace(target=target)
    for start in range(0, 10_000, 8):
        won = search_work(
            params, unsigned, [params.lottery.standing_job], sample, range(start, start + 8)
        )
        if won is not None:
            return with_header(block, params=params, target=target, work=won.work)
    raise AssertionError("no draw met the target in 10,000 tries")


def accept(node: Node, block: Block, now: int | None = None) -> None:
    node.submit(block, now)
    assert node.tip_hash == block.hash


def build_on_unknown(parent: Block) -> Block:
    """A valid child of ``parent``, a block the node has not stored."""
    h = parent.header
    info = ParentInfo(parent.hash, h.height, h.time, h.time - 1)
    return assemble_block(REGTEST, info, PRODUCER, [], h.time + 200, sampler=sample)


def spends(base: BaseChain, count: int) -> list[Transaction]:
    """``count`` independent valid transfers of mature coinbases."""
    return [pay_all([c], BOB_KEY) for c in base.mature(count)]


# -- decoding (specs/encoding.md) -------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\xc1",  # the one byte msgpack never uses
        hashlib.sha256(b"noise").digest() * 10,
        pack([1, 2, 3]),
        pack("a block"),
        msgpack.packb({"header": 1}),
        pack([[1], []]),
    ],
    ids=["empty", "zero", "never-used", "random", "wrong-array", "str", "map", "short-header"],
)
def test_garbage_bytes(node: Node, data: bytes) -> None:
    reject(node, data, DecodeError, Reject.DECODE_MALFORMED)


@pytest.mark.parametrize("keep", [1, 2, 100, -65, -1])
def test_truncated_block(node: Node, keep: int) -> None:
    block = node.build()
    reject(node, block.encoded[:keep], DecodeError, Reject.DECODE_MALFORMED, block_hash=block.hash)


@pytest.mark.parametrize("extra", [b"\x00", b"\xc0", pack([])], ids=["zero", "nil", "array"])
def test_trailing_bytes(node: Node, extra: bytes) -> None:
    block = node.build()
    data = block.encoded + extra
    reject(node, data, DecodeError, Reject.DECODE_MALFORMED, block_hash=block.hash)
    accept(node, block)  # the same block without the tail is fine


def test_header_integer_widened(node: Node) -> None:
    # The header's version 2 is a positive fixint (0x02); as uint8 (0xcc 0x02) it is the
    # same value in another encoding. Accepting it would give one block two byte strings.
    block = node.build()
    assert block.encoded[:3] == b"\x92\x99\x02"
    data = b"\x92\x99\xcc\x02" + block.encoded[3:]
    assert msgpack.unpackb(data) == msgpack.unpackb(block.encoded)
    reject(node, data, DecodeError, Reject.DECODE_NONCANONICAL, block_hash=block.hash)
    accept(node, block)


def test_transaction_list_length_widened(node: Node) -> None:
    # The transaction list's fixarray header (0x91: one entry) written as array16.
    block = node.build()
    header_bytes = pack(block.header.to_wire())
    start = 1 + len(header_bytes)
    assert block.encoded[start] == 0x91
    data = block.encoded[:start] + b"\xdc\x00\x01" + block.encoded[start + 1 :]
    assert msgpack.unpackb(data) == msgpack.unpackb(block.encoded)
    reject(node, data, DecodeError, Reject.DECODE_NONCANONICAL, block_hash=block.hash)


def test_amount_widened_inside_a_transaction(node: Node, base: BaseChain) -> None:
    # Even where the hashes would not change (txid and wtxid hash re-packed values), a
    # non-canonical byte string must not be accepted as a block.
    tx = pay_all(base.mature(1), BOB_KEY, fee=1)  # an amount unlike the coinbase's
    block = node.build([tx])
    amount = tx.outputs[0].amount
    assert 2**32 <= amount < 2**64  # ~50 FC in base units: uint64 (0xcf)
    canonical = b"\x92\xcf" + amount.to_bytes(8, "big")
    assert block.encoded.count(canonical) == 1
    amount_as_int64 = b"\x92\xd3" + amount.to_bytes(8, "big")
    data = block.encoded.replace(canonical, amount_as_int64)
    reject(node, data, DecodeError, Reject.DECODE_NONCANONICAL, block_hash=block.hash)


def test_oversize_block(node: Node) -> None:
    # Context-free valid transfers (unfunded, which only connecting would notice) filling
    # the block past MAX_BLOCK_SIZE: the size rule is the only one a check_block breaks.
    txs = []
    for t in range(22):
        inputs = tuple(
            TxIn(OutPoint(bytes([t]) * 28 + n.to_bytes(4, "big"), n), b"\x01" * 64)
            for n in range(900)
        )
        txs.append(Transaction(1, TxKind.TRANSFER, inputs, (TxOut(1, BOB_KEY),), []))
    block = node.build(txs)
    assert block.size > MAX_BLOCK_SIZE
    # From a peer, the bytes are refused before they are even parsed...
    reject(node, block.encoded, DecodeError, Reject.DECODE_MALFORMED, block_hash=block.hash)
    # ...and a Block object (a local producer, or a decoder with a larger limit) is
    # refused by the consensus rule itself.
    reject(node, block, InvalidBlock, Reject.BLK_OVERSIZE, decode=False)
    wide = decode_block(block.encoded, max_size=4 * MAX_BLOCK_SIZE)
    reject(node, wide, InvalidBlock, Reject.BLK_OVERSIZE, decode=False)


# -- the header alone (§4.1-4.4) -------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 3, 2**32 - 1])
def test_wrong_block_version(node: Node, version: int) -> None:
    assert version != BLOCK_VERSION
    reject(node, with_header(node.build(), version=version), InvalidBlock, Reject.BLK_VERSION)


def test_target_zero_is_out_of_range(node: Node) -> None:
    reject(node, with_header(node.build(), target=0), InvalidBlock, Reject.TARGET_RANGE)


def test_target_above_network_limit(testnet: Node) -> None:
    too_easy = with_header(undrawn(testnet), params=TESTNET, target=TESTNET.max_target + 1)
    with pytest.raises(InvalidBlock) as info:  # the header rule on its own
        check_header(too_easy.header, TESTNET)
    assert info.value.code == Reject.TARGET_RANGE
    reject(testnet, too_easy, InvalidBlock, Reject.TARGET_RANGE)


def _tokens(count: int) -> bytes:
    return encode_tokens(range(1, count + 1))


@pytest.mark.parametrize(
    "tokens",
    [
        b"",
        _tokens(REGTEST.lottery.max_new_tokens - 1),
        _tokens(REGTEST.lottery.max_new_tokens + 1),
        _tokens(REGTEST.lottery.max_new_tokens)[:-1],
        _tokens(REGTEST.lottery.max_new_tokens) + b"\x00",
        _tokens(MAX_WORK_TOKENS),
    ],
    ids=["none", "one-short", "one-more", "byte-short", "byte-more", "max-a-header-holds"],
)
def test_work_with_the_wrong_number_of_tokens(node: Node, tokens: bytes) -> None:
    # Regtest draws are exactly max_new_tokens tokens of TOKEN_BYTES each; every draw
    # meets regtest's target, so only the shape rule can refuse these.
    block = node.build()
    assert len(block.header.work.tokens) == REGTEST.lottery.max_new_tokens * TOKEN_BYTES
    bad = with_header(block, work=block.header.work._replace(tokens=tokens))
    with pytest.raises(InvalidBlock) as info:  # the header rule on its own
        check_header(bad.header, REGTEST)
    assert info.value.code == Reject.BAD_WORK_SHAPE
    reject(node, bad, InvalidBlock, Reject.BAD_WORK_SHAPE)
    accept(node, block)


def test_work_with_more_tokens_than_any_header_holds(node: Node) -> None:
    block = node.build()
    tokens = _tokens(MAX_WORK_TOKENS + 1)
    bad = with_header(block, work=block.header.work._replace(tokens=tokens))
    reject(node, bad.encoded, DecodeError, Reject.DECODE_MALFORMED, block_hash=bad.hash)
    accept(node, block)


@pytest.mark.parametrize(("position", "token"), [(0, VOCAB), (7, VOCAB + 1), (3, 2**32 - 1)])
def test_work_with_a_token_outside_the_vocabulary(node: Node, position: int, token: int) -> None:
    block = node.build()
    tokens = decode_tokens(block.header.work.tokens)
    assert all(t < VOCAB for t in tokens)
    tokens[position] = token
    bad = with_header(block, work=block.header.work._replace(tokens=encode_tokens(tokens)))
    reject(node, bad, InvalidBlock, Reject.BAD_WORK_SHAPE)
    accept(node, block)


def test_last_token_of_the_vocabulary_is_in_shape(node: Node) -> None:
    # The boundary: VOCAB - 1 passes the shape rule; the tokens are then simply not the
    # model's draw, which only connecting finds out.
    block = node.build()
    tokens = decode_tokens(block.header.work.tokens)
    tokens[0] = VOCAB - 1 if tokens[0] != VOCAB - 1 else VOCAB - 2
    bad = with_header(block, work=block.header.work._replace(tokens=encode_tokens(tokens)))
    check_header(bad.header, REGTEST)
    reject_on_connect(node, bad, Reject.BAD_WORK)


def test_draw_that_does_not_meet_the_target(hard: Node) -> None:
    # A draw made for plain regtest (where every draw wins) under a header carrying the
    # harder network's target: one draw in a million meets it, and this one does not.
    info = hard.cs.parent_info(hard.tip_hash)
    easy = assemble_block(REGTEST, info, PRODUCER, [], info.time + 200, sampler=sample)
    assert HARD.block_target is not None
    losing = with_header(easy, params=HARD, target=HARD.block_target)
    seed = header_seed(losing.header, HARD)
    assert pow_value(seed, losing.header.work.tokens) > HARD.block_target
    with pytest.raises(InvalidBlock) as info_:  # the header rule on its own
        check_header(losing.header, HARD)
    assert info_.value.code == Reject.BAD_WORK_POW
    reject(hard, losing, InvalidBlock, Reject.BAD_WORK_POW)


@pytest.mark.parametrize(("position", "delta"), [(0, 1), (7, -1)], ids=["first", "last"])
def test_tokens_changed_after_the_draw(node: Node, position: int, delta: int) -> None:
    # Tokens in shape, meeting regtest's target (every draw does), and re-signed: only
    # re-executing the draw shows they are not the model's. That is checked when the
    # block connects, so the block is stored, marked failed, and nothing else changes.
    block = node.build()
    tokens = decode_tokens(block.header.work.tokens)
    tokens[position] = (tokens[position] + delta) % VOCAB
    changed = with_header(block, work=block.header.work._replace(tokens=encode_tokens(tokens)))
    check_header(changed.header, REGTEST)
    reject_on_connect(node, changed, Reject.BAD_WORK)
    accept(node, node.build())  # the honest block on the same parent still connects


def test_draw_replayed_on_another_parent(node: Node) -> None:
    # A draw is bound to its header: the winning tokens of one block, replayed by the
    # same worker with the same counter in a block on another parent, are not that
    # header's draw (its seed covers the parent).
    first = node.build()
    accept(node, first)
    second = node.build()
    replay = with_header(second, work=first.header.work)
    assert header_seed(replay.header, REGTEST) != header_seed(first.header, REGTEST)
    check_header(replay.header, REGTEST)
    reject_on_connect(node, replay, Reject.BAD_WORK)
    accept(node, second)


def test_draw_kept_under_other_transactions(node: Node, base: BaseChain) -> None:
    # The seed covers the Merkle root: a won draw does not carry over to another body.
    block = node.build()
    other = node.build(spends(base, 1))
    swapped = with_header(other, work=block.header.work)
    reject_on_connect(node, swapped, Reject.BAD_WORK)
    accept(node, other)


@pytest.mark.parametrize(("byte", "bit"), [(0, 0), (63, 7)])
def test_producer_signature_bit_flipped(node: Node, byte: int, bit: int) -> None:
    block = node.build()
    sig = flip_bit(block.header.producer_sig, byte, bit)
    bad = Block(block.header._replace(producer_sig=sig), block.transactions)
    reject(node, bad, InvalidBlock, Reject.PRODUCER_SIG)
    accept(node, block)


def test_producer_signature_by_another_key(node: Node) -> None:
    # Bob signs a header whose work names the producer's key as the worker.
    reject(node, with_header(node.build(), secret=BOB), InvalidBlock, Reject.PRODUCER_SIG)


def test_header_signed_for_another_network(node: Node) -> None:
    block = with_header(node.build(), params=TESTNET)
    reject(node, block, InvalidBlock, Reject.PRODUCER_SIG)


def test_header_changed_after_signing(node: Node) -> None:
    block = node.build()
    moved = Block(block.header._replace(time=block.header.time + 1), block.transactions)
    reject(node, moved, InvalidBlock, Reject.PRODUCER_SIG)


def test_worker_key_not_on_the_curve(node: Node) -> None:
    block = node.build()
    bad_key = block.header.work._replace(worker_key=b"\xff" * 32)
    reject(node, with_header(block, work=bad_key), InvalidBlock, Reject.PRODUCER_SIG)


# -- the transaction list (§4.6-4.11) -------------------------------------------------------


def test_empty_transaction_list(node: Node) -> None:
    block = with_transactions(node.build(), [])
    assert block.header.merkle_root == merkle_root([])
    reject(node, block, InvalidBlock, Reject.BLK_NO_TX)


def test_missing_coinbase(node: Node, base: BaseChain) -> None:
    block = with_transactions(node.build(), spends(base, 1))
    reject(node, block, InvalidBlock, Reject.CB_MISSING)


def test_coinbase_not_first(node: Node, base: BaseChain) -> None:
    block = node.build(spends(base, 1))
    coinbase, transfer = block.transactions
    reject(node, with_transactions(block, [transfer, coinbase]), InvalidBlock, Reject.CB_MISSING)


def test_two_coinbases(node: Node) -> None:
    block = node.build()
    second = node.coinbase(extra=b"another")
    block = with_transactions(block, [*block.transactions, second])
    reject(node, block, InvalidBlock, Reject.CB_MULTIPLE)


def test_coinbase_with_inputs(node: Node, base: BaseChain) -> None:
    block = node.build()
    cb = block.transactions[0]
    spending_cb = Transaction(
        cb.version,
        cb.kind,
        (TxIn(base.mature(1)[0].outpoint, b"\x00" * 64),),
        cb.outputs,
        cb.payload,
    )
    reject(node, with_transactions(block, [spending_cb]), InvalidBlock, Reject.CB_HAS_INPUTS)


@pytest.mark.parametrize(
    "payload",
    [
        [],
        [111],
        [111, b"x" * 101],
        [-1, b""],
        [2**32, b""],
        [True, b""],
        [b"\x6f", b""],
        [111, "text"],
        [111, b"", 0],
    ],
    ids=[
        "empty",
        "no-extra",
        "extra-101-bytes",
        "negative-height",
        "height-above-uint32",
        "bool-height",
        "bytes-height",
        "str-extra",
        "three-fields",
    ],
)
def test_bad_coinbase_payload(node: Node, payload: list[Any]) -> None:
    assert node.cs.height + 1 == 111
    block = node.build()
    cb = block.transactions[0]
    bad = Transaction(cb.version, cb.kind, cb.inputs, cb.outputs, payload)
    reject(node, with_transactions(block, [bad]), InvalidBlock, Reject.CB_PAYLOAD)


def test_coinbase_extra_of_100_bytes_is_accepted(node: Node) -> None:
    accept(node, node.build(coinbase=node.coinbase(extra=b"x" * 100)))


def test_same_transaction_twice(node: Node, base: BaseChain) -> None:
    tx = spends(base, 1)[0]
    block = node.build([tx, tx])  # the header commits to the duplicate list
    reject(node, block, InvalidBlock, Reject.TX_DUPLICATE)


def test_malleated_copy_of_a_transaction(node: Node, base: BaseChain) -> None:
    # Same txid, different wtxid: another valid signature (other aux randomness).
    coin = base.mature(1)[0]
    tx = pay_all([coin], BOB_KEY)
    (msg,) = sighashes(tx, [coin.output], REGTEST.magic)
    twin = tx.with_signatures([sign(coin.secret, msg, b"\x01" * 32)])
    assert twin.txid == tx.txid and twin.wtxid != tx.wtxid
    reject(node, node.build([tx, twin]), InvalidBlock, Reject.TX_DUPLICATE)


@pytest.mark.parametrize(("transfers", "copied"), [(2, 1), (5, 2)], ids=["3+1", "6+2"])
def test_merkle_duplication_cve_2012_2459(
    node: Node, base: BaseChain, transfers: int, copied: int
) -> None:
    # Bitcoin's tree paired an odd last node with itself, so [.., c] and [.., c, c] (or
    # [1..6] and [1..6, 5, 6]) shared a root: a peer could send the valid block's header
    # with duplicated transactions, have it marked invalid, and so poison the real block
    # whose hash it shares. Here the duplicate is refused before storage, our tree gives
    # the mutant another root anyway, and the real block is accepted afterwards.
    good = node.build(spends(base, transfers))
    txs = good.transactions
    assert len(txs) == transfers + 1
    mutant = with_transactions(good, [*txs, *txs[-copied:]], fix_merkle=False)
    assert mutant.hash == good.hash
    assert merkle_root([tx.wtxid for tx in mutant.transactions]) != good.header.merkle_root
    reject(node, mutant.encoded, InvalidBlock, Reject.TX_DUPLICATE)
    assert good.hash not in node.cs.index
    accept(node, good)


def test_transactions_reordered_under_the_original_header(node: Node, base: BaseChain) -> None:
    # A mutated body under a valid header has the good block's hash; it must fail on the
    # Merkle root without marking that hash, so the real block still gets in.
    good = node.build(spends(base, 2))
    cb, a, b = good.transactions
    mutant = with_transactions(good, [cb, b, a], fix_merkle=False)
    assert mutant.hash == good.hash
    reject(node, mutant.encoded, InvalidBlock, Reject.MERKLE_ROOT)
    accept(node, good)


def test_wrong_merkle_root(node: Node) -> None:
    block = with_header(node.build(), merkle_root=b"\x11" * 32)
    reject(node, block, InvalidBlock, Reject.MERKLE_ROOT)


def test_merkle_root_over_txids_instead_of_wtxids(node: Node, base: BaseChain) -> None:
    block = node.build(spends(base, 1))
    txid_root = merkle_root([tx.txid for tx in block.transactions])
    reject(node, with_header(block, merkle_root=txid_root), InvalidBlock, Reject.MERKLE_ROOT)


def test_non_empty_benefit_root(node: Node) -> None:
    block = with_header(node.build(), benefit_root=b"\x01" + b"\x00" * 31)
    reject(node, block, InvalidBlock, Reject.BENEFIT_ROOT)


# -- the header in context (§5.1-5.6) ---------------------------------------------------------


def test_unknown_parent(node: Node) -> None:
    # An orphan is not invalid: nothing is stored, and it is accepted once its parent is.
    parent = node.build()
    orphan = build_on_unknown(parent)
    reject(node, orphan, UnknownParent, Reject.PREV_UNKNOWN)
    accept(node, parent)
    accept(node, orphan)


@pytest.mark.parametrize("offset", [2, 0, -1, -110], ids=["skip", "same", "lower", "zero"])
def test_wrong_height_in_header(node: Node, offset: int) -> None:
    # The coinbase claims the same (wrong) height, so only the header rule is broken.
    height = node.cs.height + offset
    block = node.build(height=height)
    assert block.header.height == height
    reject(node, block, InvalidBlock, Reject.HEIGHT)


def test_time_equal_to_median_time_past(node: Node) -> None:
    mtp = node.cs.parent_info(node.tip_hash).median_time_past
    reject(node, node.build(time=mtp), InvalidBlock, Reject.TIME_TOO_OLD)


def test_time_below_median_time_past(node: Node) -> None:
    mtp = node.cs.parent_info(node.tip_hash).median_time_past
    reject(node, node.build(time=mtp - 1), InvalidBlock, Reject.TIME_TOO_OLD)
    reject(node, node.build(time=0), InvalidBlock, Reject.TIME_TOO_OLD)


def test_time_just_above_median_time_past_but_far_behind_parent(node: Node) -> None:
    # Above the MTP, but 999 s before the parent: the timewarp bound is what fires.
    info = node.cs.parent_info(node.tip_hash)
    assert info.time - info.median_time_past > MAX_TIMEWARP
    reject(node, node.build(time=info.median_time_past + 1), InvalidBlock, Reject.TIME_TIMEWARP)


def test_timewarp(node: Node) -> None:
    info = node.cs.parent_info(node.tip_hash)
    parent_time = info.time
    late = node.build(time=parent_time - MAX_TIMEWARP - 1)
    assert late.header.time > info.median_time_past  # only the timewarp bound is broken
    reject(node, late, InvalidBlock, Reject.TIME_TIMEWARP)
    accept(node, node.build(time=parent_time - MAX_TIMEWARP))  # the boundary itself is fine


def test_time_too_far_in_the_future_is_retryable(node: Node) -> None:
    early = node.build(time=NOW + MAX_FUTURE_BLOCK_TIME + 1)
    reject(node, early, BlockTooNew, Reject.TIME_TOO_NEW)
    # Not invalid, only early: nothing was marked, and once our clock moves on it is fine.
    reject(node, early, BlockTooNew, Reject.TIME_TOO_NEW)
    accept(node, early, now=NOW + 1)


def test_time_exactly_two_hours_ahead_is_accepted(node: Node) -> None:
    accept(node, node.build(time=NOW + MAX_FUTURE_BLOCK_TIME))


def _asert_block_with_target(node: Node, target: int, time_offset: int = 30) -> Block:
    """A block on the tip carrying ``target`` with a draw that meets it, so only the
    target rule can fail."""
    block = node.build(time=node.cs.tip.header.time + time_offset)
    return draw_for_target(node.params, block, target)


def test_wrong_target_not_following_asert(asert_net: Node) -> None:
    # Block 1 comes an hour (one half-life) late, so ASERT roughly doubles the target
    # for block 2; a block keeping the genesis target ignores the retarget.
    accept(asert_net, asert_net.build(time=ASERT_NET.genesis_time + 3600))
    tip = asert_net.cs.tip
    expected = next_target(ASERT_NET, tip.header.time, tip.height)
    assert ASERT_NET.genesis_target < expected < ASERT_NET.max_target
    for wrong in (ASERT_NET.genesis_target, expected - 1, expected + 1):
        reject(
            asert_net,
            _asert_block_with_target(asert_net, wrong),
            InvalidBlock,
            Reject.TARGET_WRONG,
        )
    accept(asert_net, _asert_block_with_target(asert_net, expected))


def test_wrong_fixed_target(hard: Node) -> None:
    # A regtest network with a fixed target: a block drawn for plain regtest carries
    # plain regtest's target, which every draw meets, and not the network's.
    info = hard.cs.parent_info(hard.tip_hash)
    easy = assemble_block(REGTEST, info, PRODUCER, [], info.time + 200, sampler=sample)
    assert easy.header.target == REGTEST.genesis_target != HARD.block_target
    check_header(easy.header, HARD)
    reject(hard, easy, InvalidBlock, Reject.TARGET_WRONG)


# -- connecting (§5.7-5.8) ------------------------------------------------------------------


@pytest.mark.parametrize("offset", [1, -1, -111], ids=["next", "previous", "zero"])
def test_wrong_coinbase_height(node: Node, offset: int) -> None:
    # offset -1 repeats the previous block's coinbase exactly: the same txid, which
    # without this rule would overwrite an unspent coin (Bitcoin's BIP30 problem).
    height = node.cs.height + 1
    block = node.build(coinbase=node.coinbase(height=height + offset))
    tip_block = node.cs.get_block(node.tip_hash)
    assert tip_block is not None
    assert (block.transactions[0].txid == tip_block.transactions[0].txid) == (offset == -1)
    reject_on_connect(node, block, Reject.CB_HEIGHT)


def test_coinbase_claims_one_unit_more_than_subsidy_and_fees(node: Node, base: BaseChain) -> None:
    coin = base.mature(1)[0]
    tx = pay_all([coin], BOB_KEY, fee=1_000)
    greedy = node.build([tx], fees=1_001)
    assert greedy.transactions[0].outputs[0].amount == block_subsidy(111, REGTEST) + 1_001
    reject_on_connect(node, greedy, Reject.CB_AMOUNT)
    accept(node, node.build([tx], fees=1_000))  # the exact claim, on the same parent


def test_coinbase_claims_more_than_subsidy_without_fees(node: Node) -> None:
    reject_on_connect(node, node.build(fees=1), Reject.CB_AMOUNT)


def test_coinbase_claim_split_over_outputs(node: Node) -> None:
    height = node.cs.height + 1
    subsidy = block_subsidy(height, REGTEST)
    cb = node.coinbase()
    split = Transaction(
        cb.version, cb.kind, (), (TxOut(subsidy, key(PRODUCER)), TxOut(1, BOB_KEY)), cb.payload
    )
    reject_on_connect(node, node.build(coinbase=split), Reject.CB_AMOUNT)


# -- failed blocks and their descendants --------------------------------------------------


def test_child_and_grandchild_of_invalid_block(node: Node) -> None:
    bad = node.build(fees=1)
    reject_on_connect(node, bad, Reject.CB_AMOUNT)  # also checks the child
    child = node.build(parent=bad.hash)
    grandchild = build_on_unknown(child)
    reject(node, grandchild, UnknownParent, Reject.PREV_UNKNOWN)  # the child was not kept


def test_failure_survives_restart(node: Node) -> None:
    bad = node.build(fees=1)
    reject_on_connect(node, bad, Reject.CB_AMOUNT)
    before = node.state()
    node.reopen()
    assert node.state() == before
    assert node.cs.index[bad.hash].status & BlockStatus.FAILED
    with pytest.raises(InvalidBlock) as info:
        node.submit(bad)
    assert info.value.code == Reject.BLK_KNOWN_INVALID
    reject(node, node.build(parent=bad.hash), InvalidBlock, Reject.PREV_INVALID)


def test_resubmitted_invalid_block_is_rejected_again(node: Node) -> None:
    bad = node.build(fees=1)
    reject_on_connect(node, bad, Reject.CB_AMOUNT)
    before = node.state()
    with pytest.raises(RuleError) as info:
        node.submit(bad)
    assert type(info.value) is InvalidBlock
    assert info.value.code == Reject.BLK_KNOWN_INVALID
    assert node.state() == before


def test_invalid_block_on_a_side_branch_reorgs_back(node: Node, base: BaseChain) -> None:
    # A side branch overtakes the tip only with its second block, which is invalid: the
    # node disconnects the tip, connects the valid side block, fails the next, and must
    # come back to where it was, coin for coin.
    tip = node.cs.tip
    side = node.build(parent=tip.prev_hash, time=tip.header.time + 1)
    node.submit(side)
    assert node.tip_hash == tip.hash  # equal work: the first seen stays
    before = node.state()
    bad = node.build(spends(base, 1), parent=side.hash, fees=1)
    with pytest.raises(RuleError) as info:
        node.submit(bad)
    assert type(info.value) is InvalidBlock
    assert info.value.code == Reject.CB_AMOUNT
    assert node.state(ignore=[bad.hash]) == before
    assert node.is_failed(bad.hash) and not node.is_failed(side.hash)
    reject(node, node.build(parent=bad.hash), InvalidBlock, Reject.PREV_INVALID)


def test_valid_child_of_stored_invalid_side_block(node: Node, base: BaseChain) -> None:
    # The invalid block arrives first on a side branch with no more work than the tip, so
    # it is stored but not connected (its failure is not yet known). Its valid child makes
    # the branch the best; connecting fails at the parent, and the child, which was just
    # stored, must be reported as invalid rather than accepted in silence.
    tip = node.cs.tip
    bad = node.build(parent=tip.prev_hash, time=tip.header.time + 1, fees=1)
    node.submit(bad)
    assert node.tip_hash == tip.hash and not node.is_failed(bad.hash)
    before = node.state(ignore=[bad.hash])
    child = node.build(parent=bad.hash)
    with pytest.raises(RuleError) as info:
        node.submit(child)
    assert type(info.value) is InvalidBlock
    assert info.value.code == Reject.PREV_INVALID
    assert node.state(ignore=[bad.hash, child.hash]) == before
    assert node.cs.index[bad.hash].status & BlockStatus.FAILED
    assert node.cs.index[child.hash].status & BlockStatus.FAILED_PARENT
    reject(node, node.build(parent=child.hash), InvalidBlock, Reject.PREV_INVALID)
    accept(node, node.build(spends(base, 1)))  # the honest chain goes on
