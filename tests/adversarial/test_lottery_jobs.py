"""Lottery jobs: stewards admit prompt sets with a signed job-submit (specs/pob.md §4,
specs/consensus.md §3.7).

A job-submit that breaks a rule makes its block fail on connect with the exact code and
changes nothing else; one that passes admits the job, which the lottery may draw from
only ``activation_delay`` blocks later (so a miner cannot add a set that favours it and
draw from it at once). Disconnecting the block removes the job again; the mempool holds
one submit per job and none for a job already admitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from chain.block import Block
from chain.checks import header_seed
from chain.errors import InvalidTransaction, Reject
from chain.jobs import JobSpec
from chain.lottery import (
    MAX_PROMPT_BYTES,
    DrawTask,
    LotteryJob,
    active_jobs,
    choose_prompt,
    prompts_root,
    steward_message,
)
from chain.mempool import Mempool
from chain.params import REGTEST, steward_secret
from chain.policy import PolicyError
from chain.producer import search_work, sign_header, unsigned_header
from chain.schnorr import pubkey_of, sign
from chain.transaction import TxKind, TxOut
from tests import exactwork
from tests.chainbuilder import (
    ALICE,
    PRODUCER,
    BaseChain,
    Node,
    key,
    pay,
    reject_on_connect,
    secret_for,
)

STEWARD = steward_secret("regtest")
PROMPTS = (
    "Which driver mutations are most common in pancreatic ductal adenocarcinoma?",
    "How does tumour mutational burden relate to response to checkpoint inhibitors?",
    "What is the role of BRCA2 in homologous recombination repair?",
)
DELAY = REGTEST.lottery.activation_delay


def job_spec(prompts: Sequence[str], **changes: Any) -> JobSpec:
    spec = REGTEST.lottery.job_spec(prompts_root(prompts), len(prompts))
    return JobSpec(**{**spec.__dict__, **changes})


def job_submit(
    base: BaseChain,
    prompts: Sequence[str] = PROMPTS,
    *,
    spec: JobSpec | None = None,
    coin: int = 0,
    signer: bytes = STEWARD,
    steward: bytes | None = None,
    spec_bytes: bytes | None = None,
    fee: int = 10_000,
) -> Any:
    """A signed job-submit spending one of ALICE's coins (``coin``) into change."""
    spec = spec or job_spec(prompts)
    signature = sign(signer, steward_message(REGTEST.magic, spec.job_id))
    payload = [
        spec_bytes if spec_bytes is not None else spec.encoded,
        list(prompts),
        steward if steward is not None else pubkey_of(signer),
        signature,
    ]
    coins = [base.alice[coin]]
    change = [TxOut(coins[0].amount - fee, key(ALICE))]
    return pay(coins, change, kind=TxKind.JOB_SUBMIT, payload=payload)


def test_a_steward_admits_a_job_drawable_after_the_delay(node: Node, base: BaseChain) -> None:
    tx = job_submit(base)
    (block,) = node.mine(1, [tx])
    height = block.header.height
    job_id = job_spec(PROMPTS).job_id
    job = node.cs.lottery_jobs[job_id]
    assert (job.confirmed_height, job.active_from, job.prompts) == (height, height + DELAY, PROMPTS)
    jobs = node.cs.jobs_for_child()
    for h in range(height + 1, height + DELAY):
        assert [j.job_id for j in active_jobs(jobs, h)] == [REGTEST.lottery.standing_job.job_id]
    assert [j.job_id for j in active_jobs(jobs, height + DELAY)][-1] == job_id
    # Restart: the job is read back from the database.
    node.reopen()
    assert node.cs.lottery_jobs[job_id] == job
    # Mine to activation, then a block whose draw lands on the new job connects.
    node.mine(DELAY - 1)
    assert node.cs.height + 1 == height + DELAY
    block = draw_on_job(node, job_id)
    node.submit(block)
    assert node.tip_hash == block.hash


def draw_on_job(node: Node, job_id: bytes, jobs: list[LotteryJob] | None = None) -> Block:
    """A block on the tip whose (winning, regtest) draw picks a prompt of ``job_id`` when
    drawn over ``jobs`` (default: the node's own view of the lottery)."""
    jobs = jobs if jobs is not None else node.cs.jobs_for_child()
    parent = node.cs.parent_info(node.tip_hash)
    coinbase = node.coinbase()
    unsigned = unsigned_header(node.params, parent, key(PRODUCER), [coinbase], parent.time + 200)
    live = active_jobs(jobs, unsigned.height)
    for counter in range(200):
        header = unsigned._replace(work=unsigned.work._replace(counter=counter))
        job, _ = choose_prompt(header_seed(header, node.params), live)
        if job.job_id == job_id:
            won = search_work(
                node.params, header, jobs, exactwork.sample, range(counter, counter + 1)
            )
            assert won is not None  # regtest: every draw wins
            return Block(sign_header(won, PRODUCER, node.params), (coinbase,))
    raise AssertionError("no counter picked the job")


def test_a_draw_from_a_job_not_yet_active_is_bad_work(node: Node, base: BaseChain) -> None:
    """A miner who draws from its own fresh prompt set before the delay is refused."""
    node.mine(1, [job_submit(base)])
    job_id = job_spec(PROMPTS).job_id
    early = [j._replace(active_from=0) for j in node.cs.jobs_for_child()]
    block = draw_on_job(node, job_id, early)
    reject_on_connect(node, block, Reject.BAD_WORK)


