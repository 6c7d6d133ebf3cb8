"""Bitcoin payout addresses, checked for one network with python-bitcoinlib's codecs.

Base58 addresses (P2PKH, P2SH) are decoded and checksummed by ``bitcoin.base58.CBase58Data``
and their version byte compared with the network's prefixes; SegWit addresses are decoded with
``bitcoin.segwit_addr``'s bech32 primitives: version 0 with the bech32 checksum (BIP 173),
versions 1 to 16 (Taproot and later) with the bech32m checksum (BIP 350), which
python-bitcoinlib 0.12 does not check itself. The network's parameters are read from the
library's parameter classes, never from its global ``SelectParams``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bitcoin import MainParams, RegTestParams, SigNetParams, TestNetParams
from bitcoin.base58 import Base58Error, CBase58Data
from bitcoin.segwit_addr import CHARSET, bech32_hrp_expand, bech32_polymod, convertbits

from heatgrid.core.errors import InputError

__all__ = ["NETWORKS", "PayoutAddress", "check_address"]

_PARAMS: Final = {
    "mainnet": MainParams,
    "testnet": TestNetParams,
    "signet": SigNetParams,
    "regtest": RegTestParams,
}
NETWORKS: Final = tuple(_PARAMS)
"""Networks an address can be checked for."""

_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3
_MAX_LENGTH = 90


@dataclass(frozen=True)
class PayoutAddress:
    """A checked address.

    ``kind`` is ``p2pkh``, ``p2sh``, ``p2wpkh``, ``p2wsh``, ``p2tr`` or ``witness_v<N>``.
    """

    address: str
    network: str
    kind: str


def check_address(address: str, network: str) -> PayoutAddress:
    """Return ``address`` checked for ``network``.

    Raises
    ------
    heatgrid.core.errors.InputError
        With a message naming what is wrong: an unknown network, a bad checksum or character,
        an address of another network, or a witness program of the wrong length.
    """
    if network not in _PARAMS:
        raise InputError(f"network must be one of {', '.join(NETWORKS)}, got {network!r}")
    text = address.strip()
    if not text:
        raise InputError("address: empty")
    if len(text) > _MAX_LENGTH:
        raise InputError(f"address: {len(text)} characters, a Bitcoin address has at most 90")
    hrp = _PARAMS[network].BECH32_HRP
    if text.lower().startswith(tuple(f"{p.BECH32_HRP}1" for p in _PARAMS.values())):
        return _check_segwit(text, network, hrp)
    return _check_base58(text, network)


def _networks_of(predicate: object) -> str:
    names = [name for name, params in _PARAMS.items() if predicate == params.BECH32_HRP]
    return " or ".join(names)


def _check_segwit(text: str, network: str, hrp: str) -> PayoutAddress:
    if text.lower() != text and text.upper() != text:
        raise InputError(f"address {text!r}: mixed upper and lower case")
    lower = text.lower()
    got_hrp, _, data_part = lower.rpartition("1")
    if got_hrp != hrp:
        raise InputError(
            f"address {text!r} is a {_networks_of(got_hrp)} address; "
            f"this coordinator pays on {network} (addresses start with {hrp}1)"
        )
    if len(data_part) < 7 or any(char not in CHARSET for char in data_part):
        raise InputError(f"address {text!r}: not bech32 (a character outside its alphabet)")
    data = [CHARSET.find(char) for char in data_part]
    checksum = bech32_polymod(bech32_hrp_expand(hrp) + data)
    version = data[0]
    want = _BECH32_CONST if version == 0 else _BECH32M_CONST
    if checksum != want:
        raise InputError(f"address {text!r}: bad checksum (a typing error?)")
    program = convertbits(data[1:-6], 5, 8, False)
    if version > 16 or program is None or not 2 <= len(program) <= 40:
        raise InputError(f"address {text!r}: not a valid witness program")
    if version == 0 and len(program) not in (20, 32):
        raise InputError(f"address {text!r}: a version 0 witness program has 20 or 32 bytes")
    if version == 1 and len(program) != 32:
        raise InputError(f"address {text!r}: a Taproot witness program has 32 bytes")
    kinds = {(0, 20): "p2wpkh", (0, 32): "p2wsh", (1, 32): "p2tr"}
    kind = kinds.get((version, len(program)), f"witness_v{version}")
    return PayoutAddress(address=lower, network=network, kind=kind)


def _check_base58(text: str, network: str) -> PayoutAddress:
    try:
        decoded = CBase58Data(text)
    except (Base58Error, ValueError, IndexError) as error:
        raise InputError(
            f"address {text!r}: not a Bitcoin address (base58 or bech32): {error}"
        ) from None
    prefixes = _PARAMS[network].BASE58_PREFIXES
    kinds = {prefixes["PUBKEY_ADDR"]: "p2pkh", prefixes["SCRIPT_ADDR"]: "p2sh"}
    if decoded.nVersion not in kinds:
        others = [
            name
            for name, params in _PARAMS.items()
            if decoded.nVersion
            in (params.BASE58_PREFIXES["PUBKEY_ADDR"], params.BASE58_PREFIXES["SCRIPT_ADDR"])
        ]
        where = f"a {' or '.join(others)} address" if others else "not a Bitcoin address"
        raise InputError(f"address {text!r} is {where}; this coordinator pays on {network}")
    if len(decoded) != 20:
        raise InputError(f"address {text!r}: {len(decoded)} bytes of hash, want 20")
    return PayoutAddress(address=text, network=network, kind=kinds[decoded.nVersion])
