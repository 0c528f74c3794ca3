"""Sync and relay against claimed work: a header's draw is checked cheaply on arrival and
re-executed (one model pass) only when its block connects, in NodeCore's worker thread.

These drive the real ``HeaderSync`` and ``Relay`` of a ``P2PService`` that is built but
not started (no libp2p host): a test puts a ``Peer`` in its table and answers the
service's two requests (``request_headers``, ``request_blocks``) from a list of blocks,
so everything from the headers reply to ``NodeCore.submit_blocks`` is the node's own
code. Chains are built by a source ``NodeCore`` whose lottery accepts any draw, so it can
hold a block whose draw is forged (one token changed, header signed again): at the
regtest target every draw meets the target, so such a header passes every cheap check
and only re-executing the draw (``bad-work``) finds it out.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from chain.block import Block, BlockHeader
from chain.errors import Reject
from chain.lottery import DrawTask, decode_tokens, encode_tokens
from chain.params import REGTEST, ChainParams
from chain.producer import assemble_block, sign_header
from node.core import NodeCore
from node.p2p import messages as m
from node.p2p import sync
from node.p2p.peers import RATES, Peer
from node.p2p.service import P2PConfig, P2PService
from tests import exactwork
from tests.chainbuilder import PRODUCER, key, secret_for

PEER = "12D3KooWAttacker"


# -- lotteries ---------------------------------------------------------------------------------
class Permissive:
    """Draws with the regtest model but takes any draw as valid: a node that stores
    (and would serve) blocks whose draws are forged."""

    def sample(self, tasks: Sequence[DrawTask]) -> list[bytes]:
        return exactwork.sample(tasks)

    def verify(self, task: DrawTask, tokens: bytes) -> bool:
        return True


class Counting:
    """The regtest lottery, counting (and timing) its model passes; ``delay`` makes each
    verify take that much longer, as a big model would."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.verifies: list[tuple[float, float]] = []  # (start, end), perf_counter
        self.threads: set[int] = set()

    def sample(self, tasks: Sequence[DrawTask]) -> list[bytes]:
        return exactwork.sample(tasks)

    def verify(self, task: DrawTask, tokens: bytes) -> bool:
        start = time.perf_counter()
        self.threads.add(threading.get_ident())
        if self.delay:
            time.sleep(self.delay)
        ok = exactwork.verify(task, tokens)
        self.verifies.append((start, time.perf_counter()))
        return ok


# -- chains ------------------------------------------------------------------------------------
def forge_work(block: Block, params: ChainParams = REGTEST) -> Block:
    """``block`` with one token of its draw changed and its header signed again: every
    cheap check still passes (at the regtest target every draw meets it)."""
    tokens = decode_tokens(block.header.work.tokens)
    tokens[0] = (tokens[0] + 1) % params.lottery.vocab
    return reheader(block, work=block.header.work._replace(tokens=encode_tokens(tokens)))


def reheader(block: Block, **fields: Any) -> Block:
    header = sign_header(block.header._replace(**fields), PRODUCER, REGTEST)
    return Block(header, block.transactions)


def next_block(core: NodeCore) -> Block:
    """A valid block on ``core``'s tip, not submitted."""
    cs = core.chainstate
    parent = cs.parent_info(cs.tip.hash)
    when = max(core.now(), parent.median_time_past + 1)
    return assemble_block(
        core.params,
        parent,
        PRODUCER,
        [],
        when,
        sampler=exactwork.sample,
        jobs=cs.jobs_for_child(),
    )


def active_blocks(core: NodeCore) -> list[Block]:
    cs = core.chainstate
    blocks = [cs.get_block(h) for h in cs.active[1:]]
    assert all(b is not None for b in blocks)
    return blocks  # type: ignore[return-value]


async def build_chain(
    root: Path, length: int, forged_at: int | None = None, pay_to: bytes | None = None
) -> list[Block]:
    """``length`` blocks on genesis (heights 1..length); the one at ``forged_at`` has a
    forged draw, and the blocks after it build on it."""
    root.mkdir(parents=True, exist_ok=True)
    source = NodeCore(root, REGTEST, lottery=Permissive())
    try:
        for height in range(1, length + 1):
            if height == forged_at:
                outcome = await source.submit_block(forge_work(next_block(source)))
                assert outcome.accepted
            else:
                await source.generate(1, PRODUCER, pay_to=pay_to)
        return active_blocks(source)
    finally:
        source.close()


