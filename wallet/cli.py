"""``fc wallet ...``: what a holder types (specs/wallet.md §5).

    fc wallet create [--words 12|24] [--watch XPUB]     a new wallet (prints its mnemonic once)
    fc wallet restore                                    from a mnemonic (+ BIP39 passphrase)
    fc wallet rescan                                     find used addresses again (gap 20)
    fc wallet address [--new]                            where to be paid
    fc wallet balance                                    confirmed, unconfirmed, immature
    fc wallet send ADDRESS AMOUNT [--fee-rate R] [--subtract-fee] [--force]
    fc wallet history
    fc wallet xpub [--path PATH]                         xpub on mainnet, tpub elsewhere

``--wallet NAME`` (default ``default``) picks ``DATADIR/wallets/NAME.wallet``. Every
secret a command needs has a non-interactive form for scripts: ``--passphrase-file F``
or ``--passphrase-stdin`` for the wallet passphrase, ``--mnemonic-file F`` or
``--mnemonic-stdin`` for a mnemonic, ``--bip39-passphrase-file F``; otherwise ``fc``
prompts with input hidden. Amounts are exact decimal strings of FC; fee rates are whole
units per 1,000 bytes, as the node reports them. ``--json`` everywhere; failures are one
line on stderr and exit status 1.

The node is reached through the ``fc`` settings object (``ctx.obj.node()``), so this
module needs nothing of ``node/``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from chain.amounts import format_amount
from chain.params import NETWORKS, ChainParams
from wallet.address import AddressError
from wallet.amounts import AmountError, parse_amount, parse_fee_rate_kb
from wallet.coinselect import InsufficientFunds
from wallet.keys import (
    Account,
    WalletKeyError,
    new_mnemonic,
    normalise_mnemonic,
    seed_from_mnemonic,
)
from wallet.keystore import Keystore, KeystoreError, Secret
from wallet.wallet import Wallet, WalletError

ERRORS = (KeystoreError, WalletKeyError, AmountError, AddressError, InsufficientFunds, WalletError)


def fail(message: str) -> NoReturn:
    click.echo(f"fc: error: {message}", err=True)
    raise SystemExit(1)


def _settings(ctx: click.Context) -> Any:
    return ctx.find_root().obj


def _params(ctx: click.Context) -> ChainParams:
    return NETWORKS[_settings(ctx).network]


def _path(ctx: click.Context) -> Path:
    name = ctx.find_object(WalletName).name  # type: ignore[union-attr]
    return _settings(ctx).resolve_datadir() / "wallets" / f"{name}.wallet"


class WalletName:
    def __init__(self, name: str) -> None:
        self.name = name


def _read_secret(file: Path | None, stdin: bool, prompt: str, confirm: bool = False) -> str:
    if file is not None:
        try:
            lines = file.read_text().splitlines()
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}")
        return lines[0] if lines else ""
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True))


def _output(
    ctx: click.Context, data: dict[str, Any], title: str, rows: list[tuple[str, Any]]
) -> None:
    if _settings(ctx).as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)


def _open(ctx: click.Context) -> Wallet:
    keystore = Keystore.load(_path(ctx))
    params = _params(ctx)
    if keystore.network != params.name:
        fail(f"wallet {_path(ctx).name} is a {keystore.network} wallet, not {params.name}")
    return Wallet(keystore, params, _settings(ctx).node())


def handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the wallet's own errors into ``fc``'s one line on stderr and exit status 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ERRORS as exc:
            fail(str(exc))

    return run


passphrase_options = [
    click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--passphrase-stdin", is_flag=True, help="read the passphrase from stdin"),
]


def with_passphrase(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(passphrase_options):
        command = option(command)
    return command


@click.group()
@click.option("--wallet", "name", default="default", show_default=True, envvar="FC_WALLET")
@click.pass_context
def wallet(ctx: click.Context, name: str) -> None:
    """Keys, addresses, balance and payments (a keystore in DATADIR/wallets)."""
    if not name.replace("-", "").replace("_", "").isalnum():
        fail(f"wallet name {name!r}: letters, digits, - and _ only")
    ctx.obj = WalletName(name)


@wallet.command("create")
@click.option("--words", type=click.Choice(["12", "24"]), default="24", show_default=True)
@click.option("--watch", "xpub", metavar="XPUB", help="a watch-only wallet from an account xpub")
@with_passphrase
@click.pass_context
@handles_errors
def create(
    ctx: click.Context,
    words: str,
    xpub: str | None,
    passphrase_file: Path | None,
    passphrase_stdin: bool,
) -> None:
    """Create a wallet; write the mnemonic down, it is shown only now."""
    params, path = _params(ctx), _path(ctx)
    if xpub is not None:
        account = Account.from_xpub(xpub, params)
        Keystore.create_watch_only(path, params.name, account.account_xpub())
        _output(
            ctx,
            {"wallet": str(path), "watch_only": True, "xpub": xpub},
            "watch-only wallet",
            [("file", path), ("xpub", xpub)],
        )
        return
    if path.exists():
        fail(f"a wallet already exists at {path}; choose another --wallet name")
    mnemonic = new_mnemonic(int(words))
    passphrase = _read_secret(
        passphrase_file, passphrase_stdin, "New wallet passphrase", confirm=True
    )
    _store_seed(ctx, mnemonic, "", passphrase)
    account = Account.from_xpub(Keystore.load(path).xpub, params)
    data = {
        "wallet": str(path),
        "network": params.name,
        "mnemonic": mnemonic,
        "xpub": account.account_xpub(),
    }
    _output(
        ctx,
        data,
        "new wallet: write the mnemonic down now, it will not be shown again",
        [("file", path), ("mnemonic", mnemonic), ("xpub", account.account_xpub())],
    )


def _store_seed(ctx: click.Context, mnemonic: str, bip39: str, passphrase: str) -> None:
    params = _params(ctx)
    seed = seed_from_mnemonic(mnemonic, bip39)
    account = Account.from_seed(seed, params)
    Keystore.create_seed(
        _path(ctx), params.name, account.account_xpub(), Secret(mnemonic, bip39, seed), passphrase
    )


@wallet.command("restore")
@click.option("--mnemonic-file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mnemonic-stdin", is_flag=True)
@click.option("--bip39-passphrase-file", type=click.Path(dir_okay=False, path_type=Path))
@with_passphrase
@click.option("--no-rescan", is_flag=True, help="do not ask the node for history now")
@click.pass_context
@handles_errors
def restore(
    ctx: click.Context,
    mnemonic_file: Path | None,
    mnemonic_stdin: bool,
    bip39_passphrase_file: Path | None,
    passphrase_file: Path | None,
    passphrase_stdin: bool,
    no_rescan: bool,
) -> None:
    """Restore a wallet from its mnemonic, then rescan the chain for its coins."""
    if mnemonic_stdin and passphrase_stdin:
        fail("only one secret can come from stdin; use --passphrase-file for the other")
    if _path(ctx).exists():
        fail(f"a wallet already exists at {_path(ctx)}; choose another --wallet name")
    mnemonic = normalise_mnemonic(_read_secret(mnemonic_file, mnemonic_stdin, "Mnemonic"))
    bip39 = ""
    if bip39_passphrase_file is not None:
        bip39 = _read_secret(bip39_passphrase_file, False, "")
    passphrase = _read_secret(
        passphrase_file, passphrase_stdin, "New wallet passphrase", confirm=True
    )
    _store_seed(ctx, mnemonic, bip39, passphrase)
    found = {} if no_rescan else _open(ctx).scan()
    _output(
        ctx,
        {"wallet": str(_path(ctx)), **found},
        "restored",
        [("file", _path(ctx)), *found.items()],
    )


@wallet.command("rescan")
@click.pass_context
@handles_errors
def rescan(ctx: click.Context) -> None:
    """Find the wallet's used addresses again (gap limit 20)."""
    found = _open(ctx).scan()
    _output(ctx, found, "rescan", list(found.items()))


