"""What an input's key signs (specs/consensus.md §3.6).

    sighash = H_"fc/sighash"(magic || txid || spent || input_index:u32be)
    spent   = H_"fc/spent-outputs"(pack([[amount, pubkey] of each coin spent, in input order]))

* ``magic`` is the network's 4-byte magic: a transaction signed for testnet is invalid on
  mainnet and regtest, and the other way round.
* ``txid`` covers every field but the signatures (version, kind, all inputs and outputs,
  payload), so a signature commits to the whole transaction.
* ``spent`` commits to the amounts and keys of all coins spent (as BIP341 does), so a
  signer that is told a wrong amount produces a signature that is simply invalid.
* The index binds the signature to one input.
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.encoding import pack
from chain.hashing import TAG_SIGHASH, TAG_SPENT, tagged_hash
from chain.transaction import Transaction, TxOut


def spent_outputs_hash(spent: Sequence[TxOut]) -> bytes:
    return tagged_hash(TAG_SPENT, pack([[o.amount, o.pubkey] for o in spent]))


def sighashes(tx: Transaction, spent: Sequence[TxOut], magic: bytes) -> list[bytes]:
    """One message per input, in input order."""
    prefix = magic + tx.txid + spent_outputs_hash(spent)
    return [tagged_hash(TAG_SIGHASH, prefix + n.to_bytes(4, "big")) for n in range(len(tx.inputs))]
