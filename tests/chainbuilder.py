"""Build regtest (and testnet) chains and hand-crafted blocks for the consensus tests.

The adversarial suites need a node with history: mature coinbases, a coin already spent,
plain (non-coinbase) coins to spend freely. Mining that chain takes about a second, so a
test module builds it once (:func:`build_base_chain`) and every test opens its own copy of
the LevelDB directory (:func:`open_copy`), leaving the template untouched.

The base chain (REGTEST, block ``h`` at ``genesis_time + h * SPACING``)::

    heights 1..101   empty blocks; each coinbase pays 50 FC to PRODUCER
    height  102      FUNDING: spends the coinbase of block 1 into ALICE_COINS outputs of
                     0.1 FC to ALICE, plus change to PRODUCER
    heights 103..110 empty blocks

The next block (111) may spend the coinbases of heights 2..11 (11 is exactly
``COINBASE_MATURITY`` deep); the coinbase of height 12 is one block short.

Helpers, in the order a test uses them:

* :class:`Node` wraps a :class:`Chainstate` with a fixed clock (``now``): ``build`` a block
  on the tip (or any parent) with ``assemble_block``, ``submit`` it as a peer would
  (bytes through ``decode_block``), ``mine`` a few, and take a ``state`` snapshot.
* :func:`pay` builds and signs a transfer with ``sign_transaction``.
* :func:`resign` changes header fields and signs the header again, and
  :func:`with_transactions` swaps a block's transactions (fixing the Merkle root by
  default), so a test breaks exactly one rule while the producer signature stays valid.
* :func:`reject` and :func:`reject_on_connect` submit a bad block and assert the exact
  error *and* that the node did not change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from chain.block import Block, BlockHeader, decode_block
from chain.chainstate import P_BLOCK, P_INDEX, P_UNDO, BlockStatus, Chainstate, ChainUpdate
from chain.errors import InvalidBlock, Reject, RuleError
from chain.merkle import merkle_root
from chain.params import REGTEST, ChainParams
from chain.producer import assemble_block, make_coinbase, sign_transaction
from chain.schnorr import pubkey_of, sign
from chain.transaction import NO_SIGNATURE, OutPoint, Transaction, TxIn, TxKind, TxOut
from tests import exactwork

# -- keys and constants -------------------------------------------------------------------


def secret_for(name: str) -> bytes:
    """A deterministic 32-byte secret key for a named test actor."""
    return hashlib.sha256(b"fc-test-key/" + name.encode()).digest()


PRODUCER = secret_for("producer")  # produces every block; its coinbases are the mature coins
ALICE = secret_for("alice")  # owns the plain coins of the funding transaction
BOB = secret_for("bob")  # receives payments; signs nothing unless a test makes it

SPACING = 200  # seconds between base-chain blocks: the tip is 1000 s ahead of its MTP
BASE_HEIGHT = 110
FUNDING_HEIGHT = 102
ALICE_COINS = 300
ALICE_COIN_VALUE = 10_000_000  # 0.1 FC
FUNDING_FEE = 1_000
# A clock far beyond every base-chain block; tests move it only on purpose.
NOW = REGTEST.genesis_time + 1_000_000


def key(secret: bytes) -> bytes:
    return pubkey_of(secret)


# -- coins and transactions ---------------------------------------------------------------


class Spendable(NamedTuple):
    """A coin and the secret that can spend it."""

    outpoint: OutPoint
    output: TxOut
    secret: bytes

    @property
    def amount(self) -> int:
        return self.output.amount


def outputs_of(tx: Transaction, secret: bytes) -> list[Spendable]:
    """Every output of ``tx`` as a :class:`Spendable`, assuming ``secret`` owns them all."""
    return [Spendable(OutPoint(tx.txid, n), out, secret) for n, out in enumerate(tx.outputs)]


def unsigned_transfer(
    coins: Sequence[Spendable],
    outputs: Sequence[TxOut],
    *,
    version: int = 1,
    kind: int = TxKind.TRANSFER,
    payload: Sequence[Any] = (),
) -> Transaction:
    inputs = tuple(TxIn(c.outpoint, NO_SIGNATURE) for c in coins)
    return Transaction(version, kind, inputs, tuple(outputs), list(payload))


def sign_for(
    tx: Transaction, coins: Sequence[Spendable], params: ChainParams = REGTEST
) -> Transaction:
    """Sign every input of ``tx`` with the owner of the coin it spends."""
    return sign_transaction(tx, [c.secret for c in coins], [c.output for c in coins], params)


def pay(
    coins: Sequence[Spendable],
    outputs: Sequence[TxOut],
    params: ChainParams = REGTEST,
    **shape: Any,
) -> Transaction:
    """A signed transfer spending ``coins`` into ``outputs`` (``shape``: version, kind,
    payload of :func:`unsigned_transfer`)."""
    return sign_for(unsigned_transfer(coins, outputs, **shape), coins, params)


def pay_all(coins: Sequence[Spendable], to: bytes, fee: int = 0) -> Transaction:
    """A signed transfer of everything in ``coins`` (minus ``fee``) to the key ``to``."""
    return pay(coins, [TxOut(sum(c.amount for c in coins) - fee, to)])


def flip_bit(data: bytes, byte: int = 0, bit: int = 0) -> bytes:
    buf = bytearray(data)
    buf[byte] ^= 1 << bit
    return bytes(buf)


# -- headers and blocks ----------------------------------------------------------------


def resign(
    header: BlockHeader,
    secret: bytes = PRODUCER,
    params: ChainParams = REGTEST,
    **changes: Any,
) -> BlockHeader:
    """``header`` with ``changes`` applied, signed again by ``secret`` for ``params``."""
    unsigned = header._replace(**changes, producer_sig=NO_SIGNATURE)
    return unsigned._replace(producer_sig=sign(secret, unsigned.signing_message(params.magic)))


def with_header(
    block: Block, secret: bytes = PRODUCER, params: ChainParams = REGTEST, **changes: Any
) -> Block:
    """The same transactions under a header with ``changes``, validly re-signed."""
    return Block(resign(block.header, secret, params, **changes), block.transactions)


def with_transactions(
    block: Block,
    transactions: Sequence[Transaction],
    *,
    fix_merkle: bool = True,
    secret: bytes = PRODUCER,
    params: ChainParams = REGTEST,
) -> Block:
    """``block`` carrying ``transactions`` instead. With ``fix_merkle`` the header commits
    to them (and is re-signed); without, the original header is kept byte for byte, so
    the mutated block has the *same hash* as the original."""
    txs = tuple(transactions)
    if not fix_merkle:
        return Block(block.header, txs)
    root = merkle_root([tx.wtxid for tx in txs])
    return Block(resign(block.header, secret, params, merkle_root=root), txs)


# -- the node -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeState:
    """What must not change when a block is rejected."""

    tip: bytes
    height: int
    utxo: bytes  # Chainstate.utxo_commitment()
    index: frozenset[bytes]
    db: bytes  # digest of every record in the database but those of ``ignored`` blocks


class Node:
    """A chainstate, its network and a fixed clock."""

    def __init__(
        self, path: str | os.PathLike[str], params: ChainParams = REGTEST, now: int = NOW
    ) -> None:
        self.path = Path(path)
        self.params = params
        self.now = now
        self.cs = Chainstate(path, params, exactwork.verify)

    def close(self) -> None:
        self.cs.close()

    def reopen(self) -> None:
        """Close and open the database again, as after a restart."""
        self.cs.close()
        self.cs = Chainstate(self.path, self.params, exactwork.verify)

    # -- building ----------------------------------------------------------------
    @property
    def tip_hash(self) -> bytes:
        return self.cs.tip.hash

    def build(
        self,
        transactions: Sequence[Transaction] = (),
        *,
        parent: bytes | None = None,
        time: int | None = None,
        height: int | None = None,
        coinbase: Transaction | None = None,
        fees: int = 0,
        pay_to: bytes | None = None,
        producer: bytes = PRODUCER,
    ) -> Block:
        """A valid-looking block: ``assemble_block`` on ``parent`` (default: the tip).

        ``time`` defaults to the parent's time + SPACING; ``height`` overrides the height
        the block (header and default coinbase alike) claims. The coinbase claims the
        subsidy plus ``fees``. The block wins a real draw of the regtest model
        (``tests.exactwork``), so its work passes every check.
        """
        info = self.cs.parent_info(parent or self.tip_hash)
        if height is not None:
            info = info._replace(height=height - 1)
        if time is None:
            time = info.time + SPACING
        return assemble_block(
            self.params,
            info,
            producer,
            transactions,
            time,
            coinbase=coinbase,
            pay_to=pay_to,
            fees=fees,
            sampler=exactwork.sample,
            # The jobs admitted on the active chain fit a child of the tip; a block on
            # another parent draws from the standing job alone.
            jobs=self.cs.jobs_for_child() if info.hash == self.tip_hash else None,
        )

    def coinbase(self, fees: int = 0, height: int | None = None, extra: bytes = b"") -> Transaction:
        """The coinbase the next block on the tip would carry (subsidy + ``fees``)."""
        h = self.cs.height + 1 if height is None else height
        return make_coinbase(h, self.params, key(PRODUCER), fees, extra)

    def submit(self, block: Block | bytes, now: int | None = None) -> ChainUpdate:
        """Hand ``block`` to the node as a peer would: as bytes, through ``decode_block``."""
        data = block.encoded if isinstance(block, Block) else block
        return self.cs.accept_block(decode_block(data), self.now if now is None else now)

    def mine(
        self, count: int, transactions: Sequence[Transaction] = (), fees: int = 0
    ) -> list[Block]:
        """Mine ``count`` blocks on the tip; ``transactions`` go into the first one."""
        blocks = []
        for n in range(count):
            block = self.build(transactions if n == 0 else (), fees=fees if n == 0 else 0)
            self.submit(block)
            assert self.tip_hash == block.hash, "a block the builder made was not accepted"
            blocks.append(block)
        return blocks

    # -- observing ------------------------------------------------------------------
    def state(self, ignore: Iterable[bytes] = ()) -> NodeState:
        """Snapshot of the node. Records of the ``ignore`` blocks (their bytes and index
        entries) are left out of the database digest: a block that fails to connect is
        stored, and that is the only change it may make."""
        skipped = {p + h for h in ignore for p in (P_BLOCK, P_INDEX)}
        digest = hashlib.sha256()
        for k, v in self.cs.db.iterator():
            if k in skipped:
                continue
            for part in (k, v):
                digest.update(len(part).to_bytes(4, "big") + part)
        return NodeState(
            self.cs.tip.hash,
            self.cs.height,
            self.cs.utxo_commitment(),
            frozenset(self.cs.index) - set(ignore),
            digest.digest(),
        )

    def is_failed(self, block_hash: bytes) -> bool:
        return self.cs.index[block_hash].failed


# -- the base chain --------------------------------------------------------------------


@dataclass(frozen=True)
class BaseChain:
    """A mined regtest chain stored at ``path`` (closed; copy it, never open it)."""

    path: Path
    tip: bytes
    coinbases: dict[int, Spendable]  # height -> the coinbase output of that block
    spent: Spendable  # the coinbase of block 1, spent by the funding transaction
    alice: list[Spendable]  # ALICE_COINS plain coins of ALICE_COIN_VALUE each
    funding: Transaction

    def mature(self, count: int) -> list[Spendable]:
        """``count`` distinct coinbases spendable in the next block (heights 2..11)."""
        assert count <= 10
        return [self.coinbases[h] for h in range(2, 2 + count)]


def build_base_chain(path: Path) -> BaseChain:
    node = Node(path)
    try:
        blocks = node.mine(FUNDING_HEIGHT - 1)
        coinbases = {
            b.header.height: Spendable(
                OutPoint(b.transactions[0].txid, 0), b.transactions[0].outputs[0], PRODUCER
            )
            for b in blocks
        }
        first = coinbases[1]
        change = first.amount - ALICE_COINS * ALICE_COIN_VALUE - FUNDING_FEE
        outputs = [TxOut(ALICE_COIN_VALUE, key(ALICE))] * ALICE_COINS + [
            TxOut(change, key(PRODUCER))
        ]
        funding = pay([first], outputs)
        blocks += node.mine(BASE_HEIGHT - FUNDING_HEIGHT + 1, [funding], fees=FUNDING_FEE)
        for b in blocks[FUNDING_HEIGHT - 1 :]:
            cb = b.transactions[0]
            coinbases[b.header.height] = Spendable(OutPoint(cb.txid, 0), cb.outputs[0], PRODUCER)
        assert node.cs.height == BASE_HEIGHT
        return BaseChain(
            path=path,
            tip=node.tip_hash,
            coinbases=coinbases,
            spent=first,
            alice=outputs_of(funding, ALICE)[:ALICE_COINS],
            funding=funding,
        )
    finally:
        node.close()


def open_copy(base: BaseChain, dest: Path) -> Node:
    """A node of its own on a copy of the base chain's database."""
    shutil.copytree(base.path, dest)
    node = Node(dest)
    assert node.tip_hash == base.tip
    return node


