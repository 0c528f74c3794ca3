"""The numbers written in ``specs/`` are recomputed from ``chain/``.

Nothing here keeps its own copy of an expected value: each test parses a table or a hex
block out of the markdown and recomputes it from the code, so the spec cannot drift.

* ``encoding.md`` §8: test vectors (hashes, lengths, a signed transfer, ASERT targets)
  and the two hex blocks (the regtest genesis block, the transfer).
* ``consensus.md`` §1: network parameters and constants; ``encoding.md`` §1.4, §2:
  decoder bounds and the list of hash tags.
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

from chain import hashing
from chain.block import decode_block
from chain.chainstate import Chainstate
from chain.checks import ticket_hash
from chain.coins import CoinsOverlay, MemoryCoins, memory_utxo_hash, utxo_set_hash
from chain.contextual import next_target
from chain.difficulty import block_work
from chain.errors import Reject
from chain.hashing import TAG_GENESIS, TAG_TX, tagged_hash
from chain.merkle import merkle_root
from chain.params import MAINNET, REGTEST, TESTNET, ChainParams
from chain.producer import sign_transaction
from chain.schnorr import pubkey_of, verify
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
    """``123``, ``1_000``, ``0x1f``, ``2**236`` or ``2**256 - 1``."""
    s = text.replace("_", "").replace(" ", "")
    m = re.fullmatch(r"2\*\*(\d+)(-1)?", s)
    if m:
        return 2 ** int(m.group(1)) - (1 if m.group(2) else 0)
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
    "ticket-draw": lambda: ticket_hash(REGTEST.genesis_hash, pubkey_of(KEY_1), 0).hex(),
    "key-1-pubkey": lambda: pubkey_of(KEY_1).hex(),
    "key-2-pubkey": lambda: pubkey_of(KEY_2).hex(),
    "transfer-length": lambda: str(transfer_signed().size),
    "transfer-txid": lambda: transfer_signed().txid.hex(),
    "transfer-wtxid": lambda: transfer_signed().wtxid.hex(),
    "transfer-spent-outputs": lambda: spent_outputs_hash(SPENT).hex(),
    "transfer-sighash-0": lambda: sighashes(transfer_unsigned(), SPENT, REGTEST.magic)[0].hex(),
    "transfer-signature-0": lambda: transfer_signed().inputs[0].signature.hex(),
    "work-mainnet-genesis": lambda: str(block_work(2**236)),
    "asert-mainnet-on-schedule": lambda: asert(MAINNET, 300 * 10, 10),
    "asert-mainnet-behind": lambda: asert(MAINNET, 1000, 10),
    "asert-mainnet-one-halflife-late": lambda: asert(MAINNET, 300 * 10 + 172_800, 10),
    "asert-testnet-early": lambda: asert(TESTNET, -1, 10),
}

SPEC_VECTORS = {code(row[0]): code(row[-1]) for row in table(ENCODING, "vectors")}


def test_every_vector_in_the_spec_is_checked_and_every_check_is_in_the_spec() -> None:
    assert set(SPEC_VECTORS) == set(VECTORS)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector(name: str) -> None:
    assert SPEC_VECTORS[name] == VECTORS[name](), f"encoding.md §8.3: {name}"


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
    # The same signature is worthless on another network (consensus.md §3.7).
    (other,) = sighashes(tx, SPENT, TESTNET.magic)
    assert not verify(pubkey_of(KEY_1), tx.inputs[0].signature, other)


def test_chainstate_commitment_matches_the_spec(tmp_path: Path) -> None:
    cs = Chainstate(tmp_path / "cs", REGTEST)
    try:
        assert cs.utxo_commitment().hex() == SPEC_VECTORS["regtest-genesis-utxo-commitment"]
    finally:
        cs.close()


# --------------------------------------------------------------------------------------
# consensus.md §1 and encoding.md §1.4, §2: parameters, constants, tags
# --------------------------------------------------------------------------------------


def _network_value(field: str, text: str) -> object:
    if field == "magic":
        return bytes.fromhex(text)
    if field == "genesis_message":
        return text.encode()
    if field == "hrp":
        return text
    if field == "no_retarget":
        return {"true": True, "false": False}[text]
    return parse_int(text)


def test_network_parameters() -> None:
    rows = table(CONSENSUS, "networks")
    nets = (MAINNET, TESTNET, REGTEST)
    fields = []
    for row in rows:
        field = code(row[0])
        fields.append(field)
        for params, cell in zip(nets, row[1:], strict=True):
            assert getattr(params, field) == _network_value(field, code(cell)), (
                f"consensus.md §1.1: {field} of {params.name}"
            )
    assert len(fields) == len(set(fields)) >= 9


@pytest.mark.parametrize(("text", "name"), [(CONSENSUS, "constants"), (ENCODING, "limits")])
def test_constants(text: str, name: str) -> None:
    for row in table(text, name):
        constant, value, module = code(row[0]), code(row[1]), code(row[2])
        actual = getattr(importlib.import_module(module), constant)
        assert actual == parse_int(value), f"{name}: {module}.{constant}"


def test_hash_tags() -> None:
    rows = {code(row[0]): code(row[1]) for row in table(ENCODING, "tags")}
    in_code = {k: v for k, v in vars(hashing).items() if k.startswith("TAG_")}
    assert rows == in_code, "encoding.md §2 must list exactly the tags of chain/hashing.py"


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
    specs = {"consensus": sections(CONSENSUS), "encoding": sections(ENCODING)}
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
