"""Chain parameters for mainnet, testnet and regtest (specs/consensus.md §1).

Each network has its own magic (signed into every sighash and header signature), its
own address prefix and its own genesis block, so nothing of one network is valid on
another. Each also fixes its lottery (chain/lottery.py): the integer model whose draws win
blocks, how long a draw is, the standing prompt set and the stewards. Regtest produces
blocks on demand at the easiest target, where every draw wins, with the tiny model.

Targets are given in **expected draws per block** (``target_for_draws``): the draw rates
they are tuned to are measured in specs/pob.md §8.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from chain.amounts import COIN
from chain.block import BLOCK_VERSION, Block, BlockHeader, Work
from chain.hashing import TAG_GENESIS, tagged_hash
from chain.kinds import make_coinbase_payload
from chain.lottery import LotteryParams
from chain.merkle import EMPTY_ROOT, merkle_root
from chain.transaction import NO_SIGNATURE, Transaction, TxKind, TxOut

HALVING_INTERVAL = 210_000
INITIAL_SUBSIDY = 50 * COIN
COINBASE_MATURITY = 100
MEDIAN_TIME_SPAN = 11
MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60
MAX_TIMEWARP = 600  # a block may be at most this many seconds older than its parent
TARGET_MAX = 2**256 - 1


def target_for_draws(draws: int) -> int:
    """The target that one draw in ``draws`` meets on average (``block_work`` inverts it)."""
    return (1 << 256) // draws - 1


# The standing prompt set (workloads/exact/prompts/cancer_knowledge_v1.txt): its Merkle
# root is the inputs_root of the standing lottery job; the file's sha256 lets a node
# refuse a damaged copy before it draws from it.
STANDING_SET_ROOT = bytes.fromhex(
    "c2d5fe7e425c5aac931314cc72000100865ab63a245f2aa270fedb154e13d5ce"
)
STANDING_SET_ITEMS = 320
STANDING_SET_SHA256 = bytes.fromhex(
    "3c848c278cf34e1ea1e0a2e61591be7e049fbd4ba20cf771ccec86ce625b70e0"
)
# The integer models (specs/exact.md §6), by artifact hash.
SMOLLM2_EXACT = bytes.fromhex("457ef79c27b3af30c922483cf9cbe359fbea2981aed9049897bb542e73962063")
TINY_EXACT = bytes.fromhex("3f67501cda6b8a7db8e696a0e5750d76da3cd7c95cc74c143cc18f837a2badc2")
VOCAB = 49_152  # both models use SmolLM2's tokenizer
# Stewards of the test networks. Their secrets are public on purpose (anyone may test
# admitting a prompt set): tagged_hash("fc/steward-secret", b"<network> steward 0").
TESTNET_STEWARD = bytes.fromhex("9a0d6322305ebd035bc0e1ebdcbfd5690a196b9b33533e7ae1556ead2d7fbf84")
REGTEST_STEWARD = bytes.fromhex("b0e4dd0e69e5b86d63180ed595e0e02743519138e74f8dfc79222bcc5783493d")


def steward_secret(network: str) -> bytes:
    """The published steward secret of a test network (never of mainnet)."""
    if network == "mainnet":
        raise ValueError("mainnet's steward keys are not public")
    return tagged_hash("fc/steward-secret", network.encode() + b" steward 0")


def _lottery(
    arch: str, model: bytes, max_new: int, delay: int, stewards: tuple[bytes, ...]
) -> LotteryParams:
    return LotteryParams(
        arch=arch,
        model_hash=model,
        vocab=VOCAB,
        max_new_tokens=max_new,
        max_prompt_tokens=464,
        temperature_milli=700,
        activation_delay=delay,
        standing_root=STANDING_SET_ROOT,
        standing_items=STANDING_SET_ITEMS,
        standing_sha256=STANDING_SET_SHA256,
        stewards=stewards,
    )


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
    lottery: LotteryParams
    # Blocks that are ancestors of this one skip re-executing their draw during initial
    # sync (as Bitcoin Core skips scripts below its assumevalid block); None: check all.
    assume_valid: bytes | None = None
    block_target: int | None = None  # regtest only: the fixed target of every block
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
            work=Work(b"\x00" * 32, 0, b""),
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
    # A day: the rate of SmolLM2 draws can swing by orders of magnitude while miners
    # join (one CPU thread makes ~1 draw/s, a GPU hundreds), so the target must follow
    # within hours, yet no burst of lucky blocks may swing it far.
    asert_halflife=24 * 60 * 60,
    genesis_target=target_for_draws(3_000),  # ~10 draws/s at launch: a few CPU miners
    max_target=target_for_draws(30),
    no_retarget=False,
    genesis_time=1_795_392_000,  # 2026-11-23T00:00:00Z
    genesis_message=b"Foundation Coin mainnet: coins for work that helps people",
    lottery=_lottery("exact-smollm2-135m", SMOLLM2_EXACT, 64, 288, ()),
)

TESTNET = ChainParams(
    name="testnet",
    magic=bytes.fromhex("f0c0a1e6"),
    hrp="tfc",
    block_time=30,
    asert_halflife=60 * 60,
    genesis_target=target_for_draws(30),  # one CPU thread of SmolLM2, ~1 draw/s
    max_target=target_for_draws(4),
    no_retarget=False,
    genesis_time=1_795_392_001,
    genesis_message=b"Foundation Coin testnet",
    lottery=_lottery("exact-smollm2-135m", SMOLLM2_EXACT, 64, 20, (TESTNET_STEWARD,)),
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
    # The tiny synthetic model with 8 tokens a draw: ~20 ms to draw, ~8 ms to verify.
    lottery=_lottery("exact-tiny", TINY_EXACT, 8, 3, (REGTEST_STEWARD,)),
)

NETWORKS: dict[str, ChainParams] = {p.name: p for p in (MAINNET, TESTNET, REGTEST)}


def regtest_with(draws_per_block: int) -> ChainParams:
    """Regtest whose blocks need ``draws_per_block`` draws on average instead of one: a
    fixed target (no retargeting) for testing competing miners. Genesis is unchanged."""
    if draws_per_block < 1:
        raise ValueError("draws per block must be at least 1")
    if draws_per_block == 1:
        return REGTEST
    return replace(REGTEST, block_target=target_for_draws(draws_per_block))


def params_for(name: str) -> ChainParams:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}") from None
