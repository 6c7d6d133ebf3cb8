"""Payout addresses: BIP 173 / BIP 350 test vectors and real addresses, per network."""

from __future__ import annotations

import pytest

from heatgrid.core.errors import InputError
from heatgrid.mining.addresses import check_address

_VALID = [
    # The genesis block's coinbase address (P2PKH) and a well-known P2SH address.
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "mainnet", "p2pkh"),
    ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "mainnet", "p2sh"),
    # BIP 173 vectors (upper case is valid too; stored lower case).
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "mainnet", "p2wpkh"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "testnet", "p2wsh"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "signet", "p2wsh"),
    # BIP 350 vectors: Taproot and a future witness version, both bech32m.
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", "mainnet", "p2tr"),
    ("BC1SW50QGDZ25J", "mainnet", "witness_v16"),
    # A testnet P2PKH (version byte 111).
    ("mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", "testnet", "p2pkh"),
    ("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", "regtest", "p2wpkh"),
]


@pytest.mark.parametrize(("address", "network", "kind"), _VALID)
def test_valid_addresses_are_accepted_with_their_kind(
    address: str, network: str, kind: str
) -> None:
    checked = check_address(address, network)
    assert checked.kind == kind
    assert checked.network == network
    assert checked.address.lower() == address.lower()


_INVALID = [
    # A typing error in the last character of a valid address.
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "mainnet", "bad checksum"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "mainnet", "Checksum mismatch"),
    # BIP 350: version 1 with the old bech32 checksum, version 0 with bech32m.
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx",
        "mainnet",
        "bad checksum",
    ),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", "mainnet", "bad checksum"),
    # Another network's addresses.
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "mainnet", "testnet"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "testnet", "a mainnet address"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", "regtest", "mainnet"),
    # Mixed case, characters outside the alphabets, nonsense.
    ("bc1qW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "mainnet", "mixed upper and lower case"),
    ("bc1qb508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "mainnet", "alphabet"),
    ("0xdeadbeef", "mainnet", "not a Bitcoin address"),
    ("", "mainnet", "empty"),
    ("1" * 91, "mainnet", "at most 90"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "litecoin", "network must be one of"),
]


@pytest.mark.parametrize(("address", "network", "message"), _INVALID)
def test_invalid_addresses_are_refused_with_a_message(
    address: str, network: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        check_address(address, network)
