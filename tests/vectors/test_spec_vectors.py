"""The numbers written in ``specs/`` are recomputed from ``chain/``.

Nothing here keeps its own copy of an expected value: each test parses a table or a hex
block out of the markdown and recomputes it from the code, so the spec cannot drift.

* ``encoding.md`` §8: test vectors (hashes, lengths, a signed transfer, a regtest draw,
  ASERT targets) and the hex blocks (the regtest genesis block, the transfer, the draw's
  seed preimage and header).
* ``consensus.md`` §1: network and lottery parameters and constants; ``pob.md`` §4: the
  per-network table; ``encoding.md`` §1.4, §2: decoder bounds and the list of hash tags.
* ``consensus.md`` §8: every ``Reject`` code has exactly one row, and no row names a
  code that does not exist.
* Every ``§`` cited in ``chain/`` exists in the spec it refers to.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from chain import hashing, lottery
from chain.block import BlockHeader, Work, decode_block, decode_header
from chain.chainstate import Chainstate
from chain.checks import check_header, header_seed
from chain.coins import CoinsOverlay, MemoryCoins, memory_utxo_hash, utxo_set_hash
from chain.contextual import next_target
from chain.difficulty import block_work
from chain.encoding import pack
from chain.errors import Reject
from chain.hashing import TAG_GENESIS, TAG_TX, tagged_hash
from chain.lottery import DrawTask, choose_prompt, encode_tokens, pow_value
from chain.merkle import EMPTY_ROOT, merkle_root
from chain.params import MAINNET, REGTEST, TESTNET, ChainParams, steward_secret
from chain.producer import sign_transaction
from chain.schnorr import pubkey_of, sign, verify
from chain.sighash import sighashes, spent_outputs_hash
from chain.transaction import (
    NO_SIGNATURE,
    OutPoint,
    Transaction,
    TxIn,
    TxKind,
    TxOut,
    decode_transaction,
)

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
CONSENSUS = (SPECS / "consensus.md").read_text()
ENCODING = (SPECS / "encoding.md").read_text()
POB = (SPECS / "pob.md").read_text()
NETS = (MAINNET, TESTNET, REGTEST)


# --------------------------------------------------------------------------------------
# Reading the markdown
# --------------------------------------------------------------------------------------


def table(text: str, name: str) -> list[list[str]]:
    """Body rows of the table that follows ``<!-- table: name -->``, as lists of cells."""
    marker = f"<!-- table: {name} -->"
    assert marker in text, f"table {name!r} is missing from the spec"
    lines = text.split(marker, 1)[1].lstrip("\n").splitlines()
    rows = []
    for line in lines[2:]:  # skip the header and the |---| line
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows


def code(cell: str) -> str:
    """The first `code span` of a cell."""
    m = re.search(r"`([^`]*)`", cell)
    assert m, f"no code span in table cell {cell!r}"
    return m.group(1)


def hex_block(text: str, name: str) -> str:
    """The fenced block after ``<!-- vector: name -->``, whitespace removed."""
    m = re.search(rf"<!-- vector: {re.escape(name)} -->\s*```\w*\n(.*?)```", text, re.S)
    assert m, f"hex block {name!r} is missing from the spec"
    return "".join(m.group(1).split())


def parse_int(text: str) -> int:
    """``123``, ``1_000``, ``0x1f``, ``2**236``, ``2**256 - 1`` or ``target_for_draws(3_000)``.

    ``target_for_draws(d)`` is evaluated as consensus.md §1.1 defines it, ⌊2^256 / d⌋ − 1,
    not by calling the code's function of that name."""
    s = text.replace("_", "").replace(" ", "")
    m = re.fullmatch(r"2\*\*(\d+)(-1)?", s)
    if m:
        return 2 ** int(m.group(1)) - (1 if m.group(2) else 0)
    m = re.fullmatch(r"targetfordraws\((\d+)\)", s)
    if m:
        return 2**256 // int(m.group(1)) - 1
    return int(s, 0)


