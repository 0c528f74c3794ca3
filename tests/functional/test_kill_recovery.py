"""SIGKILL the chainstate at random moments; every reopened database must be whole.

The parent builds ~240 blocks once: a 104-block prefix, then branches fed in an order
that forces reorganisations (depths 20, 25, 40 and a failed one into an invalid branch),
all carrying transfers. A child process (``chainfeed.py``) opens the chainstate in one
directory and feeds the blocks; the parent kills it after a seeded random delay, reopens
the directory itself and checks it, then starts the next child on the same directory,
which finishes the interrupted activation and feeds on. The builder re-executes every
block's draw with the regtest model once; the children check each draw against those
verdicts (``chainfeed.RecordedVerdicts``) instead of each loading the model. Each check
demands:

* the database opens (LevelDB recovers its log; the chainstate loads its index);
* the tip is a block of the fed sequence, and the coin set is exactly that block's:
  its UTXO commitment equals the reference computed for that very block by replaying
  the feed over ``MemoryCoins`` with ``connect_block``/``disconnect_block``;
* the index is consistent: every index entry has its block data, the active chain has
  no failed block, and undo records exist for exactly the connected blocks.

The delays are scaled to a calibration run and adjusted as the kills land, so the kills
spread over the whole feed on a fast or a slow machine. When a child gets through everything before its kill, the round
is checked and a fresh directory starts the next one.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from chainfeed import LedgerBuilder, write_blocks, write_verdicts

from chain.block import Block
from chain.chainstate import P_BLOCK, P_UNDO, BlockStatus, Chainstate
from chain.coins import CoinsOverlay, MemoryCoins, memory_utxo_hash
from chain.contextual import Undo, connect_block, disconnect_block
from chain.params import REGTEST
from tests.exactwork import verify

KILLS = 100
SEED = 20_251_123
CHILD = Path(__file__).with_name("chainfeed.py")
REPO = Path(__file__).resolve().parents[2]


def build_feed() -> tuple[LedgerBuilder, list[Block]]:
    """The blocks in the order they are fed, and the builder that knows their ledgers."""
    builder = LedgerBuilder(seed=11)
    prefix = builder.branch(builder.genesis, 100, transfers=0)
    prefix += builder.branch(prefix[-1].hash, 4, transfers=3)  # P = height 104
    p = prefix[-1].hash
    a = builder.branch(p, 25, producer=1, transfers=3)  # P+1 .. P+25
    # B forks at P+5 and overtakes A at P+26: disconnect 20, connect 21.
    b = builder.branch(a[4].hash, 25, producer=2, transfers=2, burn=100)
    # A grows to P+40 and overtakes B again at P+31: disconnect 25, connect 26.
    a += builder.branch(a[-1].hash, 15, producer=1, transfers=3)
    # C forks at P+20; its 4th block has a bad signature. At P+41 it has the most work:
    # disconnect 20, connect 3, fail, disconnect 3, reconnect 20. The rest is refused.
    c = builder.branch(a[19].hash, 3, producer=3, transfers=2)
    c.append(builder.extend(c[-1].hash, producer=3, transfers=2, corrupt=True))
    c += builder.branch(c[-1].hash, 21, producer=3, transfers=2)
    # D forks at P and overtakes A at P+41: disconnect 40, connect 41, then 4 more.
    d = builder.branch(p, 45, producer=4, transfers=2, burn=7)
    return builder, prefix + a[:25] + b + a[25:] + c + d


def reference_commitments(builder: LedgerBuilder, blocks: list[Block]) -> dict[bytes, bytes]:
    """Commitment per valid block, from one ``MemoryCoins`` that follows the feed: for
    each block in turn, disconnect back to the fork and connect up to it."""
    coins = MemoryCoins()
    overlay = CoinsOverlay(coins)
    overlay.add_outputs(REGTEST.genesis.transactions[0], 0)
    coins.apply(overlay)
    refs = {REGTEST.genesis_hash: memory_utxo_hash(coins)}
    undos: dict[bytes, Undo] = {}
    chain = [REGTEST.genesis_hash]
    for block in blocks:
        if not builder.node(block.hash).valid:
            continue
        path = []
        cursor = block
        while cursor.hash not in chain:
            path.append(cursor)
            cursor = builder.node(cursor.header.prev_hash).block
        while chain[-1] != cursor.hash:
            gone = builder.node(chain.pop()).block
            coins.apply(disconnect_block(gone, undos.pop(gone.hash), coins))
            assert memory_utxo_hash(coins) == refs[chain[-1]]  # back exactly where it was
        for step in reversed(path):
            result = connect_block(step, coins, REGTEST)
            coins.apply(result.overlay)
            undos[step.hash] = result.undo
            chain.append(step.hash)
            commitment = memory_utxo_hash(coins)
            assert refs.setdefault(step.hash, commitment) == commitment
    for block_hash, commitment in refs.items():  # the builder's block-by-block ledgers
        assert builder.commitment(block_hash) == commitment
    return refs


class Inspection(NamedTuple):
    tip: bytes
    height: int


def inspect(datadir: Path, builder: LedgerBuilder, refs: dict[bytes, bytes]) -> Inspection:
    """Reopen ``datadir`` and check everything a kill could have broken."""
    cs = Chainstate(datadir, REGTEST, verify)
    try:
        tip = cs.tip
        assert tip.hash in refs, "the tip is not a valid block of the fed sequence"
        assert cs.utxo_commitment() == refs[tip.hash]
        assert cs.utxo_stats()[1] == builder.node(tip.hash).value
        for entry in cs.index.values():
            assert entry.status & BlockStatus.HAVE_DATA
            assert cs.db.get(P_BLOCK + entry.hash) is not None
        for block_hash in cs.active:
            assert not cs.index[block_hash].failed
        undo = {key[1:] for key in cs.db.iterator(prefix=P_UNDO, include_value=False)}
        assert undo == set(cs.active)
        # Opening finishes any activation a kill interrupted: no stored block beats the tip.
        best = max(e.chain_work for e in cs.index.values() if not e.failed)
        assert best == tip.chain_work
        return Inspection(tip.hash, tip.height)
    finally:
        cs.close()


def start_child(datadir: Path, blocks_file: Path) -> subprocess.Popen[bytes]:
    # Unbuffered: a buffered readline could swallow "done" along with "ready" when the child
    # has nothing left to feed, and communicate() reads past Python's buffer.
    verdicts_file = blocks_file.with_name("verdicts.bin")
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(datadir), str(blocks_file), str(verdicts_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != b"ready\n":
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"child failed to start: {line!r} {err.decode()}")
    return proc


def finish(proc: subprocess.Popen[bytes]) -> None:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert out == b"done\n", (out, err.decode())


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    builder, blocks = build_feed()
    assert len({b.hash for b in blocks}) == len(blocks)
    refs = reference_commitments(builder, blocks)
    final = blocks[-1].hash
    end = Inspection(final, builder.node(final).height)
    blocks_file = tmp_path / "blocks.bin"
    write_blocks(blocks_file, blocks)
    write_verdicts(blocks_file.with_name("verdicts.bin"), builder.verdicts)

    # Calibration: one uninterrupted run sets the time scale and the expected end state.
    start = time.perf_counter()
    proc = start_child(tmp_path / "calibration", blocks_file)
    ready = time.perf_counter()
    finish(proc)
    feed_time = time.perf_counter() - ready
    startup = ready - start
    assert inspect(tmp_path / "calibration", builder, refs) == end

    rng = random.Random(SEED)
    datadir = tmp_path / "node"
    kills = advanced = went_back = rounds = 0
    last = Inspection(REGTEST.genesis_hash, 0)
    # Mean progress per child ~ feed_time / KILLS: the kills cover one whole feed.
    scale = 2 * feed_time / KILLS
    while kills < KILLS:
        proc = start_child(datadir, blocks_file)
        time.sleep(rng.uniform(0, scale))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            kills += 1
            now = inspect(datadir, builder, refs)
            advanced += now.tip != last.tip
            went_back += now.height < last.height
            # A child first finishes any interrupted activation and walks past the blocks it
            # already has, which takes longer as the feed goes on and varies by machine:
            # widen the delays while kills land before any progress, narrow them after one
            # that advanced, so the kills keep spreading over the feed (about 57 % advance).
            scale *= 0.9 if now.tip != last.tip else 1.15
            last = now
        else:  # it got through everything: check the round, start a fresh one
            finish(proc)
            assert inspect(datadir, builder, refs) == end
            rounds += 1
            shutil.rmtree(datadir)
            last = Inspection(REGTEST.genesis_hash, 0)

    # Finish the feed without interruption: the end state is the calibration's.
    reached = last.height
    finish(start_child(datadir, blocks_file))
    assert inspect(datadir, builder, refs) == end

    with capsys.disabled():
        print(
            f"\nkill recovery: {len(blocks)} blocks, uninterrupted feed {feed_time:.2f}s, "
            f"child start {startup:.2f}s; {kills} kills, {rounds} round(s) completed early: "
            f"tip advanced {advanced}, unchanged {kills - advanced}, "
            f"tip below the last one {went_back}; "
            f"killed run reached height {reached} of {end.height}"
        )
    assert advanced >= KILLS // 3  # the kills were spread over the feed, not bunched up