@wallet.command("address")
@click.option("--new", is_flag=True, help="hand out a fresh address")
@click.pass_context
@handles_errors
def address(ctx: click.Context, new: bool) -> None:
    """An address to be paid at."""
    text = _open(ctx).receive_address(new)
    _output(ctx, {"address": text}, "address", [("address", text)])


@wallet.command("balance")
@click.pass_context
@handles_errors
def balance(ctx: click.Context) -> None:
    """Confirmed (spendable), unconfirmed (in the mempool) and immature (young coinbase)."""
    b = _open(ctx).balance()
    data = {
        "confirmed": b.confirmed,
        "unconfirmed": b.unconfirmed,
        "immature": b.immature,
        "confirmed_fc": format_amount(b.confirmed),
        "unconfirmed_fc": format_amount(b.unconfirmed),
        "immature_fc": format_amount(b.immature),
    }
    _output(
        ctx,
        data,
        "balance (FC)",
        [(k, format_amount(getattr(b, k))) for k in ("confirmed", "unconfirmed", "immature")],
    )


@wallet.command("send")
@click.argument("address")
@click.argument("amount")
@click.option(
    "--fee-rate",
    metavar="R",
    help="units per 1,000 bytes, e.g. 1000 (default: the node's estimate)",
)
@click.option("--subtract-fee", is_flag=True, help="the recipient pays the fee out of AMOUNT")
@click.option(
    "--force", is_flag=True, help="pay a fee the guard refuses (far above the node's estimate)"
)
@with_passphrase
@click.pass_context
@handles_errors
def send(
    ctx: click.Context,
    address: str,
    amount: str,
    fee_rate: str | None,
    subtract_fee: bool,
    force: bool,
    passphrase_file: Path | None,
    passphrase_stdin: bool,
) -> None:
    """Pay AMOUNT FC (an exact decimal, e.g. 0.25) to ADDRESS.

    A fee more than 10x what the node asks and more than 10% of AMOUNT (or 1 FC) is
    refused unless --force is given."""
    units = parse_amount(amount)
    rate = None if fee_rate is None else parse_fee_rate_kb(fee_rate)
    w = _open(ctx)
    if w.keystore.watch_only:
        fail("a watch-only wallet cannot send: it holds no keys")
    passphrase = _read_secret(passphrase_file, passphrase_stdin, "Wallet passphrase")
    result = w.send(address, units, passphrase, rate, subtract_fee, force)
    data = {
        "txid": result.txid,
        "amount": result.amount,
        "fee": result.fee,
        "change": result.change,
        "inputs": result.inputs,
        "fee_rate": result.fee_rate,
        "coin_selection": result.algorithm,
    }
    _output(
        ctx,
        data,
        "sent",
        [
            ("txid", result.txid),
            ("amount", format_amount(result.amount)),
            ("fee", format_amount(result.fee)),
            ("change", format_amount(result.change)),
            ("inputs", result.inputs),
            ("fee rate", f"{result.fee_rate} units/kB"),
            ("coin selection", result.algorithm),
        ],
    )