def test_disconnecting_the_block_removes_the_job(node: Node, base: BaseChain) -> None:
    fork_point = node.tip_hash
    node.mine(1, [job_submit(base)])
    job_id = job_spec(PROMPTS).job_id
    assert job_id in node.cs.known_job_ids()
    # A longer branch without the job-submit from the fork point wins.
    first = node.build(parent=fork_point)
    node.submit(first)
    second = node.build(parent=first.hash)
    node.submit(second)
    assert node.tip_hash == second.hash
    assert job_id not in node.cs.lottery_jobs
    assert job_id not in node.cs.known_job_ids()
    node.reopen()
    assert job_id not in node.cs.lottery_jobs


def _bad(node: Node, tx: Any, code: Reject) -> None:
    block = node.build([tx])
    reject_on_connect(node, block, code)


def test_a_key_that_is_not_a_steward_is_refused(node: Node, base: BaseChain) -> None:
    _bad(node, job_submit(base, signer=secret_for("mallory")), Reject.JOB_STEWARD)


def test_a_bad_steward_signature_is_refused(node: Node, base: BaseChain) -> None:
    # The steward's key, but a signature by someone else.
    tx = job_submit(base, signer=secret_for("mallory"), steward=pubkey_of(STEWARD))
    _bad(node, tx, Reject.JOB_STEWARD)


def test_a_job_of_another_shape_is_refused(node: Node, base: BaseChain) -> None:
    """Every lottery draw on a network must cost the same: the network's model, length
    and temperature, nothing else."""
    spec = job_spec(PROMPTS)
    longer = job_spec(PROMPTS, params={**spec.params, "max_new_tokens": 64})
    _bad(node, job_submit(base, spec=longer), Reject.JOB_LOTTERY)


def test_prompts_that_do_not_hash_to_the_root_are_refused(node: Node, base: BaseChain) -> None:
    spec = job_spec(PROMPTS)
    tx = job_submit(base, [*PROMPTS[:2], PROMPTS[2] + "?"], spec=spec)
    _bad(node, tx, Reject.JOB_PROMPTS)


def test_a_duplicate_prompt_is_refused(node: Node, base: BaseChain) -> None:
    prompts = (*PROMPTS, PROMPTS[0])
    _bad(node, job_submit(base, prompts), Reject.JOB_PROMPTS)


def test_a_prompt_over_the_byte_bound_is_refused(node: Node, base: BaseChain) -> None:
    """400 characters but more than 400 UTF-8 bytes (a prompt's tokens are bounded by its
    bytes)."""
    long_prompt = "é" * (MAX_PROMPT_BYTES // 2 + 1)
    assert len(long_prompt) <= MAX_PROMPT_BYTES < len(long_prompt.encode())
    _bad(node, job_submit(base, (*PROMPTS, long_prompt)), Reject.JOB_PROMPTS)


def test_a_malformed_spec_is_refused(node: Node, base: BaseChain) -> None:
    _bad(node, job_submit(base, spec_bytes=b"\x93\x01\x02\x03"), Reject.JOB_SPEC)


def test_the_same_job_twice_is_refused(node: Node, base: BaseChain) -> None:
    first, again = job_submit(base, coin=0), job_submit(base, coin=1)
    block = node.build([first, again])
    reject_on_connect(node, block, Reject.JOB_DUPLICATE)
    node.mine(1, [first])
    _bad(node, again, Reject.JOB_DUPLICATE)


def test_the_standing_job_cannot_be_submitted_again(node: Node, base: BaseChain) -> None:
    lottery = exactwork.tiny_lottery()
    standing = lottery._standing
    tx = job_submit(base, standing, spec=REGTEST.lottery.standing_job.spec)
    # 320 prompts fit one transaction; the id is the standing job's.
    _bad(node, tx, Reject.JOB_DUPLICATE)


def test_the_mempool_holds_one_submit_per_job(node: Node, base: BaseChain) -> None:
    pool = Mempool(node.cs, REGTEST)
    now = node.now
    first = job_submit(base, coin=0)
    pool.accept(first, now)
    with pytest.raises(PolicyError) as info:
        pool.accept(job_submit(base, coin=1), now)
    assert info.value.code == Reject.POLICY_JOB_DUPLICATE
    with pytest.raises(InvalidTransaction) as bad:
        pool.accept(job_submit(base, coin=2, signer=secret_for("mallory")), now)
    assert bad.value.code == Reject.JOB_STEWARD
    # Once another submit of the job confirms, the pooled one goes, and no new one enters.
    (block,) = node.mine(1, [job_submit(base, coin=3)])
    pool.remove_for_block(block, now)
    assert first.txid not in {e.txid for e in pool.entries()}
    with pytest.raises(PolicyError) as admitted:
        pool.accept(job_submit(base, coin=4), now)
    assert admitted.value.code == Reject.POLICY_JOB_DUPLICATE


def test_the_lottery_task_names_the_prompt_text(node: Node, base: BaseChain) -> None:
    """The useful output: the node can say which question a draw answered."""
    node.mine(1, [job_submit(base)])
    node.mine(DELAY - 1)
    job_id = job_spec(PROMPTS).job_id
    block = draw_on_job(node, job_id)
    seed = header_seed(block.header, REGTEST)
    job, index = choose_prompt(seed, active_jobs(node.cs.jobs_for_child(), block.header.height))
    assert exactwork.tiny_lottery().prompt_text(DrawTask(job, index, seed)) == PROMPTS[index]