# -- assertions -------------------------------------------------------------------------


def reject(
    node: Node,
    block: Block | bytes,
    error: type[RuleError],
    code: Reject,
    *,
    now: int | None = None,
    decode: bool = True,
    block_hash: bytes | None = None,
) -> RuleError:
    """Submit ``block`` and assert it is turned away *before storage* with exactly
    ``error``/``code``, leaving every record of the database as it was.

    With ``decode`` (the default) the block arrives as bytes through ``decode_block``;
    without, the ``Block`` object is handed over directly (as a local producer would).
    ``block_hash`` names the block that must not be stored when only bytes are given.
    """
    before = node.state()
    if isinstance(block, Block):
        block_hash = block.hash
    with pytest.raises(RuleError) as info:
        if decode:
            node.submit(block, now)
        else:
            assert isinstance(block, Block)
            node.cs.accept_block(block, node.now if now is None else now)
    exc = info.value
    assert type(exc) is error, f"expected {error.__name__}, got {type(exc).__name__}: {exc}"
    assert exc.code == code, f"expected {code.value}, got {exc}"
    assert node.state() == before
    if block_hash is not None:
        assert block_hash not in node.cs.index
        assert node.cs.get_block_bytes(block_hash) is None
    return exc


def reject_on_connect(node: Node, block: Block, code: Reject) -> InvalidBlock:
    """Submit ``block``, which passes every check but fails when its inputs are spent.

    It is stored and marked failed; the tip, the height, the UTXO commitment and every
    other record stay as they were, no undo data is written, and a child of the block is
    then refused with ``bad-prevblk`` before storage.
    """
    before = node.state()
    with pytest.raises(RuleError) as info:
        node.submit(block)
    exc = info.value
    assert type(exc) is InvalidBlock, f"expected InvalidBlock, got {type(exc).__name__}: {exc}"
    assert exc.code == code, f"expected {code.value}, got {exc}"
    assert node.state(ignore=[block.hash]) == before
    assert node.cs.get_block_bytes(block.hash) == block.encoded
    assert node.cs.index[block.hash].status & BlockStatus.FAILED
    assert node.cs.db.get(P_UNDO + block.hash) is None
    # Invalid forever: sent again, it is refused at once, and nothing changes.
    stored = node.state()
    with pytest.raises(RuleError) as again:
        node.submit(block)
    assert type(again.value) is InvalidBlock
    assert again.value.code == Reject.BLK_KNOWN_INVALID
    assert node.state() == stored
    child = node.build(parent=block.hash)
    reject(node, child, InvalidBlock, Reject.PREV_INVALID)
    return exc
