"""Invalid transactions inside otherwise valid blocks, in the spirit of Bitcoin Core's
feature_block.py and the bugs behind it (the 2010 value overflow, CVE-2018-17144's
duplicate inputs, premature coinbase spends, cross-network replay).

Every test builds one block on a copy of the base chain (``tests/chainbuilder.py``) that
breaks exactly one rule, hands it to the node as bytes, and asserts the exact reject code,
the exception class, and that the node did not change:

* context-free rules (§2) turn the block away before it is stored (``reject``); the same
  transaction is also refused on its own by ``check_transaction`` as ``InvalidTransaction``,
  which is how the mempool will meet it;
* contextual rules (§3) fail only when the block is connected: the block is stored and
  marked failed, the tip and UTXO set stay as they were, and a child of it is refused
  with ``bad-prevblk`` (``reject_on_connect``).

Where a rule has a boundary (coinbase maturity, the size limit) the passing side is
tested too, so a test cannot pass merely because the rule fires everywhere.
"""

from __future__ import annotations

import hashlib

import pytest

from chain.amounts import MAX_MONEY
from chain.block import decode_block
from chain.checks import check_transaction
from chain.coins import Coin, MemoryCoins
from chain.contextual import ParentInfo, check_block_work, check_tx_inputs, connect_block
from chain.errors import (
    DecodeError,
    InvalidBlock,
    InvalidTransaction,
    MissingInputs,
    Reject,
    RuleError,
)
from chain.params import MAINNET, REGTEST, TESTNET, ChainParams
from chain.producer import assemble_block
from chain.transaction import (
    MAX_TX_SIZE,
    NO_SIGNATURE,
    OutPoint,
    Transaction,
    TxKind,
    TxOut,
    decode_transaction,
)
from tests.chainbuilder import (
    ALICE,
    BOB,
    PRODUCER,
    BaseChain,
    Node,
    Spendable,
    flip_bit,
    key,
    outputs_of,
    pay,
    pay_all,
    reject,
    reject_on_connect,
    sign_for,
    unsigned_transfer,
)
from tests.exactwork import sample, verify

BOB_KEY = key(BOB)


def reject_tx(node: Node, tx: Transaction, code: Reject) -> None:
    """A context-free rule: refused alone (mempool path) and inside a block (before storage)."""
    with pytest.raises(RuleError) as info:
        check_transaction(decode_transaction(tx.encoded))
    assert type(info.value) is InvalidTransaction
    assert info.value.code == code
    reject(node, node.build([tx]), InvalidBlock, code)


def accept(node: Node, *txs: Transaction, fees: int = 0) -> None:
    block = node.build(txs, fees=fees)
    node.submit(block)
    assert node.tip_hash == block.hash


# -- §2.5 amounts: the 2010 value-overflow incident and its relatives -----------------------


def test_output_above_max_money(node: Node, base: BaseChain) -> None:
    tx = pay(base.mature(1), [TxOut(MAX_MONEY + 1, BOB_KEY)])
    reject_tx(node, tx, Reject.TX_VOUT_TOOLARGE)


def test_output_of_uint64_max(node: Node, base: BaseChain) -> None:
    # The 2010 incident: an amount that wraps a signed 64-bit sum. It decodes (the wire
    # admits uint64) and must die on the range rule, not overflow anything.
    tx = pay(base.mature(1), [TxOut(2**64 - 1, BOB_KEY)])
    reject_tx(node, tx, Reject.TX_VOUT_TOOLARGE)