class Served:
    """What a peer serves: the headers and blocks of ``blocks`` (heights 1..n on genesis),
    headers at most ``m.MAX_HEADERS`` a reply (read at each request, so a test can shrink
    it). ``block_delay``/``header_delay`` stand for the network; ``hold_blocks`` never
    answers a block request."""

    def __init__(self, blocks: Sequence[Block]) -> None:
        self.blocks = list(blocks)
        self.by_hash = {b.hash: b for b in self.blocks}
        self.position = {REGTEST.genesis_hash: 0} | {b.hash: i + 1 for i, b in enumerate(blocks)}
        self.header_requests: list[float] = []  # perf_counter of each request
        self.block_requests: list[float] = []
        self.blocks_asked = 0
        self.header_delay = 0.0
        self.block_delay = 0.0
        self.hold_blocks = False

    async def headers(self, peer: Peer, locator: tuple[bytes, ...]) -> list[BlockHeader]:
        self.header_requests.append(time.perf_counter())
        await trio.sleep(self.header_delay)
        start = next((self.position[h] for h in locator if h in self.position), 0)
        return [b.header for b in self.blocks[start : start + m.MAX_HEADERS]]

    async def bodies(self, peer: Peer, hashes: list[bytes]) -> list[Block | None]:
        self.block_requests.append(time.perf_counter())
        self.blocks_asked += len(hashes)
        if self.hold_blocks:
            await trio.sleep_forever()
        await trio.sleep(self.block_delay)
        return [self.by_hash.get(h) for h in hashes]


