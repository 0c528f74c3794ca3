"""A wallet over a node's RPC: addresses, scanning, balance, history, sending.

The wallet keeps no copy of the chain. It derives its addresses (``wallet.keys``) and
asks the node what happened to them (``/address/{a}/coins``, ``/history``,
``/unconfirmed``); so a wallet restored from its mnemonic into a fresh data directory
gets its balance and history back by scanning. The pipeline of a payment:

1. **Discover** (:meth:`Wallet.scan`): derive receive (``…/0/i``) and change (``…/1/i``)
   addresses until ``GAP_LIMIT`` (20) in a row have never been used, as BIP44 wallets do.
2. **Select** (``wallet.coinselect``): confirmed, mature coins not already spent in the
   mempool; branch-and-bound for a changeless payment, else a fallback with change; no
   dust outputs.
3. **Guard the fee** (:func:`fee_guard`): a fee that is both far above what the node
   asks and large against the payment is refused unless forced, before anything is signed.
4. **Build and sign**: a transfer with the payment and the change (to a fresh change
   address), inputs and outputs in random order; every input signed with BIP340 over the
   transaction's sighash (``chain.sighash``, ``chain.producer.sign_transaction``).
5. **Submit** (``POST /tx``): the node's mempool checks it like any other.

``node`` is anything with ``get(path, **params)`` and ``post(path, body)`` returning JSON
(``fc``'s RPC client, or a test double); errors from it propagate.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from chain.amounts import COIN, format_amount
from chain.params import ChainParams
from chain.policy import DEFAULT_DUST_RELAY_FEE, DEFAULT_MIN_RELAY_FEE, dust_threshold, fee_for
from chain.producer import sign_transaction
from chain.transaction import NO_SIGNATURE, OutPoint, Transaction, TxIn, TxKind, TxOut
from wallet.address import decode_address, encode_address
from wallet.coinselect import Candidate, Selection, SizeModel, select_coins
from wallet.keys import CHANGE, GAP_LIMIT, RECEIVE, Account
from wallet.keystore import Keystore

TX_VERSION = 1
# Upper bounds of encoded sizes (msgpack, chain/transaction.py): an input is
# [txid bin32, vout ≤ u32, signature bin64] ≤ 106 bytes; an output [amount ≤ u64,
# pubkey bin32] ≤ 44; the envelope ≤ 10 with 16-bit array headers. Fees are computed on
# these, so the fee rate paid is never below the one asked for.
SIZES = SizeModel(base=10 + 44, input=106, change_output=44, change_spend=106)

# The fee guard (specs/wallet.md §4): a fee is refused, unless forced, when it is more than
# FEE_GUARD_MULTIPLE times what the node's rate asks of the same size AND either more than
# 1/FEE_GUARD_SHARE of the amount or more than FEE_GUARD_CAP.
FEE_GUARD_MULTIPLE = 10
FEE_GUARD_SHARE = 10  # 10 % of the amount
FEE_GUARD_CAP = COIN  # 1 FC


def fee_guard(fee: int, amount: int, size: int, node_rate: int) -> str | None:
    """Why ``fee`` for ``size`` bytes paying ``amount`` is too high, or None when it is
    sane. ``node_rate`` (units per 1,000 bytes) is what the node asks now: its estimate,
    never below its floor or the minimum relay fee."""
    usual = fee_for(node_rate, size)
    if fee <= FEE_GUARD_MULTIPLE * usual:
        return None
    if fee * FEE_GUARD_SHARE <= amount and fee <= FEE_GUARD_CAP:
        return None
    large = (
        f"more than {100 // FEE_GUARD_SHARE}% of the amount"
        if fee * FEE_GUARD_SHARE > amount
        else f"more than {format_amount(FEE_GUARD_CAP)} FC"
    )
    return (
        f"fee {format_amount(fee)} FC to send {format_amount(amount)} FC is {large} and more "
        f"than {FEE_GUARD_MULTIPLE}x the {format_amount(usual)} FC the node's rate asks "
        f"({node_rate} units per 1,000 bytes); lower --fee-rate or pass --force to pay it"
    )


class NodeApi(Protocol):
    def get(self, path: str, **params: Any) -> Any: ...

    def post(self, path: str, body: dict[str, Any]) -> Any: ...


class WalletError(ValueError):
    """A request the wallet cannot carry out; the message says why."""


@dataclass(frozen=True)
class OwnedCoin:
    outpoint: OutPoint
    amount: int
    pubkey: bytes
    height: int
    coinbase: bool
    mature: bool
    spent_in_mempool: bool


@dataclass
class Balance:
    confirmed: int = 0  # confirmed, mature, not spent by a pooled transaction
    unconfirmed: int = 0  # pooled outputs to us (change included) not spent again
    immature: int = 0  # coinbase outputs younger than the maturity


@dataclass
class HistoryItem:
    txid: str
    height: int | None  # None while in the mempool
    received: int = 0
    sent: int = 0  # our coins this transaction spent

    @property
    def net(self) -> int:
        return self.received - self.sent


@dataclass
class SendResult:
    txid: str
    amount: int  # what the recipient gets
    fee: int
    change: int
    inputs: int
    fee_rate: int  # used, units per 1,000 bytes (the unit of --fee-rate and the node)
    algorithm: str
    hex: str


@dataclass
class Wallet:
    keystore: Keystore
    params: ChainParams
    node: NodeApi
    account: Account = field(init=False)
    known: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # pubkey -> (branch, i)

    def __post_init__(self) -> None:
        self.account = Account.from_xpub(self.keystore.xpub, self.params)

    # -- addresses -------------------------------------------------------------------------------
    def address_at(self, branch: int, index: int) -> str:
        pubkey = self.account.pubkey(branch, index)
        self.known[pubkey] = (branch, index)
        return encode_address(pubkey, self.params)

    def _used(self, address: str) -> bool:
        history = self.node.get(f"/address/{address}/history", limit=1)
        if history["entries"]:
            return True
        return bool(self.node.get(f"/address/{address}/unconfirmed")["received"])

    def scan(self) -> dict[str, int]:
        """Find the used addresses of both branches (gap limit 20); remember how far they
        go so fresh addresses come after them. Returns the next unused index per branch."""
        found = {}
        for branch, name in ((RECEIVE, "next_receive"), (CHANGE, "next_change")):
            index, last_used = 0, -1
            while index - last_used <= GAP_LIMIT:
                if self._used(self.address_at(branch, index)):
                    last_used = index
                index += 1
            found[name] = last_used + 1
        self.keystore.save_state(**found)
        return found

    def _all_addresses(self) -> list[str]:
        """Every address up to the recorded indices plus the gap, on both branches."""
        out = []
        for branch, name in ((RECEIVE, "next_receive"), (CHANGE, "next_change")):
            for index in range(self.keystore.state[name] + GAP_LIMIT):
                out.append(self.address_at(branch, index))
        return out

    def receive_address(self, new: bool = False) -> str:
        """The first receive address never paid (``new``: hand out a fresh one after it).
        An address that received coins since the last look is skipped, so a payer is never
        sent to an address already on chain."""
        index = self.keystore.state["next_receive"]
        while self._used(self.address_at(RECEIVE, index)):
            index += 1
        if new:
            index += 1
        if index != self.keystore.state["next_receive"]:
            self.keystore.save_state(next_receive=index)
        return self.address_at(RECEIVE, index)

    # -- what we own -------------------------------------------------------------------------------
    def coins(self) -> list[OwnedCoin]:
        owned = []
        for address in self._all_addresses():
            data = self.node.get(f"/address/{address}/coins", limit=10_000)
            pubkey = decode_address(address, self.params)
            for c in data["coins"]:
                owned.append(
                    OwnedCoin(
                        OutPoint(bytes.fromhex(c["txid"]), c["vout"]),
                        c["amount"],
                        pubkey,
                        c["height"],
                        c["coinbase"],
                        c["mature"],
                        c["spent_in_mempool"] is not None,
                    )
                )
        return owned

    def balance(self) -> Balance:
        balance = Balance()
        for coin in self.coins():
            if coin.spent_in_mempool:
                continue
            if not coin.mature:
                balance.immature += coin.amount
            else:
                balance.confirmed += coin.amount
        for address in self._all_addresses():
            pending = self.node.get(f"/address/{address}/unconfirmed")
            spent = {(s["prev_txid"], s["prev_vout"]) for s in pending["spent"]}
            for out in pending["received"]:
                if (out["txid"], out["vout"]) not in spent:
                    balance.unconfirmed += out["amount"]
        return balance

    def history(self) -> list[HistoryItem]:
        """Our transactions, newest first: what each paid us and what it spent of ours."""
        items: dict[str, HistoryItem] = {}
        for address in self._all_addresses():
            cursor = None
            while True:
                page = self.node.get(f"/address/{address}/history", limit=1000, cursor=cursor)
                for e in page["entries"]:
                    item = items.setdefault(e["txid"], HistoryItem(e["txid"], e["height"]))
                    if e["direction"] == "received":
                        item.received += e["amount"]
                    else:
                        item.sent += e["amount"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            pending = self.node.get(f"/address/{address}/unconfirmed")
            for out in pending["received"]:
                items.setdefault(out["txid"], HistoryItem(out["txid"], None)).received += out[
                    "amount"
                ]
            for s in pending["spent"]:
                item = items.setdefault(s["txid"], HistoryItem(s["txid"], None))
                item.sent += self._amount_of(s["prev_txid"], s["prev_vout"])
        return sorted(
            items.values(), key=lambda i: (i.height is not None, -(i.height or 0), i.txid)
        )

    def _amount_of(self, txid: str, vout: int) -> int:
        return int(self.node.get(f"/tx/{txid}")["outputs"][vout]["amount"])

    # -- sending -------------------------------------------------------------------------------
    def node_fee_rate(self) -> int:
        """What the node asks now, units per 1,000 bytes: its estimate, never below its
        mempool floor or the minimum relay fee."""
        estimate = self.node.get("/fees/estimate")
        floor = int(estimate.get("min_fee_rate", 0))
        return max(int(estimate["fee_rate"]), floor, DEFAULT_MIN_RELAY_FEE)

    def send(
        self,
        address: str,
        amount: int,
        passphrase: str,
        fee_rate: int | None = None,
        subtract_fee: bool = False,
        force: bool = False,
    ) -> SendResult:
        """Pay ``amount`` units to ``address`` at ``fee_rate`` units per 1,000 bytes (the
        node's estimate when None); returns what was submitted. A fee :func:`fee_guard`
        refuses raises :class:`WalletError` before anything is signed, unless ``force``."""
        recipient = decode_address(address, self.params)
        if self.keystore.watch_only:
            raise WalletError("a watch-only wallet cannot send: it holds no keys")
        secret = self.keystore.unlock(passphrase)  # before any query: a wrong one costs nothing
        signer = Account.from_seed(secret.seed, self.params)
        node_rate = self.node_fee_rate()
        rate = fee_rate if fee_rate is not None else node_rate
        rate = max(rate, DEFAULT_MIN_RELAY_FEE)
        spendable = {
            c.outpoint.key(): c for c in self.coins() if c.mature and not c.spent_in_mempool
        }
        selection: Selection = select_coins(
            [Candidate(k, c.amount) for k, c in spendable.items()],
            amount,
            rate,
            SIZES,
            dust_limit=dust_threshold(DEFAULT_DUST_RELAY_FEE),
            subtract_fee=subtract_fee,
        )
        size = SIZES.base + len(selection.inputs) * SIZES.input
        if selection.change:
            size += SIZES.change_output
        refusal = fee_guard(selection.fee, amount, size, node_rate)
        if refusal is not None and not force:
            raise WalletError(refusal)
        chosen = [spendable[c.key] for c in selection.inputs]
        secrets.SystemRandom().shuffle(chosen)  # the order says nothing about selection
        paid = selection.payment
        outputs = [TxOut(paid, recipient)]
        change_index = self.keystore.state["next_change"]
        if selection.change:
            change_key = self.account.pubkey(CHANGE, change_index)
            outputs.insert(secrets.randbelow(2), TxOut(selection.change, change_key))
        unsigned = Transaction(
            TX_VERSION,
            TxKind.TRANSFER,
            tuple(TxIn(c.outpoint, NO_SIGNATURE) for c in chosen),
            tuple(outputs),
            [],
        )
        keys = [signer.secret(*self.known[c.pubkey]) for c in chosen]
        spent = [TxOut(c.amount, c.pubkey) for c in chosen]
        tx = sign_transaction(unsigned, keys, spent, self.params)
        self.node.post("/tx", {"hex": tx.encoded.hex()})
        if selection.change:
            self.keystore.save_state(next_change=change_index + 1)
        return SendResult(
            tx.txid.hex(),
            paid,
            sum(s.amount for s in spent) - sum(o.amount for o in outputs),
            selection.change,
            len(chosen),
            rate,
            selection.algorithm,
            tx.encoded.hex(),
        )