@pytest.mark.parametrize(
    "amounts",
    [[MAX_MONEY, 1], [MAX_MONEY // 2 + 1, MAX_MONEY // 2 + 1], [MAX_MONEY, MAX_MONEY, 0]],
    ids=["max-plus-one", "two-halves", "max-twice"],
)
def test_outputs_summing_past_max_money(node: Node, base: BaseChain, amounts: list[int]) -> None:
    tx = pay(base.mature(1), [TxOut(a, BOB_KEY) for a in amounts])
    reject_tx(node, tx, Reject.TX_TXOUTTOTAL_TOOLARGE)


def test_negative_output_balancing_an_inflated_one(node: Node, base: BaseChain) -> None:
    # The negative output pays for one above the input value: the outputs sum to the
    # input exactly, so only the per-output rule can catch it.
    coin = base.mature(1)[0]
    tx = pay([coin], [TxOut(-1, BOB_KEY), TxOut(coin.amount + 1, BOB_KEY)])
    reject_tx(node, tx, Reject.TX_VOUT_NEGATIVE)


def test_output_of_int64_min(node: Node, base: BaseChain) -> None:
    tx = pay(base.mature(1), [TxOut(-(2**63), BOB_KEY)])
    reject_tx(node, tx, Reject.TX_VOUT_NEGATIVE)


# Inputs summing past MAX_MONEY cannot be reached on a valid chain: every coin enters the
# set through an output checked against MAX_MONEY (alone and as a running sum), and the
# subsidy schedule issues less than MAX_MONEY in total, so any set of distinct coins sums
# to at most MAX_MONEY. The rule (§3.3) is a guard against a damaged or forged coin view,
# so it is tested over such a view.


def _forged_view(*amounts: int) -> tuple[MemoryCoins, list[Spendable]]:
    coins = MemoryCoins()
    spendables = []
    for n, amount in enumerate(amounts):
        outpoint = OutPoint(hashlib.sha256(b"forged-%d" % n).digest(), 0)
        coins.coins[outpoint] = Coin(amount, key(ALICE), 1, False)
        spendables.append(Spendable(outpoint, TxOut(amount, key(ALICE)), ALICE))
    return coins, spendables


def _connect_over(view: MemoryCoins, txs: list[Transaction], fees: int = 0) -> None:
    genesis = REGTEST.genesis
    parent = ParentInfo(genesis.hash, 0, genesis.header.time, genesis.header.time)
    block = assemble_block(
        REGTEST, parent, PRODUCER, txs, genesis.header.time + 1, fees=fees, sampler=sample
    )
    block = decode_block(block.encoded)
    check_block_work(block, REGTEST, [REGTEST.lottery.standing_job], verify)
    connect_block(block, view, REGTEST)


@pytest.mark.parametrize(
    "amounts",
    [(MAX_MONEY, 1), (MAX_MONEY, MAX_MONEY), (MAX_MONEY + 1,)],
    ids=["sum-max-plus-one", "sum-two-max", "single-coin-above-max"],
)
def test_inputs_summing_past_max_money_over_forged_view(amounts: tuple[int, ...]) -> None:
    view, coins = _forged_view(*amounts)
    tx = pay(coins, [TxOut(1, BOB_KEY)])
    with pytest.raises(RuleError) as info:
        check_tx_inputs(tx, view, 2, REGTEST)
    assert type(info.value) is InvalidTransaction
    assert info.value.code == Reject.TX_INPUT_VALUES_OUTOFRANGE
    with pytest.raises(RuleError) as info:
        _connect_over(view, [tx])
    assert type(info.value) is InvalidBlock
    assert info.value.code == Reject.TX_INPUT_VALUES_OUTOFRANGE
    assert all(view.get_coin(c.outpoint) is not None for c in coins)  # the view is untouched


def test_block_fees_past_max_money_over_forged_view() -> None:
    # Two transactions, each paying a fee of MAX_MONEY from its own forged coin: each is
    # fine alone, the block's fee total is not (§3.5 per block). Unreachable on a valid
    # chain for the same reason as above.
    view, coins = _forged_view(MAX_MONEY, MAX_MONEY)
    txs = [pay([c], [TxOut(0, BOB_KEY)]) for c in coins]
    for tx in txs:
        assert check_tx_inputs(tx, view, 2, REGTEST).fee == MAX_MONEY
    with pytest.raises(RuleError) as info:
        _connect_over(view, txs)
    assert type(info.value) is InvalidBlock
    assert info.value.code == Reject.TX_FEE_OUTOFRANGE


# -- §2.6 duplicate inputs (CVE-2018-17144) -------------------------------------------------


@pytest.mark.parametrize("multiplier", [1, 2], ids=["same-value", "inflating"])
def test_duplicate_inputs_in_one_transaction(node: Node, base: BaseChain, multiplier: int) -> None:
    # CVE-2018-17144: the same outpoint twice in one transaction. Bitcoin Core 0.14-0.16
    # skipped this check for blocks and would crash or, later, mint the coin twice.
    coin = base.mature(1)[0]
    tx = pay([coin, coin], [TxOut(coin.amount * multiplier, BOB_KEY)])
    reject_tx(node, tx, Reject.TX_INPUTS_DUPLICATE)


def test_duplicate_inputs_among_others(node: Node, base: BaseChain) -> None:
    a, b, c = base.mature(3)
    tx = pay([a, b, c, a], [TxOut(a.amount + b.amount + c.amount, BOB_KEY)])
    reject_tx(node, tx, Reject.TX_INPUTS_DUPLICATE)


# -- §2.1-2.4 shape ---------------------------------------------------------------------


def test_transfer_without_inputs(node: Node) -> None:
    tx = unsigned_transfer([], [TxOut(1, BOB_KEY)])
    reject_tx(node, tx, Reject.TX_VIN_EMPTY)


def test_transfer_without_outputs(node: Node, base: BaseChain) -> None:
    tx = pay(base.mature(1), [])
    reject_tx(node, tx, Reject.TX_VOUT_EMPTY)


@pytest.mark.parametrize("kind", [TxKind.BOND, TxKind.UNBOND, TxKind.CHALLENGE, 6, 255])
def test_unknown_transaction_kind(node: Node, base: BaseChain, kind: int) -> None:
    # Reserved kinds are not active yet: a block may not carry them. (JOB_SUBMIT is
    # active: a steward's lottery job, tests/adversarial/test_lottery_jobs.py.)
    coin = base.mature(1)[0]
    tx = pay([coin], [TxOut(coin.amount, BOB_KEY)], kind=kind)
    reject_tx(node, tx, Reject.TX_KIND_UNKNOWN)


def test_job_submit_without_its_payload(node: Node, base: BaseChain) -> None:
    # The kind is active, so a transfer relabelled as a job-submit fails on its payload.
    coin = base.mature(1)[0]
    tx = pay([coin], [TxOut(coin.amount, BOB_KEY)], kind=TxKind.JOB_SUBMIT)
    reject_tx(node, tx, Reject.TX_PAYLOAD)


@pytest.mark.parametrize("version", [0, 2, 2**32 - 1])
def test_wrong_transaction_version(node: Node, base: BaseChain, version: int) -> None:
    coin = base.mature(1)[0]
    tx = pay([coin], [TxOut(coin.amount, BOB_KEY)], version=version)
    reject_tx(node, tx, Reject.TX_VERSION)


@pytest.mark.parametrize("payload", [[0], [b""], [[]], [None]], ids=repr)
def test_transfer_with_payload(node: Node, base: BaseChain, payload: list[object]) -> None:
    coin = base.mature(1)[0]
    tx = pay([coin], [TxOut(coin.amount, BOB_KEY)], payload=payload)
    reject_tx(node, tx, Reject.TX_PAYLOAD)


def _big_transfer(coins: list[Spendable], max_size: int | None) -> Transaction:
    """A fully valid, signed transfer of ``coins`` into as many equal outputs as fit in
    ``max_size`` bytes (``None``: the most the decoder allows, 2000)."""

    def build(n: int) -> Transaction:
        share = sum(c.amount for c in coins) // n
        return unsigned_transfer(coins, [TxOut(share, BOB_KEY)] * n)

    n = 2000
    while max_size is not None and build(n).size > max_size:
        n -= 1
    return sign_for(build(n), coins)


def test_oversize_transaction(node: Node, base: BaseChain) -> None:
    # Valid in every respect but its size: 200 real inputs, 2000 outputs, all signed.
    tx = _big_transfer(base.alice[:200], None)
    assert tx.size > MAX_TX_SIZE
    with pytest.raises(RuleError) as info:  # alone, it does not even decode
        decode_transaction(tx.encoded)
    assert type(info.value) is DecodeError
    assert info.value.code == Reject.DECODE_MALFORMED
    with pytest.raises(RuleError) as info:
        check_transaction(tx)
    assert type(info.value) is InvalidTransaction
    assert info.value.code == Reject.TX_OVERSIZE
    reject(node, node.build([tx]), InvalidBlock, Reject.TX_OVERSIZE)


def test_transaction_of_exactly_max_size_is_accepted(node: Node, base: BaseChain) -> None:
    tx = _big_transfer(base.alice[:200], MAX_TX_SIZE)
    assert MAX_TX_SIZE - 50 < tx.size <= MAX_TX_SIZE
    check_transaction(decode_transaction(tx.encoded))
    accept(node, tx)


# -- §3.1 inputs missing or spent --------------------------------------------------------


def test_spend_of_nonexistent_transaction(node: Node) -> None:
    ghost = Spendable(OutPoint(b"\x42" * 32, 0), TxOut(10**8, key(ALICE)), ALICE)
    block = node.build([pay_all([ghost], BOB_KEY)])
    reject_on_connect(node, block, Reject.TX_INPUTS_MISSING)


def test_spend_of_output_index_past_the_end(node: Node, base: BaseChain) -> None:
    funding = base.funding
    ghost = Spendable(OutPoint(funding.txid, len(funding.outputs)), TxOut(1, key(ALICE)), ALICE)
    block = node.build([pay_all([ghost], BOB_KEY)])
    reject_on_connect(node, block, Reject.TX_INPUTS_MISSING)


def test_double_spend_within_one_block(node: Node, base: BaseChain) -> None:
    coin = base.mature(1)[0]
    first = pay_all([coin], BOB_KEY)
    second = pay_all([coin], key(ALICE))  # another transaction (another txid), same coin
    block = node.build([first, second])
    reject_on_connect(node, block, Reject.TX_INPUTS_MISSING)


def test_double_spend_of_coin_spent_on_active_chain(node: Node, base: BaseChain) -> None:
    # The coinbase of block 1 was spent by the funding transaction in block 102.
    block = node.build([pay_all([base.spent], BOB_KEY)])
    reject_on_connect(node, block, Reject.TX_INPUTS_MISSING)


def test_spend_of_output_created_later_in_the_same_block(node: Node, base: BaseChain) -> None:
    parent_tx = pay_all(base.mature(1), key(ALICE))
    child_tx = pay_all(outputs_of(parent_tx, ALICE), BOB_KEY)
    block = node.build([child_tx, parent_tx])
    reject_on_connect(node, block, Reject.TX_INPUTS_MISSING)


def test_spend_of_output_created_earlier_in_the_same_block_is_accepted(
    node: Node, base: BaseChain
) -> None:
    parent_tx = pay_all(base.mature(1), key(ALICE))
    child_tx = pay_all(outputs_of(parent_tx, ALICE), BOB_KEY)
    accept(node, parent_tx, child_tx)


def test_spend_of_the_same_blocks_coinbase(node: Node) -> None:
    # Coinbase outputs join the coin set after the block's transfers (and are immature
    # for 100 blocks anyway): the transfer finds no such coin.
    coinbase = node.coinbase()
    own = outputs_of(coinbase, PRODUCER)
    block = node.build([pay_all(own, BOB_KEY)], coinbase=coinbase)
    reject_on_connect(node, block, Reject.TX_INPUTS_MISSING)


def test_coins_created_by_a_failed_block_do_not_exist(node: Node, base: BaseChain) -> None:
    good = pay_all(base.mature(1), key(ALICE))
    bad = pay([base.alice[0]], [TxOut(base.alice[0].amount + 1, BOB_KEY)])
    reject_on_connect(node, node.build([good, bad]), Reject.TX_IN_BELOWOUT)
    # ``good`` made coins in the failed block's overlay; none of them reached the set...
    spend_ghost = node.build([pay_all(outputs_of(good, ALICE), BOB_KEY)])
    reject_on_connect(node, spend_ghost, Reject.TX_INPUTS_MISSING)
    # ...and the coin it spent is still there to be spent properly.
    accept(node, good)


# -- §3.2 coinbase maturity ----------------------------------------------------------------


def test_spend_of_coinbase_99_blocks_deep(node: Node, base: BaseChain) -> None:
    height = node.cs.height + 1
    coin = base.coinbases[height - REGTEST.coinbase_maturity + 1]
    block = node.build([pay_all([coin], BOB_KEY)])
    reject_on_connect(node, block, Reject.TX_PREMATURE_SPEND)


def test_spend_of_coinbase_100_blocks_deep_is_accepted(node: Node, base: BaseChain) -> None:
    height = node.cs.height + 1
    coin = base.coinbases[height - REGTEST.coinbase_maturity]
    accept(node, pay_all([coin], BOB_KEY))


def test_spend_of_freshly_mined_coinbase(node: Node, base: BaseChain) -> None:
    coin = base.coinbases[node.cs.height]  # the tip's own coinbase: 1 block deep
    reject_on_connect(node, node.build([pay_all([coin], BOB_KEY)]), Reject.TX_PREMATURE_SPEND)


# -- §3.4 values -----------------------------------------------------------------------


def test_outputs_exceed_inputs_by_one_unit(node: Node, base: BaseChain) -> None:
    coin = base.mature(1)[0]
    tx = pay([coin], [TxOut(coin.amount // 2, BOB_KEY), TxOut(coin.amount // 2 + 1, BOB_KEY)])
    reject_on_connect(node, node.build([tx]), Reject.TX_IN_BELOWOUT)


def test_outputs_exceed_inputs_in_second_transaction(node: Node, base: BaseChain) -> None:
    a, b = base.mature(2)
    ok = pay_all([a], BOB_KEY)
    bad = pay([b], [TxOut(b.amount + 1, BOB_KEY)])
    reject_on_connect(node, node.build([ok, bad]), Reject.TX_IN_BELOWOUT)


# -- §3.6 signatures ---------------------------------------------------------------------


@pytest.mark.parametrize(("byte", "bit"), [(0, 0), (31, 7), (32, 0), (63, 7)])
def test_signature_with_one_bit_flipped(node: Node, base: BaseChain, byte: int, bit: int) -> None:
    tx = pay_all(base.mature(1), BOB_KEY)
    broken = tx.with_signatures([flip_bit(tx.inputs[0].signature, byte, bit)])
    assert broken.txid == tx.txid and broken.wtxid != tx.wtxid
    reject_on_connect(node, node.build([broken]), Reject.TX_SIG_INVALID)


def test_signature_by_the_wrong_key(node: Node, base: BaseChain) -> None:
    coin = base.mature(1)[0]
    forged = coin._replace(secret=BOB)  # Bob signs for the producer's coin
    reject_on_connect(node, node.build([pay_all([forged], BOB_KEY)]), Reject.TX_SIG_INVALID)


def test_missing_signature(node: Node, base: BaseChain) -> None:
    tx = unsigned_transfer(base.mature(1), [TxOut(base.mature(1)[0].amount, BOB_KEY)])
    assert tx.inputs[0].signature == NO_SIGNATURE
    reject_on_connect(node, node.build([tx]), Reject.TX_SIG_INVALID)


@pytest.mark.parametrize("network", [TESTNET, MAINNET], ids=lambda p: p.name)
def test_signature_valid_on_another_network(
    node: Node, base: BaseChain, network: ChainParams
) -> None:
    # Cross-network replay: the network magic is part of every sighash.
    coin = base.mature(1)[0]
    tx = pay([coin], [TxOut(coin.amount, BOB_KEY)], network)
    reject_on_connect(node, node.build([tx]), Reject.TX_SIG_INVALID)


def test_signature_committing_to_a_different_amount(node: Node, base: BaseChain) -> None:
    # The signer was told the coin is worth less (BIP341's fix for lying-amount attacks).
    coin = base.mature(1)[0]
    lied = coin._replace(output=TxOut(coin.amount - 1, coin.output.pubkey))
    tx = sign_for(unsigned_transfer([coin], [TxOut(1, BOB_KEY)]), [lied])
    reject_on_connect(node, node.build([tx]), Reject.TX_SIG_INVALID)


def test_signatures_swapped_between_inputs(node: Node, base: BaseChain) -> None:
    a, b = base.mature(2)
    tx = pay([a, b], [TxOut(a.amount + b.amount, BOB_KEY)])
    swapped = tx.with_signatures([tx.inputs[1].signature, tx.inputs[0].signature])
    reject_on_connect(node, node.build([swapped]), Reject.TX_SIG_INVALID)


def test_signature_from_another_transaction(node: Node, base: BaseChain) -> None:
    coin = base.mature(1)[0]
    signed = pay([coin], [TxOut(coin.amount, BOB_KEY)])
    other = unsigned_transfer([coin], [TxOut(coin.amount, key(ALICE))])
    stolen = other.with_signatures([signed.inputs[0].signature])
    reject_on_connect(node, node.build([stolen]), Reject.TX_SIG_INVALID)


def test_genesis_output_is_unspendable(node: Node) -> None:
    # The genesis coinbase pays 0 to a hash nobody holds a key for; it is in the coin set
    # and mature, so only the signature can stop it.
    genesis_cb = REGTEST.genesis.transactions[0]
    outpoint = OutPoint(genesis_cb.txid, 0)
    assert node.cs.get_coin(outpoint) is not None
    coin = Spendable(outpoint, genesis_cb.outputs[0], ALICE)
    reject_on_connect(node, node.build([pay_all([coin], BOB_KEY)]), Reject.TX_SIG_INVALID)


def test_bad_signature_in_last_transaction_fails_the_whole_block(
    node: Node, base: BaseChain
) -> None:
    # Signatures are verified in one batch at the end: the good transactions before the
    # bad one must not be applied either.
    good = [pay_all([c], BOB_KEY) for c in base.mature(4)]
    last = pay_all([base.alice[0]], BOB_KEY)
    last = last.with_signatures([flip_bit(last.inputs[0].signature, 40)])
    reject_on_connect(node, node.build([*good, last]), Reject.TX_SIG_INVALID)
    for c in base.mature(4):
        assert node.cs.get_coin(c.outpoint) is not None


def test_missing_inputs_raise_the_orphan_error_alone(node: Node) -> None:
    # Outside a block (the mempool path) an unknown input is MissingInputs, which a
    # mempool may keep as an orphan; inside a block it is InvalidBlock (tested above).
    ghost = Spendable(OutPoint(b"\x42" * 32, 0), TxOut(10**8, key(ALICE)), ALICE)
    tx = pay_all([ghost], BOB_KEY)
    with pytest.raises(RuleError) as info:
        check_tx_inputs(tx, node.cs, node.cs.height + 1, REGTEST)
    assert type(info.value) is MissingInputs
    assert info.value.code == Reject.TX_INPUTS_MISSING
