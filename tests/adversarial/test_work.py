"""Forged and misplaced work (specs/pob.md §3, specs/consensus.md §4.3 and §5.10).

Every block here is handed to the node the way a peer's block arrives and breaks the
lottery in exactly one way; the test asserts the exact code and that the node did not
change. The cheap rules (``bad-work-shape``, ``bad-work-pow``) turn a block away before
it is stored; ``bad-work`` is found when the block connects, by re-executing the draw
with the regtest model, and leaves the block stored, marked failed, and nothing else.

On plain regtest every draw meets the target, so a forged draw passes ``bad-work-pow``
there and only re-execution can catch it: that is the point of most tests below. Where the
target matters, the node runs ``regtest_with(N)``, a fixed target N draws hard.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.block import Block, Work
from chain.checks import check_header, header_seed
from chain.errors import InvalidBlock, Reject
from chain.lottery import (
    MAX_WORK_TOKENS,
    TOKEN_BYTES,
    DrawTask,
    active_jobs,
    choose_prompt,
    encode_tokens,
    pow_value,
)
from chain.params import REGTEST, TESTNET, ChainParams, regtest_with
from chain.producer import make_coinbase, search_work, sign_header, unsigned_header
from chain.schnorr import pubkey_of
from tests import exactwork
from tests.chainbuilder import (
    PRODUCER,
    Node,
    reject,
    reject_on_connect,
    resign,
    secret_for,
)

MALLORY = secret_for("mallory")


def redraw(node: Node, block: Block, params: ChainParams | None = None) -> Block:
    """``block`` with a fresh winning draw for its header as it stands (fields changed by
    a test), signed by the block's producer, as an honest miner of that header would."""
    params = params or node.params
    unsigned = block.header._replace(work=block.header.work._replace(counter=0, tokens=b""))
    jobs = node.cs.jobs_for_child()
    for start in range(0, 10_000, 8):
        won = search_work(params, unsigned, jobs, exactwork.sample, range(start, start + 8))
        if won is not None:
            return Block(sign_header(won, PRODUCER, params), block.transactions)
    raise AssertionError("no winning draw")


def with_work(block: Block, secret: bytes = PRODUCER, **changes: object) -> Block:
    """``block`` whose work fields have ``changes``, re-signed by ``secret``."""
    work = block.header.work._replace(**changes)  # type: ignore[arg-type]
    return Block(resign(block.header, secret, work=work), block.transactions)


def test_an_honest_draw_connects_and_its_answer_is_the_models(node: Node) -> None:
    block = node.build()
    seed = header_seed(block.header, REGTEST)
    job, index = choose_prompt(seed, active_jobs(node.cs.jobs_for_child(), block.header.height))
    lottery = exactwork.tiny_lottery()
    # The tokens are the model's draw for that prompt and seed, and nothing else is.
    task = DrawTask(job, index, seed)
    assert exactwork.sample([task]) == [block.header.work.tokens]
    assert lottery.prompt_text(task) in lottery._standing
    node.submit(block)
    assert node.tip_hash == block.hash


def test_one_token_changed_is_bad_work(node: Node) -> None:
    block = node.build()
    tokens = bytearray(block.header.work.tokens)
    tokens[-1] ^= 1  # the last token id + or - 1: still in the vocabulary
    forged = with_work(block, tokens=bytes(tokens))
    check_header(forged.header, REGTEST)  # shape, hash and signature all pass
    reject_on_connect(node, forged, Reject.BAD_WORK)


def test_tokens_from_another_seed_are_bad_work(node: Node) -> None:
    block = node.build()
    other = with_work(block, counter=block.header.work.counter + 1)  # another seed, same tokens
    assert header_seed(other.header, REGTEST) != header_seed(block.header, REGTEST)
    reject_on_connect(node, other, Reject.BAD_WORK)


def test_a_counter_reused_with_other_transactions_is_bad_work(node: Node) -> None:
    """The seed covers the Merkle root: a winning draw cannot carry other transactions."""
    block = node.build()
    coinbase = make_coinbase(block.header.height, REGTEST, pubkey_of(MALLORY), 0, b"other")
    from tests.chainbuilder import with_transactions

    moved = with_transactions(block, [coinbase])  # same work, new Merkle root, re-signed
    assert moved.header.work == block.header.work
    reject_on_connect(node, moved, Reject.BAD_WORK)
    # The same contents with a draw of their own are fine.
    node.submit(redraw(node, moved))


def test_a_draw_resigned_by_another_key_is_bad_work(node: Node) -> None:
    """The seed covers the worker key: stealing a draw and signing it is worthless."""
    block = node.build()
    stolen = with_work(block, secret=MALLORY, worker_key=pubkey_of(MALLORY))
    check_header(stolen.header, REGTEST)
    reject_on_connect(node, stolen, Reject.BAD_WORK)