# -- the node under test -----------------------------------------------------------------------
class Victim:
    """A NodeCore and an unstarted P2PService around it."""

    def __init__(self, root: Path, lottery: Any, params: ChainParams = REGTEST) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.lottery = lottery
        self.core = NodeCore(root, params, lottery=lottery)
        self.service = P2PService(self.core, P2PConfig(key_path=root / "p2p.key"))

    def close(self) -> None:
        self.core.close()

    @property
    def cs(self) -> Any:
        return self.core.chainstate

    def add_peer(
        self, served: Served, peer_id: str = PEER, claim: tuple[bytes, int, int] | None = None
    ) -> Peer:
        """A handshaken peer serving ``served``, claiming its last block (or ``claim``)."""
        if claim is None:
            last = served.blocks[-1]
            claim = (last.hash, last.header.height, 10**9)
        peer = Peer(peer_id, "", False, m.PROTOCOL_VERSION, "test", *claim)
        self.service._peers[peer_id] = peer
        self.service.request_headers = served.headers  # type: ignore[method-assign]
        self.service.request_blocks = served.bodies  # type: ignore[method-assign]
        return peer

    async def run_sync(self, until: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Run the service's HeaderSync until ``until()`` holds, then stop it."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.service.sync.run)
            await wait_for(until, what, timeout)
            nursery.cancel_scope.cancel()


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    with trio.move_on_after(timeout):
        while not condition():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def run(test: Callable[[], Awaitable[None]]) -> None:
    trio.run(test)


# -- sync: a block whose draw is forged ----------------------------------------------------------
def test_a_synced_block_failing_bad_work_bans_the_peer_and_drops_its_headers(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        chain = await build_chain(tmp_path / "source", 5, forged_at=3)
        victim = Victim(tmp_path / "victim", Counting())
        try:
            served = Served(chain)
            victim.add_peer(served)
            svc = victim.service
            await victim.run_sync(
                lambda: svc.is_banned(PEER) and not svc.sync.running, "the peer to be banned"
            )
            # Blocks 1 and 2 connected; block 3 failed when its draw was re-executed.
            assert victim.cs.tip.hash == chain[1].hash
            assert victim.cs.index[chain[2].hash].failed
            assert victim.core.stats.rejects == {"bad-work": 1}
            # One model pass per block connected or tried: none for 4 and 5.
            assert len(victim.lottery.verifies) == 3
            assert chain[3].hash not in victim.cs.index
            assert chain[4].hash not in victim.cs.index
            # Banned, not merely scored: refused, gone from the table, counted.
            assert svc.peer(PEER) is None
            assert PEER in svc.banned()
            assert svc.stats.discouragements == 1
            assert svc.stats.work_bans == {"bad-work": 1}
            assert svc.stats.invalid_messages["invalid-block"] == 1
            # Its pending headers went with the round: nothing claims heights 3..5.
            state = svc.sync_state()
            assert not state.running
            assert state.header_height == 2
            assert state.best_peer_height == 0
            assert (state.blocks_in_flight, state.blocks_waiting) == (0, 0)
        finally:
            victim.close()

    run(main)


@pytest.mark.parametrize(
    ("code", "change"),
    [
        # A target no grinding meets: the lottery hash is checked against it.
        (Reject.BAD_WORK_POW, {"target": 1}),
        # One token short of the network's draw length.
        (Reject.BAD_WORK_SHAPE, {"tokens": -1}),
    ],
)
def test_a_header_failing_the_cheap_draw_checks_costs_no_body_and_no_model_pass(
    tmp_path: Path, code: Reject, change: dict[str, int]
) -> None:
    async def main() -> None:
        chain = await build_chain(tmp_path / "source", 3)
        bad = chain[1]
        if "target" in change:
            bad = reheader(bad, target=change["target"])
        else:
            work = bad.header.work
            bad = reheader(bad, work=work._replace(tokens=work.tokens[:-4]))
        victim = Victim(tmp_path / "victim", Counting())
        try:
            served = Served([chain[0], bad])
            victim.add_peer(served)
            svc = victim.service
            await victim.run_sync(lambda: svc.is_banned(PEER), "the peer to be banned")
            assert svc.stats.work_bans == {code.value: 1}
            assert svc.stats.invalid_messages["invalid-header"] == 1
            # The whole reply was refused before any body was asked for.
            assert served.blocks_asked == 0
            assert victim.lottery.verifies == []
            assert victim.cs.height == 0
            assert svc.sync_state().header_height == 0
        finally:
            victim.close()

    run(main)


# -- sync: bounds and pipelining --------------------------------------------------------------
def test_a_peer_that_only_claims_more_work_gets_no_block_fetched(tmp_path: Path) -> None:
    async def main() -> None:
        theirs = await build_chain(tmp_path / "source", 2)
        victim = Victim(tmp_path / "victim", Counting())
        try:
            await victim.core.generate(3, PRODUCER, pay_to=key(secret_for("victim")))
            ours = victim.cs.tip.chain_work
            served = Served(theirs)
            # Its hello claims far more work than its headers show (2 blocks to our 3).
            peer = victim.add_peer(served, claim=(theirs[-1].hash, 2, 10**9))
            await victim.run_sync(lambda: peer.best_work <= ours, "the hollow claim to be lowered")
            assert served.header_requests and served.blocks_asked == 0
            assert all(b.hash not in victim.cs.index for b in theirs)
            assert not victim.service.is_banned(PEER)  # a hollow claim is not an offence
        finally:
            victim.close()

    run(main)


@pytest.fixture
def small_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookahead of 4 headers, 3 a reply, at most 7 unverified: short chains reach them."""
    monkeypatch.setattr(sync, "LOOKAHEAD", 4)
    monkeypatch.setattr(m, "MAX_HEADERS", 3)
    monkeypatch.setattr(sync, "MAX_UNVERIFIED_HEADERS", 7)


def test_unverified_headers_of_a_peer_are_bounded(tmp_path: Path, small_bounds: None) -> None:
    # The bound is exceeded by a short chain: 4 pending + one reply of 3.

    async def main() -> None:
        chain = await build_chain(tmp_path / "source", 20)
        victim = Victim(tmp_path / "victim", Counting())
        try:
            served = Served(chain)
            served.hold_blocks = True  # never answers: no block ever connects
            victim.add_peer(served)
            svc = victim.service
            seen: list[int] = []

            async def watch() -> None:
                while True:
                    seen.append(svc.sync_state().header_height - victim.cs.height)
                    await trio.sleep(0.005)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(svc.sync.run)
                nursery.start_soon(watch)
                await wait_for(lambda: len(served.header_requests) >= 2, "two header replies")
                await trio.sleep(1.5)  # time enough to ask for more, were it allowed
                nursery.cancel_scope.cancel()
            assert max(seen) == 6  # two replies of 3, then it waits for blocks
            assert len(served.header_requests) == 2
            assert max(seen) <= sync.MAX_UNVERIFIED_HEADERS
        finally:
            victim.close()

    run(main)


def test_download_and_headers_go_on_while_blocks_are_re_executed_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync, "BATCH", 1)  # one block a request: requests spread in time
    monkeypatch.setattr(m, "MAX_HEADERS", 2)  # several header replies

    async def main() -> None:
        chain = await build_chain(tmp_path / "source", 8)
        lottery = Counting(delay=0.3)  # a model pass of 0.3 s
        victim = Victim(tmp_path / "victim", lottery)
        try:
            served = Served(chain)
            served.header_delay = 0.1
            served.block_delay = 0.05
            victim.add_peer(served)
            loop_thread = threading.get_ident()
            gaps: list[float] = []

            async def ticker() -> None:
                last = time.perf_counter()
                while True:
                    await trio.sleep(0.01)
                    now = time.perf_counter()
                    gaps.append(now - last)
                    last = now

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ticker)
                await victim.run_sync(lambda: victim.cs.height == 8, "the chain to sync")
                nursery.cancel_scope.cancel()

            # Every draw was re-executed, never on the event loop's thread.
            assert len(lottery.verifies) == 8
            assert loop_thread not in lottery.threads
            assert max(gaps) < 0.25  # the loop never waited out a model pass
            # Headers and blocks were fetched while a block was being re-executed.

            def during_a_pass(moments: list[float]) -> bool:
                return any(s < t < e for t in moments for s, e in lottery.verifies)

            assert during_a_pass(served.header_requests)
            assert during_a_pass(served.block_requests)
            # Runs were sized to the measured pass time: one block a trip here.
            assert victim.service.sync.seconds_per_block > 0.2
        finally:
            victim.close()

    run(main)


# -- sync: assume-valid --------------------------------------------------------------------------
def test_sync_finds_a_deep_assume_valid_block_before_fetching_any_block(
    tmp_path: Path, small_bounds: None
) -> None:
    # With small bounds the round alone would see block 10 only after submitting (and
    # re-executing) the blocks far below it.

    async def main() -> None:
        chain = await build_chain(tmp_path / "source", 12)
        params = dataclasses.replace(REGTEST, assume_valid=chain[9].hash)
        victim = Victim(tmp_path / "victim", Counting(), params)
        try:
            served = Served(chain)
            victim.add_peer(served)
            await victim.run_sync(lambda: victim.cs.height == 12, "the chain to sync")
            assert victim.cs.assumed_valid == {b.hash for b in chain[:10]}
            assert len(victim.lottery.verifies) == 2  # blocks 11 and 12 only
            # The scan came first: 4 header replies (3 + 3 + 3 + 3), then the round's.
            assert served.block_requests[0] > served.header_requests[3]
        finally:
            victim.close()

    run(main)


def test_a_peer_without_the_assume_valid_block_is_synced_in_full_and_scanned_once(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        chain = await build_chain(tmp_path / "source", 6)
        params = dataclasses.replace(REGTEST, assume_valid=bytes(31) + b"\x01")
        victim = Victim(tmp_path / "victim", Counting(), params)
        try:
            served = Served(chain[:3])
            victim.add_peer(served)
            await victim.run_sync(lambda: victim.cs.height == 3, "the first part to sync")
            assert len(victim.lottery.verifies) == 3  # every draw re-executed
            assert PEER in victim.service.sync.lacks_assume_valid
            assert len(served.header_requests) == 2  # one to scan, one for the round
            # The peer's chain grows; the same peer is not scanned again.
            served = Served(chain)
            victim.add_peer(served)
            await victim.run_sync(lambda: victim.cs.height == 6, "the rest to sync")
            assert len(victim.lottery.verifies) == 6
            assert len(served.header_requests) == 1
        finally:
            victim.close()

    run(main)


# -- relay ---------------------------------------------------------------------------------------
def test_a_relayed_block_failing_bad_work_bans_its_sender_and_drops_its_orphans(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        chain = await build_chain(tmp_path / "source", 5, forged_at=3)
        victim = Victim(tmp_path / "victim", Counting())
        try:
            svc, relay = victim.service, victim.service.relay
            victim.add_peer(Served(chain))
            outcomes = await victim.core.submit_blocks(chain[:2])
            assert [o.accepted for o in outcomes] == [True, True]
            await relay.submit_block(chain[4], PEER)  # parent unknown: kept as an orphan
            assert chain[4].hash in relay._orphans
            await relay.submit_block(chain[2], PEER)  # the forged draw
            assert svc.is_banned(PEER) and svc.peer(PEER) is None
            assert svc.stats.work_bans == {"bad-work": 1}
            assert relay._orphans == {}
            assert victim.cs.tip.hash == chain[1].hash
            # What it sends later is not even submitted.
            await relay.submit_block(chain[3], PEER)
            assert chain[3].hash not in victim.cs.index
            assert len(victim.lottery.verifies) == 3
        finally:
            victim.close()

    run(main)


def test_relay_submits_no_block_that_would_not_become_the_tip(tmp_path: Path) -> None:
    async def main() -> None:
        theirs = await build_chain(tmp_path / "source", 2)
        victim = Victim(tmp_path / "victim", Counting())
        try:
            await victim.core.generate(2, PRODUCER, pay_to=key(secret_for("victim")))
            before = len(victim.lottery.verifies)
            await victim.service.relay.submit_block(theirs[0], PEER)  # equal work at best
            assert theirs[0].hash not in victim.cs.index  # not stored unverified
            assert victim.service.stats.dropped["low-work-blocks"] == 1
            assert len(victim.lottery.verifies) == before
        finally:
            victim.close()

    run(main)


def test_an_announced_header_failing_a_draw_check_bans_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        chain = await build_chain(tmp_path / "source", 1)
        victim = Victim(tmp_path / "victim", Counting())
        try:
            sender = ID.from_pubkey(create_new_key_pair().public_key)
            victim.add_peer(Served(chain), peer_id=sender.to_string())
            bad = reheader(chain[0], target=1)
            msg = rpc_pb2.Message(from_id=sender.to_bytes(), data=m.encode_announcement(bad))
            assert victim.service.relay._check_announcement(sender, msg) is False
            assert victim.service.is_banned(sender.to_string())
            assert victim.service.peer(sender.to_string()) is None
            assert victim.service.stats.work_bans == {"bad-work-pow": 1}
        finally:
            victim.close()

    run(main)


def test_a_joining_peer_is_replayed_only_our_newest_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """py-libp2p replays a topic's whole cache window to a peer that subscribes: under
    load that passed the receiver's burst and got honest nodes discouraged on joining."""
    from libp2p.pubsub.gossipsub import PROTOCOL_ID_V12

    from node.p2p import relay

    monkeypatch.setattr(relay, "env_to_send_in_RPC", lambda host: (b"", False))
    router = relay._AnnounceOnly(
        protocols=[PROTOCOL_ID_V12], degree=6, degree_low=4, degree_high=12
    )
    me = ID.from_pubkey(create_new_key_pair().public_key)
    for seqno in range(50):  # three heartbeats' worth, and more
        if seqno % 20 == 19:
            router.mcache.shift()
        router.mcache.put(
            rpc_pb2.Message(
                from_id=me.to_bytes(),
                seqno=seqno.to_bytes(8, "big"),
                topicIDs=["blocks"],
                data=bytes([seqno]),
            )
        )
    sent: list[int] = []

    class FakePubsub:
        def __init__(self) -> None:
            self.host = None
            self.peers = {me: "stream"}

        async def write_msg(self, stream: str, rpc: rpc_pb2.RPC) -> None:
            sent.extend(msg.data[0] for msg in rpc.publish)

    router.pubsub = FakePubsub()  # type: ignore[assignment]
    trio.run(router.send_recent_messages, me, "blocks")
    assert sent == list(range(50 - relay.REPLAY_ON_JOIN, 50))  # the newest, oldest first
    bursts = min(RATES["announce"].burst, RATES["txbatch"].burst)
    assert bursts >= 2 * relay.REPLAY_ON_JOIN  # room for live messages besides