# --------------------------------------------------------------------------------------
# encoding.md §8: what each vector is, computed from the code
# --------------------------------------------------------------------------------------

KEY_1 = (1).to_bytes(32, "big")
KEY_2 = (2).to_bytes(32, "big")
SPENT = [TxOut(5_000_000_000, pubkey_of(KEY_1))]


def transfer_unsigned() -> Transaction:
    """encoding.md §8.2: key 1 spends (aa…aa, 1), 50 FC, paying 49.9999 FC to key 2."""
    return Transaction(
        1,
        TxKind.TRANSFER,
        (TxIn(OutPoint(b"\xaa" * 32, 1), NO_SIGNATURE),),
        (TxOut(4_999_990_000, pubkey_of(KEY_2)),),
        [],
    )


def transfer_signed() -> Transaction:
    return sign_transaction(transfer_unsigned(), [KEY_1], SPENT, REGTEST)


def genesis_coins(params: ChainParams) -> MemoryCoins:
    coins = MemoryCoins()
    overlay = CoinsOverlay(coins)
    overlay.add_outputs(params.genesis.transactions[0], 0)
    coins.apply(overlay)
    return coins


def asert(params: ChainParams, time_offset: int, parent_height: int) -> str:
    return hex(next_target(params, params.genesis_time + time_offset, parent_height))


DRAW_TOKENS = list(range(8))


def draw_header() -> BlockHeader:
    """encoding.md §8.3: a regtest header at height 1 with made-up fields and tokens 0..7."""
    unsigned = BlockHeader(
        version=2,
        prev_hash=REGTEST.genesis_hash,
        merkle_root=b"\x11" * 32,
        benefit_root=EMPTY_ROOT,
        time=REGTEST.genesis_time + 1,
        target=2**256 - 1,
        height=1,
        work=Work(pubkey_of(KEY_1), 0, encode_tokens(DRAW_TOKENS)),
        producer_sig=NO_SIGNATURE,
    )
    return unsigned._replace(producer_sig=sign(KEY_1, unsigned.signing_message(REGTEST.magic)))


def draw_seed() -> bytes:
    return header_seed(draw_header(), REGTEST)


def steward_key(network: str) -> str:
    """encoding.md §2.1, from the formula rather than ``chain.params.steward_secret``."""
    return pubkey_of(tagged_hash("fc/steward-secret", network.encode() + b" steward 0")).hex()


_G = REGTEST.genesis
_CB = _G.transactions[0]

