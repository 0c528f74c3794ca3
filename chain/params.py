"""Chain parameters for mainnet, testnet and regtest (specs/consensus.md §1).

Each network has its own magic (signed into every sighash and header signature), its
own address prefix and its own genesis block, so nothing of one network is valid on
another. Regtest produces blocks on demand at the easiest target.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from chain.amounts import COIN
from chain.block import BLOCK_VERSION, Block, BlockHeader, Ticket
from chain.hashing import TAG_GENESIS, tagged_hash
from chain.kinds import make_coinbase_payload
from chain.merkle import EMPTY_ROOT, merkle_root
from chain.transaction import NO_SIGNATURE, Transaction, TxKind, TxOut

HALVING_INTERVAL = 210_000
INITIAL_SUBSIDY = 50 * COIN
COINBASE_MATURITY = 100
MEDIAN_TIME_SPAN = 11
MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60
MAX_TIMEWARP = 600  # a block may be at most this many seconds older than its parent
TARGET_MAX = 2**256 - 1


@dataclass(frozen=True)
class ChainParams:
    name: str
    magic: bytes  # 4 bytes; separates networks in signatures and on the wire
    hrp: str  # bech32m human-readable prefix of addresses
    block_time: int  # target seconds between blocks (0: on demand)
    asert_halflife: int  # seconds for the target to double or halve when off schedule
    genesis_target: int
    max_target: int  # easiest target allowed (the "pow limit")
    no_retarget: bool  # regtest: the target never moves
    genesis_time: int
    genesis_message: bytes
    halving_interval: int = HALVING_INTERVAL
    initial_subsidy: int = INITIAL_SUBSIDY
    coinbase_maturity: int = COINBASE_MATURITY

    @cached_property
    def genesis(self) -> Block:
        """The network's first block: built from the parameters, never validated."""
        burn_key = tagged_hash(TAG_GENESIS, self.genesis_message)  # nobody holds its secret
        coinbase = Transaction(
            1,
            TxKind.COINBASE,
            (),
            (TxOut(0, burn_key),),
            make_coinbase_payload(0, self.genesis_message),
        )
        header = BlockHeader(
            version=BLOCK_VERSION,
            prev_hash=b"\x00" * 32,
            merkle_root=merkle_root([coinbase.wtxid]),
            benefit_root=EMPTY_ROOT,
            time=self.genesis_time,
            target=self.genesis_target,
            height=0,
            ticket=Ticket(b"\x00" * 32, 0, EMPTY_ROOT, EMPTY_ROOT),
            producer_sig=NO_SIGNATURE,
        )
        return Block(header, (coinbase,))

    @cached_property
    def genesis_hash(self) -> bytes:
        return self.genesis.hash


def block_subsidy(height: int, params: ChainParams) -> int:
    """New coins a block at ``height`` may mint: 50 FC, halving every 210,000 blocks."""
    halvings = height // params.halving_interval
    if halvings >= 64:
        return 0
    return params.initial_subsidy >> halvings


MAINNET = ChainParams(
    name="mainnet",
    magic=bytes.fromhex("f0c0a1e5"),
    hrp="fc",
    block_time=300,
    asert_halflife=2 * 24 * 60 * 60,
    # Until Proof of Benefit lands the ticket is a bare lottery: ~2**20 draws per block.
    genesis_target=2**236,
    max_target=2**244,
    no_retarget=False,
    genesis_time=1_795_392_000,  # 2026-11-23T00:00:00Z
    genesis_message=b"Foundation Coin mainnet: coins for work that helps people",
)

TESTNET = ChainParams(
    name="testnet",
    magic=bytes.fromhex("f0c0a1e6"),
    hrp="tfc",
    block_time=30,
    asert_halflife=60 * 60,
    genesis_target=2**244,
    max_target=2**248,
    no_retarget=False,
    genesis_time=1_795_392_001,
    genesis_message=b"Foundation Coin testnet",
)

REGTEST = ChainParams(
    name="regtest",
    magic=bytes.fromhex("f0c0a1e7"),
    hrp="fcrt",
    block_time=0,
    asert_halflife=1,
    genesis_target=TARGET_MAX,
    max_target=TARGET_MAX,
    no_retarget=True,
    genesis_time=1_795_392_002,
    genesis_message=b"Foundation Coin regtest",
)

NETWORKS: dict[str, ChainParams] = {p.name: p for p in (MAINNET, TESTNET, REGTEST)}


def params_for(name: str) -> ChainParams:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}") from None
