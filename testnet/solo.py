"""The main job for now: one regtest node producing blocks and showing them.

It opens (or creates) a LevelDB chainstate and produces blocks, each won by an exact draw
of regtest's lottery model (the tiny integer model, derived into DATADIR/store the first
time) and re-checked when it connects. Once coinbase outputs
mature (100 blocks), the producer pays its matured rewards out to demo users, and the
users pay each other at different fee rates; every payment goes through the mempool's
policy checks, and each block takes the best-paying transactions by fee rate. Each
block is printed as it connects. The run ends with a check anyone can repeat: the chain
reopened from disk has the same tip and UTXO commitment, and a reindex from the stored
blocks reproduces that commitment.

Then the useful work that will mint coins under Proof of Benefit: an embedding job and a
training sweep on the ``cancer-knowledge`` queue, each committed to a batch root and
audited by re-executing a random sample; and one exact draw, the kind of work that will win
blocks (specs/pob.md): the integer SmolLM2 answers a question from the standing
cancer-knowledge prompt set, keyed by a seed, and a teacher-forced pass re-checks the
answer bit for bit (specs/exact.md). ``--no-work`` skips all of it. Later issues grow this
into a local network of ``fcd`` processes doing the work for each other.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

from rich.console import Console

from chain.amounts import format_amount
from chain.block import Block
from chain.chainstate import Chainstate
from chain.errors import RuleError
from chain.mempool import Mempool
from chain.params import REGTEST
from chain.producer import sign_transaction
from chain.schnorr import pubkey_of
from chain.template import create_block
from chain.transaction import NO_SIGNATURE, OutPoint, Transaction, TxIn, TxKind, TxOut

console = Console()
BLOCK_INTERVAL = 30  # seconds of simulated time between blocks
PAYMENTS_PER_BLOCK = 4


def demo_secret(label: str) -> bytes:
    """A deterministic demo secret (never use this for real money)."""
    return hashlib.sha256(b"fc-solo-demo/" + label.encode()).digest()


class DemoWallets:
    """Confirmed coins of the demo keys, learned from connected blocks."""

    def __init__(self, secrets: list[bytes]) -> None:
        self.secret_of = {pubkey_of(s): s for s in secrets}
        self.coins: dict[OutPoint, TxOut] = {}

    def block_connected(self, block: Block) -> None:
        for tx in block.transactions:
            for txin in tx.inputs:
                self.coins.pop(txin.prevout, None)
            for n, out in enumerate(tx.outputs):
                if out.pubkey in self.secret_of:
                    self.coins[OutPoint(tx.txid, n)] = out

    def pay(self, outpoint: OutPoint, to: list[bytes], fee_rate: int) -> Transaction:
        """Spend one coin to ``to`` in equal parts, paying ``fee_rate`` units per byte."""
        coin = self.coins.pop(outpoint)
        inputs = (TxIn(outpoint, NO_SIGNATURE),)
        share = coin.amount // (len(to) + 1)
        payments = tuple(TxOut(share, pubkey_of(s)) for s in to)
        # Signatures have a fixed size; a draft whose change is the whole coin is at least
        # as large as the final transaction (msgpack ints grow with their value).
        draft = Transaction(
            1, TxKind.TRANSFER, inputs, (*payments, TxOut(coin.amount, coin.pubkey)), []
        )
        change = coin.amount - share * len(to) - draft.size * fee_rate
        tx = Transaction(1, TxKind.TRANSFER, inputs, (*payments, TxOut(change, coin.pubkey)), [])
        return sign_transaction(tx, [self.secret_of[coin.pubkey]], [coin], REGTEST)


def run(datadir: Path, blocks: int) -> int:
    from workloads.lottery import shared_lottery

    producer = demo_secret("producer")
    users = [demo_secret(f"user-{i}") for i in range(5)]
    wallets = DemoWallets([producer, *users])
    lottery = shared_lottery(REGTEST, datadir / "store")
    cs = Chainstate(datadir / "chainstate", REGTEST, lottery.verify)
    for height in range(1, cs.height + 1):  # coins from an earlier run in the same datadir
        stored = cs.get_block(cs.active[height])
        assert stored is not None
        wallets.block_connected(stored)
    wallets.coins = {op: out for op, out in wallets.coins.items() if cs.get_coin(op) is not None}
    mempool = Mempool(cs, REGTEST)
    console.print(
        f"[bold]Foundation Coin regtest node[/] data in {datadir}, tip height {cs.height}"
    )
    console.print(
        f"{'height':>6}  {'hash':16}  {'txs':>3}  {'fees':>12}  {'coins':>5}  {'supply (FC)':>16}"
    )
    clock = cs.tip.header.time
    for _ in range(blocks):
        clock += BLOCK_INTERVAL
        spendable = [
            op
            for op in wallets.coins
            if (coin := cs.get_coin(op)) is not None
            and (not coin.is_coinbase or cs.height + 1 - coin.height >= REGTEST.coinbase_maturity)
        ]
        for n, outpoint in enumerate(spendable[:PAYMENTS_PER_BLOCK]):
            recipients = [users[(cs.height + n + k) % len(users)] for k in range(2)]
            tx = wallets.pay(outpoint, recipients, fee_rate=1 + (cs.height + n) % 5)
            try:
                mempool.accept(tx, now=clock)
            except RuleError as exc:
                console.print(f"[yellow]mempool refused {tx.txid.hex()[:12]}: {exc}")
        template = create_block(
            REGTEST,
            cs.parent_info(cs.tip.hash),
            producer,
            mempool,
            clock,
            sampler=lottery.sample,
            jobs=cs.jobs_for_child(),
        )
        update = cs.accept_block(template.block, now=clock)
        for block in update.connected:
            mempool.remove_for_block(block, now=clock)
            wallets.block_connected(block)
            coins, supply = cs.utxo_stats()
            console.print(
                f"{block.header.height:>6}  {block.hash.hex()[:16]}  {len(block.transactions):>3}  "
                f"{format_amount(template.fees):>12}  {coins:>5}  {format_amount(supply):>16}"
            )
    tip, commitment = cs.tip.hash, cs.utxo_commitment()
    console.print(f"mempool: {len(mempool)} transactions waiting")
    cs.close()

    reopened = Chainstate(datadir / "chainstate", REGTEST, lottery.verify)
    same_after_reopen = reopened.tip.hash == tip and reopened.utxo_commitment() == commitment
    reopened.reindex()
    same_after_reindex = reopened.tip.hash == tip and reopened.utxo_commitment() == commitment
    reopened.close()
    console.print(f"tip {tip.hex()}")
    console.print(f"UTXO commitment {commitment.hex()}")
    console.print(
        f"reopened from disk: {'same tip and commitment' if same_after_reopen else 'MISMATCH'}"
    )
    console.print(
        f"reindexed from stored blocks: {'same commitment' if same_after_reindex else 'MISMATCH'}"
    )
    return 0 if same_after_reopen and same_after_reindex else 1


CANCER_KNOWLEDGE = [
    "Tamoxifen lowers the risk of recurrence in oestrogen-receptor-positive breast cancer.",
    "BRCA1 and BRCA2 mutation carriers are offered earlier and more frequent screening.",
    "HER2-positive tumours respond to trastuzumab added to chemotherapy.",
    "Sentinel lymph node biopsy spares most patients a full axillary dissection.",
    "Triple-negative breast cancer lacks oestrogen, progesterone and HER2 receptors.",
    "Screening mammography every two years from age fifty reduces breast cancer deaths.",
    "Neoadjuvant chemotherapy can shrink a tumour so that breast-conserving surgery is possible.",
    "Aromatase inhibitors are used after menopause for hormone-receptor-positive disease.",
]


def useful_work(datadir: Path) -> bool:
    """The work that will mint coins: two ``cancer-knowledge`` jobs run and audited here.

    An embedding job (MiniLM-L6) over short clinical statements and a hyper-parameter
    sweep of a breast-cancer classifier (seeded SGD, checkpointed); each is committed to a
    batch root and then audited by re-execution of a random sample, as an auditor would.
    """
    from workloads.job import audit_job, prepare_job, run_job
    from workloads.store import BlobStore

    store = BlobStore(datadir / "store")
    jobs = {
        "embed": {
            "kind": "embed",
            "inputs": CANCER_KNOWLEDGE,
            "params": {"max_tokens": 64},
            "unit_size": 4,
        },
        "train": {
            "kind": "train",
            "inputs": [{"lr": lr, "width": w} for lr in ("0.01", "0.1") for w in (16, 32)],
            "params": {
                "steps": 120,
                "checkpoint_every": 40,
                "batch_size": 32,
                "max_width": 32,
                "holdout_permille": 200,
            },
            "unit_size": 2,
            "seed": 7,
        },
    }
    console.print("[bold]useful work[/] (queue cancer-knowledge)")
    all_passed = True
    for name, description in jobs.items():
        spec, hashes = prepare_job(store, description)
        result = run_job(store, spec, hashes)
        verdict = audit_job(store, result, samples=2)
        cost = sum(spec.unit_cost(u) for u in range(spec.units))
        console.print(
            f"  {name:5} job {spec.job_id.hex()[:12]}: {spec.items} items, {spec.units} units,"
            f" {cost} benefit units, root {result.batch_root.hex()[:12]}"
        )
        checked = ", ".join(f"item {c.index} ({c.distance:.1e})" for c in verdict.checks)
        console.print(
            f"        audit {'pass' if verdict.passed else 'FAIL'}: re-executed {checked}"
        )
        if name == "train":
            from workloads.train import decode_output

            for index, output in enumerate(o for u in result.units for o in u.outputs):
                _, metrics = decode_output(spec, output)
                cfg = description["inputs"][index]
                console.print(
                    f"        lr {cfg['lr']:>4} width {cfg['width']:>2}: holdout accuracy"
                    f" {float(metrics[2]):.3f}, holdout loss {float(metrics[1]):.3f}"
                )
        all_passed = all_passed and verdict.passed
    return all_passed


def exact_draw(datadir: Path, model_name: str) -> bool:
    """One lottery-style draw: a question chosen by the seed from the standing prompt set,
    answered by the integer model (exactly 64 tokens, EOS an ordinary token), verified."""
    import time

    from workloads.exact import (
        ExactRunner,
        decode_text,
        encode_prompt,
        generate,
        load_exact_model,
        verify,
    )
    from workloads.exact.prompts import load_prompt_set
    from workloads.store import BlobStore

    store = BlobStore(datadir / "store")
    console.print(f"[bold]exact work[/] (the block lottery's kind): integer {model_name}")
    started = time.perf_counter()
    model = load_exact_model(store, model_name)
    console.print(
        f"  model {model.sha256.hex()[:16]} ready in {time.perf_counter() - started:.1f} s"
    )
    runner = ExactRunner(model, "int8")
    prompts = load_prompt_set()
    seed = hashlib.sha256(b"fc-solo exact draw").digest()
    question = prompts[int.from_bytes(seed, "big") % len(prompts)]
    prompt = encode_prompt(model, question, chat=True)
    started = time.perf_counter()
    draw = generate(runner, [prompt], [seed], 64, 700, stop_at_eos=False)[0]
    drawn = time.perf_counter() - started
    started = time.perf_counter()
    verdict = verify(runner, prompt, seed, draw.tokens, 64, 700, stop_at_eos=False, digests=False)
    checked = time.perf_counter() - started
    console.print(f"  question: {question}")
    console.print(
        f"  answer:   {decode_text(model, draw.tokens).strip()}", markup=False, highlight=False
    )
    console.print(
        f"  draw of {len(draw.tokens)} tokens in {drawn:.2f} s; exact re-check "
        f"{'pass' if verdict.ok else 'FAIL: ' + verdict.reason} in {checked:.2f} s"
    )
    return verdict.ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Run one regtest node that produces blocks and shows them."
    )
    parser.add_argument(
        "--datadir", type=Path, help="data directory (default: a fresh temporary one)"
    )
    parser.add_argument("--blocks", type=int, default=130, help="blocks to produce (default 130)")
    parser.add_argument("--no-work", action="store_true", help="skip the useful-work jobs")
    parser.add_argument(
        "--exact-model",
        choices=["smollm2", "tiny"],
        default="smollm2",
        help="integer model of the exact draw (default smollm2; tiny is the regtest model)",
    )
    args = parser.parse_args()

    def both(datadir: Path) -> int:
        status = run(datadir, args.blocks)
        if not args.no_work and not useful_work(datadir):
            status = 1
        if not args.no_work and not exact_draw(datadir, args.exact_model):
            status = 1
        return status

    if args.datadir:
        args.datadir.mkdir(parents=True, exist_ok=True)
        raise SystemExit(both(args.datadir))
    with tempfile.TemporaryDirectory(prefix="fc-solo-") as tmp:
        raise SystemExit(both(Path(tmp)))


if __name__ == "__main__":
    main()