VECTORS: dict[str, Callable[[], str]] = {
    "tagged-hash-fc/tx-empty": lambda: tagged_hash(TAG_TX, b"").hex(),
    "regtest-genesis-hash": lambda: REGTEST.genesis_hash.hex(),
    "regtest-genesis-length": lambda: str(len(_G.encoded)),
    "regtest-genesis-header-length": lambda: str(len(_G.header.encode())),
    "regtest-genesis-coinbase-txid": lambda: _CB.txid.hex(),
    "regtest-genesis-coinbase-wtxid": lambda: _CB.wtxid.hex(),
    "regtest-genesis-merkle-root": lambda: merkle_root([_CB.wtxid]).hex(),
    "regtest-genesis-burn-key": lambda: tagged_hash(TAG_GENESIS, b"Foundation Coin regtest").hex(),
    "regtest-genesis-signing-message": lambda: _G.header.signing_message(REGTEST.magic).hex(),
    "regtest-genesis-utxo-commitment": lambda: memory_utxo_hash(genesis_coins(REGTEST)).hex(),
    "mainnet-genesis-hash": lambda: MAINNET.genesis_hash.hex(),
    "testnet-genesis-hash": lambda: TESTNET.genesis_hash.hex(),
    "utxo-commitment-empty": lambda: utxo_set_hash([]).hex(),
    "merkle-root-0": lambda: merkle_root([]).hex(),
    "merkle-root-1": lambda: merkle_root([b"\x01" * 32]).hex(),
    "merkle-root-3": lambda: merkle_root([bytes([i]) * 32 for i in (1, 2, 3)]).hex(),
    "regtest-draw-seed": lambda: draw_seed().hex(),
    "regtest-draw-tokens-hash": lambda: tagged_hash(
        lottery.TAG_TOKENS, draw_header().work.tokens
    ).hex(),
    "regtest-draw-pow": lambda: hex(pow_value(draw_seed(), draw_header().work.tokens)),
    "regtest-draw-prompt-index": lambda: str(
        choose_prompt(draw_seed(), [REGTEST.lottery.standing_job])[1]
    ),
    "regtest-draw-header-length": lambda: str(len(draw_header().encode())),
    "regtest-draw-header-hash": lambda: draw_header().hash().hex(),
    "mainnet-standing-job-id": lambda: MAINNET.lottery.standing_job.job_id.hex(),
    "testnet-standing-job-id": lambda: TESTNET.lottery.standing_job.job_id.hex(),
    "regtest-standing-job-id": lambda: REGTEST.lottery.standing_job.job_id.hex(),
    "testnet-steward-key": lambda: steward_key("testnet"),
    "regtest-steward-key": lambda: steward_key("regtest"),
    "key-1-pubkey": lambda: pubkey_of(KEY_1).hex(),
    "key-2-pubkey": lambda: pubkey_of(KEY_2).hex(),
    "transfer-length": lambda: str(transfer_signed().size),
    "transfer-txid": lambda: transfer_signed().txid.hex(),
    "transfer-wtxid": lambda: transfer_signed().wtxid.hex(),
    "transfer-spent-outputs": lambda: spent_outputs_hash(SPENT).hex(),
    "transfer-sighash-0": lambda: sighashes(transfer_unsigned(), SPENT, REGTEST.magic)[0].hex(),
    "transfer-signature-0": lambda: transfer_signed().inputs[0].signature.hex(),
    "work-mainnet-genesis": lambda: str(block_work(MAINNET.genesis_target)),
    "work-mainnet-max-target": lambda: str(block_work(MAINNET.max_target)),
    "work-testnet-genesis": lambda: str(block_work(TESTNET.genesis_target)),
    "asert-mainnet-on-schedule": lambda: asert(MAINNET, 300 * 10, 10),
    "asert-mainnet-behind": lambda: asert(MAINNET, 1000, 10),
    "asert-mainnet-one-halflife-late": lambda: asert(MAINNET, 300 * 10 + 86_400, 10),
    "asert-testnet-early": lambda: asert(TESTNET, -1, 10),
}

SPEC_VECTORS = {code(row[0]): code(row[-1]) for row in table(ENCODING, "vectors")}


def test_every_vector_in_the_spec_is_checked_and_every_check_is_in_the_spec() -> None:
    assert set(SPEC_VECTORS) == set(VECTORS)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector(name: str) -> None:
    assert SPEC_VECTORS[name] == VECTORS[name](), f"encoding.md §8.4: {name}"


def test_regtest_genesis_bytes() -> None:
    data = bytes.fromhex(hex_block(ENCODING, "regtest-genesis-block"))
    assert data == REGTEST.genesis.encoded
    assert decode_block(data).hash == REGTEST.genesis_hash


def test_transfer_bytes() -> None:
    data = bytes.fromhex(hex_block(ENCODING, "transfer-tx"))
    tx = decode_transaction(data)
    assert data == transfer_signed().encoded
    assert tx.txid == transfer_unsigned().txid  # the txid leaves the signatures out
    (message,) = sighashes(tx, SPENT, REGTEST.magic)
    assert verify(pubkey_of(KEY_1), tx.inputs[0].signature, message)
    # The same signature is worthless on another network (consensus.md §3.8).
    (other,) = sighashes(tx, SPENT, TESTNET.magic)
    assert not verify(pubkey_of(KEY_1), tx.inputs[0].signature, other)