@wallet.command("history")
@click.pass_context
@handles_errors
def history(ctx: click.Context) -> None:
    """The wallet's transactions, newest first (mempool first of all)."""
    items = _open(ctx).history()
    data = [
        {"txid": i.txid, "height": i.height, "received": i.received, "sent": i.sent, "net": i.net}
        for i in items
    ]
    if _settings(ctx).as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(title="history", title_justify="left")
    for column in ("height", "txid", "net FC"):
        table.add_column(column, overflow="fold")
    for i in items:
        sign = "+" if i.net >= 0 else "-"
        table.add_row(
            "mempool" if i.height is None else str(i.height),
            i.txid,
            sign + format_amount(abs(i.net)),
        )
    Console().print(table)


@wallet.command("xpub")
@click.option("--path", help="a BIP32 path from the root, e.g. m/86h/1h/0h (needs the passphrase)")
@with_passphrase
@click.pass_context
@handles_errors
def xpub(
    ctx: click.Context, path: str | None, passphrase_file: Path | None, passphrase_stdin: bool
) -> None:
    """The account's extended public key (xpub on mainnet, tpub elsewhere)."""
    w = _open(ctx)
    if path is None:
        text = w.account.account_xpub()
    else:
        if w.keystore.watch_only:
            fail("a watch-only wallet knows only its account key; omit --path")
        secret = w.keystore.unlock(
            _read_secret(passphrase_file, passphrase_stdin, "Wallet passphrase")
        )
        text = Account.from_seed(secret.seed, w.params).xpub(path)
    _output(ctx, {"xpub": text, "path": path}, "xpub", [("xpub", text)])
