"""Value conservation through ``connect_block`` and exact reversal by ``disconnect_block``.

Hypothesis draws a starting coin set and a sequence of valid blocks whose transfers
split and merge coins at random (1–3 inputs, 1–3 outputs, fees from nothing to the whole
input), spend outputs made earlier in the same block and coinbases of earlier blocks,
and whose coinbases claim anything from nothing to subsidy + fees. Over ``MemoryCoins``:

* after each connect, total value = previous total + coinbase claim − fees paid
  (value out = value in + minted), the claim never exceeding subsidy + fees;
* disconnecting the blocks newest first restores each earlier coin set exactly, and in
  the end the starting set, coin for coin.

The parameters are regtest's with coinbase maturity lowered to 2, so coinbases made in a
drawn sequence can be spent later in it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.amounts import COIN
from chain.block import Block
from chain.checks import check_block
from chain.coins import Coin, MemoryCoins
from chain.contextual import ParentInfo, Undo, check_block_work, connect_block, disconnect_block
from chain.kinds import make_coinbase_payload
from chain.params import REGTEST, block_subsidy
from chain.producer import assemble_block, sign_transaction
from chain.schnorr import pubkey_of
from chain.transaction import NO_SIGNATURE, OutPoint, Transaction, TxIn, TxKind, TxOut
from tests.exactwork import sample, verify

PARAMS = dataclasses.replace(REGTEST, coinbase_maturity=2)
SECRETS = [hashlib.sha256(b"value-conservation-%d" % n).digest() for n in range(4)]
PUBKEYS = [pubkey_of(s) for s in SECRETS]
SECRET_OF = dict(zip(PUBKEYS, SECRETS, strict=True))
PRODUCER = SECRETS[0]

amounts = st.one_of(
    st.integers(0, 1_000), st.integers(0, 50 * COIN), st.sampled_from([0, 1, 21_000 * COIN])
)


def total_value(coins: MemoryCoins) -> int:
    return sum(c.amount for c in coins.coins.values())


def split(data: st.DataObject, amount: int, parts: int) -> list[int]:
    cuts = sorted(
        data.draw(st.lists(st.integers(0, amount), min_size=parts - 1, max_size=parts - 1))
    )
    bounds = [0, *cuts, amount]
    return [hi - lo for lo, hi in itertools.pairwise(bounds)]


def draw_transfer(
    data: st.DataObject, spendable: list[OutPoint], view: dict[OutPoint, Coin]
) -> tuple[Transaction, int]:
    """A signed transfer spending 1–3 of ``spendable`` (removed from it), and its fee."""
    k = data.draw(st.integers(1, min(3, len(spendable))), label="inputs")
    picks = data.draw(
        st.lists(st.integers(0, len(spendable) - 1), min_size=k, max_size=k, unique=True)
    )
    inputs = [spendable[i] for i in picks]
    for op in inputs:
        spendable.remove(op)
    coins = [view[op] for op in inputs]
    total_in = sum(c.amount for c in coins)
    fee = data.draw(
        st.one_of(st.just(0), st.integers(0, min(total_in, 10_000)), st.integers(0, total_in)),
        label="fee",
    )
    parts = split(data, total_in - fee, data.draw(st.integers(1, 3), label="outputs"))
    outputs = tuple(TxOut(a, data.draw(st.sampled_from(PUBKEYS))) for a in parts)
    unsigned = Transaction(
        1, TxKind.TRANSFER, tuple(TxIn(op, NO_SIGNATURE) for op in inputs), outputs, []
    )
    tx = sign_transaction(
        unsigned, [SECRET_OF[c.pubkey] for c in coins], [c.output for c in coins], PARAMS
    )
    return tx, fee


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_connect_conserves_value_and_disconnect_restores(data: st.DataObject) -> None:
    coins = MemoryCoins()
    for n in range(data.draw(st.integers(1, 6), label="funding coins")):
        outpoint = OutPoint(hashlib.sha256(b"funding-%d" % n).digest(), n)
        # Plain (non-coinbase) coins confirmed at height 0: spendable at once.
        coins.coins[outpoint] = Coin(
            data.draw(amounts), data.draw(st.sampled_from(PUBKEYS)), 0, False
        )
    original = dict(coins.coins)
    total = total_value(coins)
    genesis = PARAMS.genesis.header
    parent = ParentInfo(PARAMS.genesis_hash, 0, genesis.time, genesis.time)
    history: list[tuple[Block, Undo, dict[OutPoint, Coin]]] = []

    for height in range(1, data.draw(st.integers(1, 6), label="blocks") + 1):
        view = dict(coins.coins)  # the coins as the block goes: spends and in-block outputs
        spendable = sorted(
            op
            for op, c in coins.coins.items()
            if not c.is_coinbase or height - c.height >= PARAMS.coinbase_maturity
        )
        txs: list[Transaction] = []
        fees = 0
        for _ in range(data.draw(st.integers(0, 4), label="transfers")):
            if not spendable:
                break
            tx, fee = draw_transfer(data, spendable, view)
            for txin in tx.inputs:
                del view[txin.prevout]
            for n, out in enumerate(tx.outputs):
                outpoint = OutPoint(tx.txid, n)
                view[outpoint] = Coin(out.amount, out.pubkey, height, False)
                spendable.append(outpoint)  # later transfers of this block may spend it
            txs.append(tx)
            fees += fee
        limit = block_subsidy(height, PARAMS) + fees
        claim = data.draw(st.one_of(st.just(limit), st.integers(0, limit)), label="claim")
        coinbase = Transaction(
            1,
            TxKind.COINBASE,
            (),
            tuple(TxOut(a, PUBKEYS[0]) for a in split(data, claim, data.draw(st.integers(1, 2)))),
            make_coinbase_payload(height),
        )
        block = assemble_block(
            PARAMS, parent, PRODUCER, txs, parent.time + 1, coinbase=coinbase, sampler=sample
        )
        check_block(block, PARAMS)
        check_block_work(block, PARAMS, [PARAMS.lottery.standing_job], verify)
        result = connect_block(block, coins, PARAMS)
        assert result.fees == fees
        before = dict(coins.coins)
        coins.apply(result.overlay)

        # Value out = value in + minted: the fees paid are exactly what the coinbase may
        # claim beyond the subsidy.
        assert total_value(coins) == total + claim - fees
        assert claim <= block_subsidy(height, PARAMS) + result.fees
        total = total_value(coins)
        # The ledger the block describes, built independently above, is what connect made.
        for n, out in enumerate(coinbase.outputs):
            view[OutPoint(coinbase.txid, n)] = Coin(out.amount, out.pubkey, height, True)
        assert coins.coins == view
        # The undo record holds exactly the coins the block spent, as they were.
        spent = [txin.prevout for tx in txs for txin in tx.inputs]
        assert [op for op, _ in result.undo.spent] == spent
        assert all(before.get(op, coin) == coin for op, coin in result.undo.spent)

        history.append((block, result.undo, before))
        parent = ParentInfo(block.hash, height, block.header.time, block.header.time)

    for block, undo, before in reversed(history):
        coins.apply(disconnect_block(block, undo, coins))
        assert coins.coins == before
    assert coins.coins == original
