"""Regtest blocks with real transfers for the chainstate tests, and the kill test's child.

As a module, :class:`LedgerBuilder` grows a *tree* of regtest blocks. Every block wins
a real draw of the regtest model (``tests/exactwork.py``), is signed, carries transfers
between a handful of wallet keys (spending mature coinbases, coins made in earlier
blocks, and outputs made earlier in the same block) and is validated as it is built: its
draw re-executed (``check_block_work``), then ``connect_block`` over an in-memory copy
of its parent's coin set. Each node keeps the coin set after its block, so the reference
commitment of any block of any branch is one ``memory_utxo_hash`` away. The builder
keeps the verdict of every draw it re-executed (:attr:`LedgerBuilder.verdicts`).

As a script (the kill test's child)::

    python chainfeed.py DATADIR BLOCKS_FILE VERDICTS_FILE

opens a :class:`Chainstate` in ``DATADIR``, prints ``ready``, finishes whatever
activation a kill interrupted, then offers every block of ``BLOCKS_FILE`` in order
(``accept_block`` skips blocks it already has; invalid ones are skipped) and prints
``done``. The parent kills it at random moments and checks the database in between.
The child's work verifier is :class:`RecordedVerdicts`: the builder's verdicts, so a
hundred short-lived children need not each import torch and load the model (~1.5 s
apiece); a draw the builder did not confirm is refused as bad work.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chain.block import Block, decode_block
from chain.checks import check_block
from chain.coins import Coin, CoinsOverlay, MemoryCoins, memory_utxo_hash
from chain.contextual import ParentInfo, Undo, check_block_work, connect_block, median_time_past
from chain.encoding import pack, unpack_canonical
from chain.errors import InvalidBlock, Reject, UnknownParent
from chain.lottery import DrawTask
from chain.params import MEDIAN_TIME_SPAN, REGTEST, ChainParams, block_subsidy
from chain.producer import assemble_block, make_coinbase, sign_transaction
from chain.schnorr import pubkey_of, sign
from chain.transaction import NO_SIGNATURE, OutPoint, Transaction, TxIn, TxKind, TxOut

if __name__ == "__main__":  # run as a script: make ``tests`` importable as under pytest
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.exactwork import sample, verify  # imports no model until one is used

# The clock handed to accept_block: every test block lies far in its past.
NOW = REGTEST.genesis_time + 10**8


def key_secret(label: str, n: int) -> bytes:
    return hashlib.sha256(f"chainfeed/{label}/{n}".encode()).digest()


@dataclass
class Node:
    """One built block and the ledger after it."""

    block: Block
    times: tuple[int, ...]  # times of this block and up to 10 ancestors, newest last
    coins: dict[OutPoint, Coin]  # the coin set after this block
    undo: Undo
    valid: bool  # False for a block with a bad signature and for all its descendants
    minted: int  # subsidies of every block from genesis up to here
    burned: int  # subsidy and fees the coinbases left unclaimed, up to here

    @property
    def hash(self) -> bytes:
        return self.block.hash

    @property
    def height(self) -> int:
        return self.block.header.height

    @property
    def value(self) -> int:
        """Total amount of the coin set after this block."""
        return self.minted - self.burned

    def as_parent(self) -> ParentInfo:
        header = self.block.header
        return ParentInfo(self.hash, header.height, header.time, median_time_past(self.times))


class LedgerBuilder:
    """A tree of valid (or deliberately invalid) blocks from genesis, with their ledgers."""

    def __init__(self, params: ChainParams = REGTEST, seed: int = 0, wallet_keys: int = 6) -> None:
        self.params = params
        self.rng = random.Random(seed)
        self.secrets: dict[bytes, bytes] = {}  # x-only pubkey -> secret
        self.wallet = [self._key(key_secret("wallet", n)) for n in range(wallet_keys)]
        genesis = params.genesis
        coins = MemoryCoins()
        overlay = CoinsOverlay(coins)
        overlay.add_outputs(genesis.transactions[0], 0)
        coins.apply(overlay)
        self.genesis = genesis.hash
        self.reserved: set[OutPoint] = set()  # never picked at random: kept for ``spend``
        # (seed, tokens) of every draw the model confirmed as some block's winning draw.
        self.verdicts: set[tuple[bytes, bytes]] = set()
        self.nodes: dict[bytes, Node] = {
            genesis.hash: Node(genesis, (genesis.header.time,), coins.coins, Undo([]), True, 0, 0)
        }

    def _key(self, secret: bytes) -> bytes:
        pubkey = pubkey_of(secret)
        self.secrets[pubkey] = secret
        return pubkey

    # -- reading ---------------------------------------------------------------------
    def node(self, block_hash: bytes) -> Node:
        return self.nodes[block_hash]

    def commitment(self, block_hash: bytes) -> bytes:
        coins = MemoryCoins()
        coins.coins = self.nodes[block_hash].coins
        return memory_utxo_hash(coins)

    def chain_to(self, block_hash: bytes) -> list[Block]:
        """The blocks from height 1 up to ``block_hash``, oldest first."""
        blocks = []
        node = self.nodes[block_hash]
        while node.height > 0:
            blocks.append(node.block)
            node = self.nodes[node.block.header.prev_hash]
        return blocks[::-1]

    def mature_coins(self, block_hash: bytes, owned: bool = True) -> list[OutPoint]:
        """Outpoints spendable by a child of ``block_hash`` (ours, when ``owned``)."""
        node = self.nodes[block_hash]
        height = node.height + 1
        return sorted(
            op
            for op, coin in node.coins.items()
            if (not owned or coin.pubkey in self.secrets)
            and (not coin.is_coinbase or height - coin.height >= self.params.coinbase_maturity)
        )

    # -- building ----------------------------------------------------------------------
    def extend(
        self,
        parent: bytes,
        *,
        producer: int = 0,
        transfers: int = 2,
        spend: Sequence[OutPoint] = (),
        burn: int = 0,
        corrupt: bool = False,
        tag: bytes = b"",
    ) -> Block:
        """Build, check and record a child of ``parent``.

        ``transfers`` transactions are chained: each one after the first spends output 0
        of the one before it (an output made earlier in the same block) plus, sometimes,
        another mature coin. The first one spends ``spend`` (for double spends across
        branches) or random mature coins. The coinbase claims subsidy + fees − ``burn``.
        With ``corrupt`` the first transfer carries a well-formed but wrong signature: the
        block passes ``check_block`` and fails to connect (``bad-txns-sig-invalid``).
        """
        params = self.params
        base = self.nodes[parent]
        height = base.height + 1
        view = MemoryCoins()
        view.coins = base.coins  # read only: connect_block writes to an overlay
        overlay = CoinsOverlay(view)
        pool = [
            op for op in self.mature_coins(parent) if op not in self.reserved and op not in spend
        ]
        txs: list[Transaction] = []
        fees = 0
        for k in range(transfers):
            inputs = list(spend) if k == 0 else [OutPoint(txs[-1].txid, 0)]
            want = self.rng.choice((1, 2)) if inputs else self.rng.choice((1, 2, 2))
            while len(inputs) < want and pool:
                inputs.append(pool.pop(self.rng.randrange(len(pool))))
            if not inputs:
                break
            coins = []
            for op in inputs:
                coin = overlay.get_coin(op)
                assert coin is not None, f"{op} is not spendable on this branch"
                coins.append(coin)
            total = sum(c.amount for c in coins)
            fee = self.rng.randrange(0, min(total, 5_000) + 1)
            first = self.rng.randrange(0, total - fee + 1)
            outputs = (
                TxOut(first, self.rng.choice(self.wallet)),
                TxOut(total - fee - first, self.rng.choice(self.wallet)),
            )
            unsigned = Transaction(
                1, TxKind.TRANSFER, tuple(TxIn(op, NO_SIGNATURE) for op in inputs), outputs, []
            )
            tx = sign_transaction(
                unsigned,
                [self.secrets[c.pubkey] for c in coins],
                [c.output for c in coins],
                params,
            )
            for op in inputs:
                overlay.spend(op)
            overlay.add_outputs(tx, height)
            fees += fee
            txs.append(tx)
        producer_key = self._key(key_secret("producer", producer))
        assert 0 <= burn <= block_subsidy(height, params) + fees
        coinbase = make_coinbase(height, params, producer_key, fees - burn, tag)
        info = base.as_parent()
        time = info.time + 1
        secret = self.secrets[producer_key]
        block = assemble_block(params, info, secret, txs, time, coinbase=coinbase, sampler=sample)
        check_block(block, params)
        task = check_block_work(block, params, [params.lottery.standing_job], verify)
        self.verdicts.add((task.seed, block.header.work.tokens))
        result = connect_block(block, view, params)
        assert result.fees == fees
        after = MemoryCoins()
        after.coins = dict(base.coins)
        after.apply(result.overlay)
        valid = base.valid
        if corrupt:
            assert txs, "a corrupt block needs a transfer to corrupt"
            bad = txs[0]
            wrong = sign(key_secret("wrong", 0), hashlib.sha256(bad.txid).digest())
            sigs = [wrong, *(i.signature for i in bad.inputs[1:])]
            block = assemble_block(
                params,
                info,
                secret,
                [bad.with_signatures(sigs), *txs[1:]],
                time,
                coinbase=coinbase,
                sampler=sample,
            )
            check_block(block, params)
            task = check_block_work(block, params, [params.lottery.standing_job], verify)
            self.verdicts.add((task.seed, block.header.work.tokens))
            try:
                connect_block(block, view, params)
            except InvalidBlock as exc:
                assert exc.code == Reject.TX_SIG_INVALID
            else:
                raise AssertionError("the corrupt block connected")
            valid = False  # same txids, so the same coin changes for its descendants
        times = (*base.times, time)[-MEDIAN_TIME_SPAN:]
        self.nodes[block.hash] = Node(
            block,
            times,
            after.coins,
            result.undo,
            valid,
            base.minted + block_subsidy(height, params),
            base.burned + burn,
        )
        return block

    def branch(
        self,
        parent: bytes,
        length: int,
        *,
        producer: int = 0,
        transfers: int = 2,
        burn: int = 0,
        tag: bytes = b"",
    ) -> list[Block]:
        """``length`` blocks, each on the one before, starting on ``parent``."""
        blocks = []
        for _ in range(length):
            block = self.extend(parent, producer=producer, transfers=transfers, burn=burn, tag=tag)
            blocks.append(block)
            parent = block.hash
        return blocks


# -- the kill test's block file and child ---------------------------------------------
def write_blocks(path: Path, blocks: Iterable[Block]) -> None:
    with path.open("wb") as f:
        for block in blocks:
            data = block.encoded
            f.write(struct.pack(">I", len(data)))
            f.write(data)


def write_verdicts(path: Path, verdicts: Iterable[tuple[bytes, bytes]]) -> None:
    path.write_bytes(pack(sorted([seed, tokens] for seed, tokens in verdicts)))


class RecordedVerdicts:
    """A ``chain.lottery.WorkVerifier`` answering from verdicts the model gave earlier
    (``LedgerBuilder.verdicts``): true exactly for the draws it confirmed."""

    def __init__(self, path: Path) -> None:
        pairs = unpack_canonical(path.read_bytes(), 1 << 30)
        self.confirmed = {(bytes(seed), bytes(tokens)) for seed, tokens in pairs}

    def __call__(self, task: DrawTask, tokens: bytes) -> bool:
        return (task.seed, tokens) in self.confirmed


def read_blocks(path: Path) -> list[Block]:
    data = path.read_bytes()
    blocks = []
    offset = 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        offset += 4
        blocks.append(decode_block(data[offset : offset + size]))
        offset += size
    return blocks


def feed(datadir: str, blocks_file: str, verdicts_file: str) -> None:
    from chain.chainstate import Chainstate  # here, so the module imports cheaply

    blocks = read_blocks(Path(blocks_file))
    chainstate = Chainstate(datadir, REGTEST, RecordedVerdicts(Path(verdicts_file)))
    print("ready", flush=True)
    chainstate.activate_best_chain()  # finish what a kill interrupted
    for block in blocks:
        # The test feeds an invalid branch on purpose, with children of refused blocks.
        with contextlib.suppress(InvalidBlock, UnknownParent):
            chainstate.accept_block(block, NOW)
    chainstate.close()
    print("done", flush=True)


if __name__ == "__main__":
    feed(sys.argv[1], sys.argv[2], sys.argv[3])
