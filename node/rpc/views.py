"""Ledger objects as API values: hex for bytes, integer units plus exact FC strings.

Pure functions from ``chain`` types to the models of ``node.rpc.schemas``; no I/O, so
handlers may call them from a worker thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from chain.amounts import format_amount
from chain.block import BlockHeader
from chain.lottery import decode_tokens
from chain.params import ChainParams
from chain.transaction import Transaction, TxKind
from node.rpc import schemas
from wallet.address import encode_address

KIND_NAMES = {TxKind.TRANSFER: "transfer", TxKind.COINBASE: "coinbase"}


def kind_name(kind: int) -> str:
    return KIND_NAMES.get(kind, f"kind-{kind}")


def jsonable(value: Any) -> Any:
    """Bytes as hex, containers recursively, anything else unknown as ``str``."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value  # peers' own statistics (latency); never an amount
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def header_view(header: BlockHeader) -> schemas.Header:
    work = header.work
    return schemas.Header(
        version=header.version,
        prev_hash=header.prev_hash.hex(),
        merkle_root=header.merkle_root.hex(),
        benefit_root=header.benefit_root.hex(),
        time=header.time,
        target=target_hex(header.target),
        height=header.height,
        work=schemas.Work(
            worker_key=work.worker_key.hex(),
            counter=work.counter,
            tokens=decode_tokens(work.tokens),
        ),
        producer_sig=header.producer_sig.hex(),
    )


def target_hex(target: int) -> str:
    return target.to_bytes(32, "big").hex()


def tx_fields(tx: Transaction, params: ChainParams) -> dict[str, Any]:
    """The fields of :class:`schemas.TxView` (shared with :class:`schemas.TxInfo`)."""
    total = sum(out.amount for out in tx.outputs)
    return {
        "txid": tx.txid.hex(),
        "wtxid": tx.wtxid.hex(),
        "version": tx.version,
        "kind": kind_name(tx.kind),
        "size": tx.size,
        "inputs": [
            schemas.TxInput(
                txid=i.prevout.txid.hex(), vout=i.prevout.vout, signature=i.signature.hex()
            )
            for i in tx.inputs
        ],
        "outputs": [
            schemas.TxOutput(
                n=n,
                amount=out.amount,
                amount_fc=format_amount(out.amount),
                pubkey=out.pubkey.hex(),
                address=encode_address(out.pubkey, params),
            )
            for n, out in enumerate(tx.outputs)
        ],
        "payload": jsonable(tx.payload),
        "output_total": total,
        "output_total_fc": format_amount(total),
    }


def tx_view(tx: Transaction, params: ChainParams) -> schemas.TxView:
    return schemas.TxView(**tx_fields(tx, params))


def amount_fields(name: str, units: int | None) -> dict[str, Any]:
    """``{name: units, name_fc: "x.xxxxxxxx"}`` (both None when unknown)."""
    return {name: units, f"{name}_fc": None if units is None else format_amount(units)}