def test_draw_bytes() -> None:
    """encoding.md §4.4 and §8.3, with the tags written out: the seed's preimage is the
    magic and the flat 9-entry draw_wire; the header passes every rule of consensus.md §4."""
    header = draw_header()
    preimage = bytes.fromhex(hex_block(ENCODING, "regtest-draw-preimage"))
    w = header.work
    flat = [2, REGTEST.genesis_hash, b"\x11" * 32, EMPTY_ROOT, REGTEST.genesis_time + 1]
    flat += [b"\xff" * 32, 1, w.worker_key, w.counter]
    assert preimage == REGTEST.magic + pack(flat) == REGTEST.magic + pack(header.draw_wire())
    seed = tagged_hash("fc/draw", preimage)
    assert seed.hex() == SPEC_VECTORS["regtest-draw-seed"]
    assert w.tokens == b"".join(t.to_bytes(4, "big") for t in DRAW_TOKENS)
    out = tagged_hash("fc/pow", seed + tagged_hash("fc/tokens", w.tokens))
    assert hex(int.from_bytes(out, "big")) == SPEC_VECTORS["regtest-draw-pow"]
    assert int(SPEC_VECTORS["regtest-draw-prompt-index"]) == int.from_bytes(seed, "big") % 320
    data = bytes.fromhex(hex_block(ENCODING, "regtest-draw-header"))
    assert data == header.encode()
    assert decode_header(data) == header
    check_header(header, REGTEST)  # shape, pow and signature: no model needed


def _no_verifier(task: DrawTask, tokens: bytes) -> bool:
    raise AssertionError("genesis is connected by construction; no draw is verified")


def test_chainstate_commitment_matches_the_spec(tmp_path: Path) -> None:
    cs = Chainstate(tmp_path / "cs", REGTEST, _no_verifier)
    try:
        assert cs.utxo_commitment().hex() == SPEC_VECTORS["regtest-genesis-utxo-commitment"]
    finally:
        cs.close()


# --------------------------------------------------------------------------------------
# consensus.md §1 and encoding.md §1.4, §2: parameters, constants, tags
# --------------------------------------------------------------------------------------


HEX_FIELDS = {"magic", "model_hash", "standing_root", "standing_sha256"}


def _network_value(field: str, cell: str) -> object:
    """The value a cell of a per-network table states for ``field`` (``a.b``: attribute
    ``b`` of attribute ``a``)."""
    leaf = field.rsplit(".", 1)[-1]
    if leaf == "stewards":  # every key of the cell, or `none`
        keys = re.findall(r"`([0-9a-f]{64})`", cell)
        assert keys or code(cell) == "none", f"stewards cell {cell!r}"
        return tuple(bytes.fromhex(k) for k in keys)
    text = code(cell)
    if text == "none":
        return None
    if leaf in HEX_FIELDS:
        return bytes.fromhex(text)
    if leaf == "genesis_message":
        return text.encode()
    if leaf in ("hrp", "arch"):
        return text
    if leaf == "no_retarget":
        return {"true": True, "false": False}[text]
    return parse_int(text)


def _param(params: ChainParams, field: str) -> object:
    value: object = params
    for part in field.split("."):
        value = getattr(value, part)
    return value


def check_network_table(text: str, name: str, where: str) -> list[str]:
    """Each row: a field, then its value on mainnet, testnet and regtest (more cells, such
    as a reason, may follow). Returns the fields checked."""
    fields = []
    for row in table(text, name):
        field = code(row[0])
        fields.append(field)
        for params, cell in zip(NETS, row[1:4], strict=True):
            assert _param(params, field) == _network_value(field, cell), (
                f"{where}: {field} of {params.name}"
            )
    assert len(fields) == len(set(fields)), f"{where}: a field appears twice"
    return fields


def test_network_parameters() -> None:
    fields = check_network_table(CONSENSUS, "networks", "consensus.md §1.1")
    assert len(fields) >= 10


def test_lottery_parameters() -> None:
    fields = check_network_table(CONSENSUS, "lottery", "consensus.md §1.6")
    every = {f"lottery.{name}" for name in lottery.LotteryParams.__dataclass_fields__}
    assert set(fields) == every, "consensus.md §1.6 must list every LotteryParams field"