def test_a_draw_moved_to_a_newer_parent_is_bad_work(node: Node) -> None:
    """A draw made on the old tip is worthless once the tip has moved (stale parent)."""
    stale = node.build()
    newer = node.mine(1)[0]
    moved = Block(
        resign(stale.header, prev_hash=newer.hash, height=newer.header.height + 1),
        stale.transactions,
    )
    reject_on_connect(node, moved, Reject.BAD_WORK)


def test_a_draw_for_another_network_is_bad_work(node: Node) -> None:
    """The seed covers the network magic: a draw made for testnet's magic (then signed
    for regtest) is not a regtest draw."""
    other_net = dataclasses.replace(REGTEST, magic=TESTNET.magic)
    block = node.build()
    foreign = redraw(node, block, other_net)
    resigned = Block(resign(foreign.header), foreign.transactions)
    reject_on_connect(node, resigned, Reject.BAD_WORK)


def test_short_long_and_out_of_vocabulary_tokens_are_bad_work_shape(node: Node) -> None:
    block = node.build()
    tokens = block.header.work.tokens
    for forged_tokens in (
        tokens[:-TOKEN_BYTES],  # one token short
        tokens + tokens[:TOKEN_BYTES],  # one token too many
        tokens[:-1],  # not a whole number of tokens
        tokens[:-TOKEN_BYTES] + REGTEST.lottery.vocab.to_bytes(TOKEN_BYTES, "big"),
        b"",
    ):
        reject(node, with_work(block, tokens=forged_tokens), InvalidBlock, Reject.BAD_WORK_SHAPE)


def test_more_tokens_than_any_network_allows_do_not_decode(node: Node) -> None:
    from chain.errors import DecodeError

    block = node.build()
    huge = with_work(block, tokens=encode_tokens([1] * (MAX_WORK_TOKENS + 1)))
    reject(node, huge.encoded, DecodeError, Reject.DECODE_MALFORMED, block_hash=huge.hash)


@pytest.fixture
def hard(tmp_path: Path) -> Iterator[Node]:
    """A fresh regtest chain whose blocks need 64 draws on average."""
    n = Node(tmp_path / "hard", regtest_with(64))
    yield n
    n.close()


def test_a_draw_that_misses_the_target_is_bad_work_pow(hard: Node) -> None:
    params = hard.params
    parent = hard.cs.parent_info(hard.tip_hash)
    coinbase = make_coinbase(1, params, pubkey_of(PRODUCER), 0)
    unsigned = unsigned_header(params, parent, pubkey_of(PRODUCER), [coinbase], parent.time + 1)
    # Find an honest draw that loses: the model ran, but the draw does not win.
    for counter in range(100):
        header = unsigned._replace(work=Work(unsigned.work.worker_key, counter, b""))
        seed = header_seed(header, params)
        job, index = choose_prompt(seed, [params.lottery.standing_job])
        (tokens,) = exactwork.sample([DrawTask(job, index, seed)])
        if pow_value(seed, tokens) > header.target:
            break
    losing = Block(
        sign_header(header._replace(work=header.work._replace(tokens=tokens)), PRODUCER, params),
        (coinbase,),
    )
    reject(hard, losing, InvalidBlock, Reject.BAD_WORK_POW)


def test_a_forged_out_that_meets_the_target_without_the_model_is_bad_work(hard: Node) -> None:
    """Grinding token strings until the hash wins costs only hashes; it passes the cheap
    rules and then fails re-execution."""
    params = hard.params
    parent = hard.cs.parent_info(hard.tip_hash)
    coinbase = make_coinbase(1, params, pubkey_of(PRODUCER), 0)
    header = unsigned_header(params, parent, pubkey_of(PRODUCER), [coinbase], parent.time + 1)
    seed = header_seed(header, params)
    for n in range(100_000):
        digest = hashlib.sha256(n.to_bytes(8, "big")).digest()
        forged = encode_tokens(
            [int.from_bytes(digest[i : i + 2], "big") % 1000 for i in range(0, 16, 2)]
        )
        if pow_value(seed, forged) <= header.target:
            break
    block = Block(
        sign_header(header._replace(work=header.work._replace(tokens=forged)), PRODUCER, params),
        (coinbase,),
    )
    check_header(block.header, params)  # the cheap rules cannot tell
    reject_on_connect(hard, block, Reject.BAD_WORK)
    # An honest block at that target connects.
    honest = hard.build()
    hard.submit(honest)
    assert hard.tip_hash == honest.hash
