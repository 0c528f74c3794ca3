"""Initial sync of exact-work blocks: re-executing every draw vs assume-valid.

A node syncing from genesis re-executes each block's winning draw (one teacher-forced
pass of the lottery model, specs/pob.md §3) unless the block is an ancestor of the
network's assume-valid block, whose header chain it has checked (as Bitcoin Core skips
scripts below its assumevalid block). This bench mines ``--blocks`` blocks with the
integer SmolLM2 (regtest's rules, where every draw wins, with the SmolLM2 lottery of
testnet and mainnet: 64 tokens a draw), then connects them into two fresh chainstates,
in the same run:

* **re-execution**: every draw checked by the model;
* **assume-valid**: the last block is the assume-valid block, so no draw is re-executed
  (every other rule still runs);

and checks that both end with the same tip and UTXO set.

    .venv/bin/python bench/sync_work.py [--blocks 500] [--model smollm2|tiny] [--threads 1]
        [--cache DIR]   # keep the mined blocks there and reuse them on the next run

Last line: ``ratio <assume-valid time / re-execution time>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def lottery_params(model: str):  # type: ignore[no-untyped-def]
    from chain.params import REGTEST, TESTNET

    if model == "tiny":
        return REGTEST
    return dataclasses.replace(REGTEST, lottery=TESTNET.lottery)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=500)
    parser.add_argument("--model", default="smollm2", choices=["smollm2", "tiny"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--store", default=None, help="blob store (default: under the cache)")
    parser.add_argument("--cache", default=None, help="directory to keep the mined blocks in")
    args = parser.parse_args()

    from chain.block import decode_block
    from chain.chainstate import Chainstate
    from chain.encoding import pack, unpack_canonical
    from chain.producer import assemble_block
    from chain.schnorr import pubkey_of
    from workloads.lottery import ExactLottery
    from workloads.store import BlobStore

    cache = Path(args.cache or tempfile.mkdtemp(prefix="fc-sync-work-"))
    cache.mkdir(parents=True, exist_ok=True)
    store = BlobStore(Path(args.store) if args.store else cache / "store")
    params = lottery_params(args.model)
    lottery = ExactLottery(params, store, threads=args.threads)
    secret = b"\x07" * 32
    print(
        f"model {args.model}: {params.lottery.max_new_tokens} tokens a draw, "
        f"{args.threads} thread(s); worker {pubkey_of(secret).hex()[:16]}"
    )

    blocks_file = cache / f"blocks-{args.model}.msgpack"
    encoded: list[bytes] = []
    if blocks_file.exists():
        encoded = list(unpack_canonical(blocks_file.read_bytes(), 1 << 31))
    if len(encoded) < args.blocks:
        miner = Chainstate(cache / f"miner-{args.model}", params, lottery.verify)
        for data in encoded[miner.height :]:
            miner.accept_block(decode_block(data), 2**40)
        started = time.perf_counter()
        made = 0
        while miner.height < args.blocks:
            parent = miner.parent_info(miner.tip.hash)
            block = assemble_block(
                params, parent, secret, [], parent.time + 300, sampler=lottery.sample
            )
            miner.accept_block(block, 2**40)
            encoded.append(block.encoded)
            made += 1
            if made % 25 == 0:
                blocks_file.write_bytes(pack(encoded))
                rate = made / (time.perf_counter() - started)
                print(f"  mined {miner.height}/{args.blocks} ({rate:.2f} blocks/s)", flush=True)
        blocks_file.write_bytes(pack(encoded))
        miner.close()
        elapsed = time.perf_counter() - started
        if made:
            print(
                f"mining: {made} blocks in {elapsed:.1f} s, {1000 * elapsed / made:.0f} ms a "
                "block (one draw each, and its own check on connect)"
            )
    blocks = [decode_block(data) for data in encoded[: args.blocks]]

    def sync(name: str, assume_valid: bool) -> tuple[float, bytes, bytes]:
        p = dataclasses.replace(params, assume_valid=blocks[-1].hash if assume_valid else None)
        path = Path(tempfile.mkdtemp(prefix=f"fc-sync-{name}-"))
        chainstate = Chainstate(path / "cs", p, lottery.verify)
        chainstate.note_assumed_valid([b.hash for b in blocks])
        started = time.perf_counter()
        for block in blocks:
            chainstate.accept_block(block, 2**40)
        elapsed = time.perf_counter() - started
        assert chainstate.height == len(blocks)
        result = (elapsed, chainstate.tip.hash, chainstate.utxo_commitment())
        chainstate.close()
        print(
            f"{name:>13}: {len(blocks)} blocks in {elapsed:7.2f} s, "
            f"{1000 * elapsed / len(blocks):7.1f} ms a block"
        )
        return result

    full, tip_full, utxo_full = sync("re-execution", assume_valid=False)
    fast, tip_fast, utxo_fast = sync("assume-valid", assume_valid=True)
    assert (tip_full, utxo_full) == (tip_fast, utxo_fast), "the two syncs disagree"
    print("both syncs end at the same tip and UTXO set")
    print(f"ratio {fast / full:.4f}")


if __name__ == "__main__":
    main()