def test_pob_parameters() -> None:
    fields = check_network_table(POB, "pob-parameters", "pob.md §4.4")
    assert len(fields) >= 6


@pytest.mark.parametrize(("text", "name"), [(CONSENSUS, "constants"), (ENCODING, "limits")])
def test_constants(text: str, name: str) -> None:
    for row in table(text, name):
        constant, value, module = code(row[0]), code(row[1]), code(row[2])
        actual = getattr(importlib.import_module(module), constant)
        assert actual == parse_int(value), f"{name}: {module}.{constant}"


TAG_MODULES = ("chain.hashing", "chain.lottery", "chain.jobs")


def test_hash_tags() -> None:
    """encoding.md §2 lists every tag of chain/hashing.py and chain/lottery.py, the job id's
    tag, and the test networks' steward secrets; each with the value the code uses."""
    rows = {code(row[0]): code(row[1]) for row in table(ENCODING, "tags")}
    defined: dict[str, str] = {}
    for module in TAG_MODULES:
        for key, value in vars(importlib.import_module(module)).items():
            if key.startswith("TAG_"):
                defined.setdefault(key, value)
    required = {k for m in (hashing, lottery) for k in vars(m) if k.startswith("TAG_")}
    assert required <= set(rows), f"encoding.md §2 lacks {sorted(required - set(rows))}"
    for constant, tag in rows.items():
        if constant == "steward_secret":
            for network in ("testnet", "regtest"):
                secret = tagged_hash(tag, network.encode() + b" steward 0")
                assert steward_secret(network) == secret
            continue
        assert defined.get(constant) == tag, f"encoding.md §2: {constant} is not {tag!r}"
    assert "fc/ticket" not in rows.values(), "fc/ticket is retired (encoding.md §2)"
    assert len(set(rows.values())) == len(rows), "a tag appears twice in encoding.md §2"


# --------------------------------------------------------------------------------------
# consensus.md §8: reject codes
# --------------------------------------------------------------------------------------


def test_every_reject_code_has_exactly_one_row() -> None:
    listed = [code(row[0]) for row in table(CONSENSUS, "reject-consensus")]
    listed += [code(row[0]) for row in table(CONSENSUS, "reject-policy")]
    missing = {r.value for r in Reject} - set(listed)
    unknown = set(listed) - {r.value for r in Reject}
    assert not missing, f"add a row to specs/consensus.md §8 for: {sorted(missing)}"
    assert not unknown, f"specs/consensus.md §8 lists codes not in Reject: {sorted(unknown)}"
    assert len(listed) == len(set(listed)), "a code appears twice in specs/consensus.md §8"


# --------------------------------------------------------------------------------------
# Section references in chain/
# --------------------------------------------------------------------------------------


def sections(text: str) -> set[str]:
    """Section numbers defined by headings (``## 5.``, ``### 1.2``) or bold leads (``**5.4``)."""
    found = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, re.M))
    found |= set(re.findall(r"^\*\*(\d+\.\d+) ", text, re.M))
    return found


_CITE = re.compile(r"§(\d+(?:\.\d+)?)(?:\s*[–-]\s*(\d+(?:\.\d+)?))?")


def test_code_cites_existing_sections() -> None:
    specs = {
        "consensus": sections(CONSENSUS),
        "encoding": sections(ENCODING),
        "pob": sections(POB),
    }
    bad = []
    for path in sorted((ROOT / "chain").glob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if "§" not in line or "DESIGN" in line:
                continue
            named = re.search(r"specs/(\w+)\.md", line)
            spec = named.group(1) if named else "consensus"
            if spec not in specs:
                continue
            for m in _CITE.finditer(line):
                first, last = m.group(1), m.group(2)
                if last and "." in first and "." not in last:  # "§5.1–5" means 5.1 to 5.5
                    last = f"{first.split('.')[0]}.{last}"
                for number in filter(None, (first, last)):
                    if number not in specs[spec]:
                        bad.append(f"{path.name}:{lineno}: {spec}.md §{number}")
    assert not bad, "cited sections that do not exist:\n" + "\n".join(bad)
