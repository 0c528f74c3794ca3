"""Per-peer limits, seen caches, block locators and the header checks of headers-first
sync."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chain.block import Block
from chain.contextual import ParentInfo
from chain.params import REGTEST
from chain.producer import assemble_block
from node.core import NodeCore
from node.p2p import messages as m
from node.p2p.limits import BAN_THRESHOLD, Penalty, SeenCache, TokenBucket
from node.p2p.service import MAX_BANNED, P2PConfig, P2PService
from node.p2p.sync import BadHeaders, check_headers, locator_heights
from tests import exactwork
from tests.chainbuilder import PRODUCER
from tests.exactwork import sample


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.25  # 2.5 tokens back
    assert bucket.take(2) and not bucket.take(1)
    clock.now += 100  # never more than the burst
    assert bucket.take(5) and not bucket.take(0.5)


def test_the_seen_cache_forgets_the_least_recently_used() -> None:
    seen: SeenCache[int] = SeenCache(3)
    assert seen.add(1) and seen.add(2) and seen.add(3)
    assert not seen.add(1)  # known: refreshed, not added
    seen.add(4)  # evicts 2, the least recently used
    assert 2 not in seen and {1, 3, 4} <= {k for k in (1, 2, 3, 4) if k in seen}
    assert len(seen) == 3


def test_offences_that_no_honest_peer_commits_discourage_at_once() -> None:
    for penalty in (
        Penalty.MALFORMED_FRAME,
        Penalty.OVERSIZE_FRAME,
        Penalty.INVALID_BLOCK,
        Penalty.INVALID_HEADER,
        Penalty.UNREQUESTED_BLOCK,
    ):
        assert penalty.score >= BAN_THRESHOLD
    # Floods and racy offences take several strikes.
    assert Penalty.RATE_EXCEEDED.score * 10 == BAN_THRESHOLD
    assert Penalty.DISCONNECTED_HEADERS.score < BAN_THRESHOLD


@pytest.mark.parametrize(
    ("tip", "expected"),
    [
        (0, [0]),
        (5, [5, 4, 3, 2, 1, 0]),
        (20, [20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 9, 5, 0]),
    ],
)
def test_locators_are_dense_near_the_tip_then_exponential(tip: int, expected: list[int]) -> None:
    assert locator_heights(tip) == expected


def test_a_locator_of_any_chain_fits_the_message() -> None:
    heights = locator_heights(2**32 - 1)
    assert heights[:10] == list(range(2**32 - 1, 2**32 - 11, -1))
    assert heights[-1] == 0 and len(heights) <= m.MAX_LOCATOR
    assert heights == sorted(heights, reverse=True)


def chain_of(count: int) -> list[Block]:
    genesis = REGTEST.genesis
    parent = ParentInfo(genesis.hash, 0, genesis.header.time, genesis.header.time)
    blocks = []
    for _ in range(count):
        block = assemble_block(REGTEST, parent, PRODUCER, [], parent.time + 1, sampler=sample)
        blocks.append(block)
        parent = ParentInfo(block.hash, block.header.height, block.header.time, parent.time)
    return blocks


def test_linked_valid_headers_pass_and_give_their_hashes() -> None:
    blocks = chain_of(3)
    headers = [b.header for b in blocks]
    assert check_headers(headers, REGTEST.genesis_hash, 0, REGTEST) == [b.hash for b in blocks]


def test_headers_that_do_not_link_or_skip_heights_or_are_forged_fail() -> None:
    a, b, c = (blk.header for blk in chain_of(3))
    with pytest.raises(BadHeaders, match="header 1 does not link"):
        check_headers([a, c], REGTEST.genesis_hash, 0, REGTEST)
    with pytest.raises(BadHeaders, match="header 0 has height 1, expected 2"):
        check_headers([a], REGTEST.genesis_hash, 1, REGTEST)
    with pytest.raises(BadHeaders, match="header 1: bad-producer-sig"):
        check_headers([a, b._replace(producer_sig=bytes(64))], REGTEST.genesis_hash, 0, REGTEST)


def test_the_refusal_list_is_bounded(tmp_path: Path) -> None:
    core = NodeCore(tmp_path, REGTEST, lottery=exactwork.tiny_lottery())
    try:
        service = P2PService(core, P2PConfig(key_path=tmp_path / "p2p.key"))
        service.ban("first-to-end", 10)
        for n in range(MAX_BANNED):
            service.ban(f"peer-{n}", 3600)  # not running: nothing to disconnect
        banned = service.banned()
        assert len(banned) == MAX_BANNED
        assert "first-to-end" not in banned and "peer-0" in banned
        assert banned["peer-0"] > time.time() + 3500
        assert service.unban("peer-0") and not service.unban("peer-0")
    finally:
        core.close()
