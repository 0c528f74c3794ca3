"""Wallet keys and amounts: paths, networks, watch-only keys, exact parsing."""

from __future__ import annotations

import pytest

from chain.params import NETWORKS, REGTEST
from chain.schnorr import pubkey_of
from wallet.amounts import AmountError, parse_amount, parse_fee_rate
from wallet.keys import (
    Account,
    WalletKeyError,
    account_path,
    new_mnemonic,
    normalise_mnemonic,
    parse_path,
    seed_from_mnemonic,
)

MAINNET = NETWORKS["mainnet"]
MNEMONIC = "abandon " * 11 + "about"


def test_paths_and_coin_types() -> None:
    assert account_path(MAINNET) == "m/86h/17987h/0h"
    assert account_path(REGTEST) == account_path(NETWORKS["testnet"]) == "m/86h/1h/0h"
    assert parse_path("m/86'/1h/0H/0/7") == [86 + 2**31, 1 + 2**31, 2**31, 0, 7]
    for bad in ("86h/1", "m/x", "m/2147483648", "m/-1"):
        with pytest.raises(WalletKeyError):
            parse_path(bad)


def test_keys_sign_and_watch_only_derives_the_same_addresses() -> None:
    account = Account.from_seed(seed_from_mnemonic(MNEMONIC), REGTEST)
    watch = Account.from_xpub(account.account_xpub(), REGTEST)
    assert watch.watch_only and not account.watch_only
    for branch, index in ((0, 0), (0, 19), (1, 3)):
        assert pubkey_of(account.secret(branch, index)) == account.pubkey(branch, index)
        assert watch.pubkey(branch, index) == account.pubkey(branch, index)
    assert account.account_xpub().startswith("tpub")
    assert (
        Account.from_seed(seed_from_mnemonic(MNEMONIC), MAINNET).account_xpub().startswith("xpub")
    )
    with pytest.raises(WalletKeyError, match="cannot sign"):
        watch.secret(0, 0)
    assert account.xpub("m/86h/1h/0h") == account.account_xpub()


def test_extended_key_refusals() -> None:
    account = Account.from_seed(seed_from_mnemonic(MNEMONIC), REGTEST)
    with pytest.raises(WalletKeyError, match="another network"):
        Account.from_xpub(account.account_xpub(), MAINNET)
    with pytest.raises(WalletKeyError, match="depth"):
        Account.from_xpub(account.xpub("m/86h/1h"), REGTEST)
    with pytest.raises(WalletKeyError, match="not an extended public key"):
        Account.from_xpub("tpubnonsense", REGTEST)


def test_mnemonics_are_checked_with_reasons() -> None:
    assert len(new_mnemonic(12).split()) == 12 and len(new_mnemonic().split()) == 24
    assert normalise_mnemonic("  Abandon " * 11 + "ABOUT ") == MNEMONIC
    cases = {
        "abandon " * 10 + "about": "has 11",
        "abandon " * 11 + "abuot": "word 12",
        "abandon " * 12: "checksum",
    }
    for text, reason in cases.items():
        with pytest.raises(WalletKeyError, match=reason):
            normalise_mnemonic(text)
    # The BIP39 passphrase changes the seed (a different wallet), the word case does not.
    assert seed_from_mnemonic(MNEMONIC, "x") != seed_from_mnemonic(MNEMONIC)
    assert seed_from_mnemonic(MNEMONIC.upper()) == seed_from_mnemonic(MNEMONIC)


def test_amounts_are_exact() -> None:
    assert parse_amount("0.1") == 10_000_000
    assert parse_amount("0.00000001") == 1
    assert parse_amount("20999999.99999999") == 2_099_999_999_999_999
    assert parse_fee_rate("1.5") == 1500 and parse_fee_rate("2") == 2000
    for bad in ("1e3", "-1", "0", "0.000000001", "nan", "inf", "21000000.00000001", "1,5", ""):
        with pytest.raises(AmountError):
            parse_amount(bad)
    for bad in ("0", "0.0001", "x"):
        with pytest.raises(AmountError):
            parse_fee_rate(bad)
