"""Hardware catalog: the compute devices a heater can be built from, with their power and speed.

The shipped catalog (``heatgrid/core/data/catalog.csv``, package data) lists Bitcoin ASICs from
industrial miners to open-source desk miners and heater products, GPUs and desktop CPUs. Every
row names its source; numbers that are estimates or derived say so in its ``notes``.

Users extend or correct it with their own CSV or TOML file of the same columns: the caller reads
the file and passes its text to :func:`parse_catalog`, then ``load_catalog().merged(user)``.

Power model
-----------
A device runs between ``min_power_w`` (its lowest stable power: an underclocked ASIC, a GPU at
its minimum power limit) and ``max_power_w``, continuously, or only at ``power_levels_w`` where
the firmware offers discrete levels (e.g. eco / standard / super). Zero power means off.
:meth:`Device.hashrate_at_power_ths` assumes hashrate proportional to power, a first-order model:
real ASICs get somewhat *more* efficient when underclocked (lower voltage), so it slightly
underestimates hashrate below ``max_power_w``.
"""

from __future__ import annotations

import csv
import difflib
import io
import itertools
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Literal, TypeAlias, cast, get_args, overload

import numpy as np
from numpy.typing import ArrayLike

from heatgrid.core._arrays import FloatArray, FloatOrArray, checked_array, scalar_or_array
from heatgrid.core.errors import InputError

__all__ = [
    "CATALOG_COLUMNS",
    "DEVICE_KINDS",
    "EFFICIENCY_TOLERANCE",
    "Catalog",
    "Device",
    "DeviceKind",
    "load_catalog",
    "parse_catalog",
]

DeviceKind: TypeAlias = Literal["asic", "gpu", "cpu"]
DEVICE_KINDS: tuple[str, ...] = get_args(DeviceKind)
"""The kinds of compute device."""

CATALOG_COLUMNS: tuple[str, ...] = (
    "name",
    "kind",
    "max_power_w",
    "min_power_w",
    "power_levels_w",
    "hashrate_ths",
    "efficiency_j_per_th",
    "vram_gb",
    "fp16_tflops",
    "fp32_tflops",
    "noise_db",
    "source",
    "notes",
)
"""Columns of a catalog file; ``name``, ``kind``, ``max_power_w`` and ``source`` are required."""

_REQUIRED_COLUMNS = ("name", "kind", "max_power_w", "source")

EFFICIENCY_TOLERANCE = 0.05
"""Largest allowed relative gap between ``efficiency_j_per_th`` and power / hashrate."""

_LEVEL_TOLERANCE_W = 1e-6
_LIST_HINT = "list every device with heatgrid.core.catalog.load_catalog().names()"


class _FieldError(InputError):
    """An :class:`InputError` about one field of a device, so parsers can point at its column."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field_name = field_name
        self.detail = message


@dataclass(frozen=True, kw_only=True)
class Device:
    """One compute device and its ratings.

    Parameters
    ----------
    name : str
        Model name, unique in a catalog (matching ignores case, spaces and punctuation).
    kind : {"asic", "gpu", "cpu"}
        Kind of device.
    max_power_w : float
        Highest electric power, at nameplate settings [W], > 0.
    min_power_w : float
        Lowest stable electric power while computing [W], in (0, max_power_w].
    source : str
        Where the numbers come from: a URL or a document name.
    power_levels_w : tuple of float
        Discrete power levels [W], strictly increasing, from ``min_power_w`` to ``max_power_w``;
        empty if power is continuous between them.
    hashrate_ths : float
        SHA-256 hashrate at ``max_power_w`` [TH/s]; > 0 for an ASIC, 0 otherwise.
    efficiency_j_per_th : float or None
        Energy per terahash at ``max_power_w`` [J/TH]; for an ASIC, within 5 % of
        ``max_power_w / hashrate_ths`` (derived from them when omitted); None otherwise.
    vram_gb : float
        GPU memory [GB], >= 0 (0 for ASICs and CPUs).
    fp16_tflops : float
        Peak dense FP16 tensor throughput with FP32 accumulate, no sparsity [TFLOPS], >= 0.
    fp32_tflops : float
        Peak FP32 throughput [TFLOPS], >= 0 (0 where the vendor publishes none).
    noise_db : float or None
        Sound pressure level at nameplate power [dB(A)], if published.
    notes : str
        How estimated or derived numbers were obtained.
    """

    name: str
    kind: DeviceKind
    max_power_w: float
    min_power_w: float
    source: str
    power_levels_w: tuple[float, ...] = ()
    hashrate_ths: float = 0.0
    efficiency_j_per_th: float | None = None
    vram_gb: float = 0.0
    fp16_tflops: float = 0.0
    fp32_tflops: float = 0.0
    noise_db: float | None = None
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _validate(self)

    @overload
    def hashrate_at_power_ths(self, power_w: float) -> float: ...
    @overload
    def hashrate_at_power_ths(self, power_w: ArrayLike) -> FloatArray: ...
    def hashrate_at_power_ths(self, power_w: ArrayLike) -> FloatOrArray:
        """Return the hashrate at an electric power [TH/s].

        First-order model: ``hashrate_ths · power_w / max_power_w`` (hashrate proportional to
        power). Real ASICs are somewhat more efficient when underclocked, so this slightly
        underestimates hashrate below ``max_power_w``. Non-ASIC devices hash at 0 TH/s.

        Parameters
        ----------
        power_w : float or array_like
            Electric power [W]: 0 (off), or within ``[min_power_w, max_power_w]``; for a device
            with discrete ``power_levels_w``, one of those levels.

        Returns
        -------
        float or numpy.ndarray
            Hashrate [TH/s].

        Raises
        ------
        InputError
            If a power is negative, between 0 and ``min_power_w``, above ``max_power_w``, or not
            one of the device's discrete levels. The arbiter, not this model, decides how to
            reach an average power the hardware cannot hold (on/off cycling).
        """
        power = checked_array("power_w", power_w, minimum=0.0)
        on = power > 0.0
        low = self.min_power_w * (1.0 - 1e-12)
        high = self.max_power_w * (1.0 + 1e-12)
        outside = on & ((power < low) | (power > high))
        if bool(np.any(outside)):
            bad = float(power[outside].flat[0])
            raise InputError(
                f"power_w {bad!r} is outside the range of {self.name!r}: 0 (off) or "
                f"{self.min_power_w:g} to {self.max_power_w:g} W"
            )
        if self.power_levels_w:
            levels = np.asarray(self.power_levels_w, dtype=np.float64)
            near = np.abs(power[..., np.newaxis] - levels) <= _LEVEL_TOLERANCE_W
            off_level = on & ~np.any(near, axis=-1)
            if bool(np.any(off_level)):
                bad = float(power[off_level].flat[0])
                shown = ", ".join(f"{level:g}" for level in self.power_levels_w)
                raise InputError(
                    f"power_w {bad!r} is not a power level of {self.name!r}; levels: 0 (off), "
                    f"{shown} W"
                )
        return scalar_or_array(self.hashrate_ths * power / self.max_power_w)


@dataclass(frozen=True)
class Catalog:
    """An immutable collection of devices with forgiving lookup by name.

    Parameters
    ----------
    devices : tuple of Device
        The devices; names must be unique after normalisation (case, spaces, punctuation).
    """

    devices: tuple[Device, ...]
    _by_key: Mapping[str, Device] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "devices", tuple(self.devices))
        by_key: dict[str, Device] = {}
        for device in self.devices:
            key = _normalise(device.name)
            if key in by_key:
                raise InputError(
                    f"device names {by_key[key].name!r} and {device.name!r} are the same after "
                    "ignoring case, spaces and punctuation"
                )
            by_key[key] = device
        object.__setattr__(self, "_by_key", by_key)

    def __iter__(self) -> Iterator[Device]:
        return iter(self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _normalise(name) in self._by_key

    def names(self) -> tuple[str, ...]:
        """Return the device names, in catalog order."""
        return tuple(device.name for device in self.devices)

    def of_kind(self, kind: DeviceKind) -> tuple[Device, ...]:
        """Return the devices of one kind (``"asic"``, ``"gpu"`` or ``"cpu"``)."""
        if kind not in DEVICE_KINDS:
            raise InputError(f"kind must be one of {', '.join(DEVICE_KINDS)}, got {kind!r}")
        return tuple(device for device in self.devices if device.kind == kind)

    def find(self, name: str, *, list_hint: str = _LIST_HINT) -> Device:
        """Return the device called ``name``, ignoring case, spaces and punctuation.

        If no name matches exactly, a name that uniquely ends with the query (``"S9"`` →
        "Antminer S9") or uniquely contains it (``"rtx 4090"`` → "GeForce RTX 4090") matches.
        A query that matches nothing is tried again without a leading vendor name, as drivers
        report their boards (``"NVIDIA H200"`` → "H200 SXM").

        Parameters
        ----------
        name : str
            Device name as a person would type it.
        list_hint : str
            How the caller's user lists every device; ends the error message.

        Returns
        -------
        Device
            The matching device.

        Raises
        ------
        InputError
            If nothing matches, or several devices do; the message lists close matches.
        """
        key = _normalise(name)
        if not key:
            raise InputError(f"device name must contain letters or digits, got {name!r}")
        vendorless = [key[len(v) :] for v in _VENDORS if key.startswith(v) and key != v]
        for query in (key, *vendorless):
            found = self._match(query, name, list_hint)
            if found is not None:
                return found
        close = difflib.get_close_matches(key, list(self._by_key), n=5, cutoff=0.5)
        suggestion = (
            "did you mean " + ", ".join(repr(self._by_key[k].name) for k in close) + "? "
            if close
            else ""
        )
        raise InputError(f"unknown device {name!r}; {suggestion}{list_hint}")

    def _match(self, key: str, name: str, list_hint: str) -> Device | None:
        """Return the device keyed ``key``, else the one whose key ends with or holds it."""
        exact = self._by_key.get(key)
        if exact is not None:
            return exact
        for test in (str.endswith, str.__contains__):
            hits = [device for k, device in self._by_key.items() if test(k, key)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                shown = ", ".join(repr(device.name) for device in hits[:8])
                raise InputError(
                    f"device name {name!r} is ambiguous; it matches {shown}. "
                    f"Give the full name ({list_hint})"
                )
        return None

    def merged(self, other: Catalog) -> Catalog:
        """Return this catalog with ``other``'s devices added, replacing same-named ones.

        Replaced devices keep their position; new ones follow in ``other``'s order.

        Parameters
        ----------
        other : Catalog
            Devices that add to or override this catalog's (e.g. from a user's file).

        Returns
        -------
        Catalog
            The merged catalog.
        """
        overrides = {_normalise(device.name): device for device in other.devices}
        merged = [overrides.pop(_normalise(device.name), device) for device in self.devices]
        merged.extend(overrides.values())
        return Catalog(tuple(merged))


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Return the catalog shipped with heatgrid (package data, constant).

    Returns
    -------
    Catalog
        Devices from ``heatgrid/core/data/catalog.csv``.
    """
    text = resources.files("heatgrid.core").joinpath("data", "catalog.csv").read_text("utf-8")
    return parse_catalog(text, "heatgrid/core/data/catalog.csv")


def parse_catalog(text: str, source: str) -> Catalog:
    """Parse a catalog file's text: CSV, or TOML if ``source`` ends with ``.toml``.

    CSV: a header row of column names from :data:`CATALOG_COLUMNS` (``name``, ``kind``,
    ``max_power_w`` and ``source`` required, any order), one device per row; ``power_levels_w``
    separated by ``;``; blank lines and lines starting with ``#`` are skipped. Empty cells take
    the defaults of :class:`Device`, with ``min_power_w`` defaulting to ``max_power_w`` (on/off
    only). TOML: an array of ``[[device]]`` tables with the same keys.

    Parameters
    ----------
    text : str
        File contents; the caller reads the file.
    source : str
        File name (or other origin), used in error messages.

    Returns
    -------
    Catalog
        The devices in file order.

    Raises
    ------
    InputError
        For a bad file, naming ``source``, the line and the column (CSV) or the table and key
        (TOML).
    """
    if source.lower().endswith(".toml"):
        return _parse_toml(text, source)
    return _parse_csv(text, source)


def _parse_csv(text: str, source: str) -> Catalog:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    devices: list[Device] = []
    first_line: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if not record or not "".join(record).strip() or record[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = _check_header([cell.strip() for cell in record], source, line)
            continue
        if len(record) != len(header):
            raise InputError(
                f"{source}, line {line}: expected {len(header)} columns as in the header, "
                f"got {len(record)}"
            )
        cells = dict(zip(header, (cell.strip() for cell in record), strict=True))

        def where(column: str, line: int = line, header: list[str] = header) -> str:
            if column not in header:  # a default or derived value
                return f"{source}, line {line} ({column})"
            return f"{source}, line {line}, column {header.index(column) + 1} ({column})"

        device = _device_from_cells(cells, where)
        key = _normalise(device.name)
        if key in first_line:
            raise InputError(
                f"{where('name')}: device {device.name!r} already defined on line {first_line[key]}"
            )
        first_line[key] = line
        devices.append(device)
    if header is None:
        raise InputError(f"{source}: empty file; expected a header row of catalog columns")
    return Catalog(tuple(devices))


def _check_header(header: list[str], source: str, line: int) -> list[str]:
    for index, column in enumerate(header):
        if column not in CATALOG_COLUMNS:
            raise InputError(
                f"{source}, line {line}, column {index + 1}: unknown column {column!r}; "
                f"columns are {', '.join(CATALOG_COLUMNS)}"
            )
        if header.index(column) != index:
            raise InputError(f"{source}, line {line}, column {index + 1}: duplicate {column!r}")
    missing = [column for column in _REQUIRED_COLUMNS if column not in header]
    if missing:
        raise InputError(f"{source}, line {line}: missing column(s) {', '.join(missing)}")
    return header


def _parse_toml(text: str, source: str) -> Catalog:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{source}: invalid TOML: {error}") from None
    unknown = sorted(set(document) - {"device"})
    if unknown:
        raise InputError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; use [[device]]")
    tables = document.get("device")
    if not isinstance(tables, list):
        raise InputError(f"{source}: expected an array of [[device]] tables")
    devices: list[Device] = []
    seen: set[str] = set()
    for number, table in enumerate(tables, start=1):

        def where(key: str, number: int = number) -> str:
            return f"{source}, [[device]] #{number}, key {key}"

        if not isinstance(table, dict):
            raise InputError(f"{source}, [[device]] #{number}: expected a table")
        for key in table:
            if key not in CATALOG_COLUMNS:
                raise InputError(
                    f"{where(key)}: unknown key; keys are {', '.join(CATALOG_COLUMNS)}"
                )
        for key in _REQUIRED_COLUMNS:
            if key not in table:
                raise InputError(f"{where(key)}: missing")
        device = _device_from_cells(table, where)
        if _normalise(device.name) in seen:
            raise InputError(f"{where('name')}: device {device.name!r} is defined twice")
        seen.add(_normalise(device.name))
        devices.append(device)
    return Catalog(tuple(devices))


def _device_from_cells(cells: Mapping[str, object], where: Callable[[str], str]) -> Device:
    """Build a device from raw cells (CSV strings or TOML values), errors located by ``where``."""

    def text(column: str, *, required: bool) -> str:
        value = cells.get(column, "")
        if not isinstance(value, str):
            raise InputError(f"{where(column)}: expected text, got {value!r}")
        value = value.strip()
        if required and not value:
            raise InputError(f"{where(column)}: must not be empty")
        return value

    def number(column: str) -> float | None:
        value = cells.get(column, "")
        if isinstance(value, str) and not value.strip():
            return None
        return _to_float(value, where(column))

    name = text("name", required=True)
    kind = text("kind", required=True).lower()
    if kind not in DEVICE_KINDS:
        raise InputError(f"{where('kind')}: must be one of {', '.join(DEVICE_KINDS)}, got {kind!r}")
    max_power_w = number("max_power_w")
    if max_power_w is None:
        raise InputError(f"{where('max_power_w')}: must not be empty")
    min_power_w = number("min_power_w")
    levels = _to_levels(cells.get("power_levels_w", ""), where("power_levels_w"))
    if min_power_w is None:
        min_power_w = levels[0] if levels else max_power_w
    try:
        return Device(
            name=name,
            kind=cast(DeviceKind, kind),  # checked against DEVICE_KINDS above
            max_power_w=max_power_w,
            min_power_w=min_power_w,
            power_levels_w=levels,
            hashrate_ths=number("hashrate_ths") or 0.0,
            efficiency_j_per_th=number("efficiency_j_per_th"),
            vram_gb=number("vram_gb") or 0.0,
            fp16_tflops=number("fp16_tflops") or 0.0,
            fp32_tflops=number("fp32_tflops") or 0.0,
            noise_db=number("noise_db"),
            source=text("source", required=True),
            notes=text("notes", required=False),
        )
    except _FieldError as error:
        raise InputError(f"{where(error.field_name)}: {error.detail}") from None


def _to_float(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InputError(f"{where}: expected a number, got {value.strip()!r}") from None
    else:
        raise InputError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(number):
        raise InputError(f"{where}: expected a finite number, got {value!r}")
    return number


def _to_levels(value: object, where: str) -> tuple[float, ...]:
    if isinstance(value, str):
        parts = [part for part in value.split(";") if part.strip()]
        return tuple(_to_float(part, where) for part in parts)
    if isinstance(value, list):
        return tuple(_to_float(part, where) for part in value)
    raise InputError(f"{where}: expected numbers separated by ';' or a list, got {value!r}")


def _validate(device: Device) -> None:
    """Check a device's fields together; raise :class:`_FieldError` naming the field."""
    if not isinstance(device.name, str) or not _normalise(device.name):
        raise _FieldError("name", f"must contain letters or digits, got {device.name!r}")
    if device.kind not in DEVICE_KINDS:
        raise _FieldError("kind", f"must be one of {', '.join(DEVICE_KINDS)}, got {device.kind!r}")
    if not isinstance(device.source, str) or not device.source.strip():
        raise _FieldError("source", "every device needs a source (a URL or a document name)")
    for name in ("max_power_w", "min_power_w", "hashrate_ths"):
        _finite(name, getattr(device, name))
    for name in ("vram_gb", "fp16_tflops", "fp32_tflops"):
        _finite(name, getattr(device, name))
        if getattr(device, name) < 0.0:
            raise _FieldError(name, f"must not be negative, got {getattr(device, name)!r}")
    if device.noise_db is not None:
        _finite("noise_db", device.noise_db)
    _validate_power(device)
    if device.kind == "asic":
        _validate_asic(device)
    else:
        if device.hashrate_ths != 0.0:
            raise _FieldError("hashrate_ths", f"must be 0 for a {device.kind}")
        if device.efficiency_j_per_th is not None:
            raise _FieldError("efficiency_j_per_th", f"must be empty for a {device.kind}")


def _validate_power(device: Device) -> None:
    if device.max_power_w <= 0.0:
        raise _FieldError("max_power_w", f"must be greater than 0, got {device.max_power_w!r}")
    if not 0.0 < device.min_power_w <= device.max_power_w:
        raise _FieldError(
            "min_power_w",
            f"must be greater than 0 and at most max_power_w ({device.max_power_w:g}), "
            f"got {device.min_power_w!r}",
        )
    levels = tuple(float(level) for level in device.power_levels_w)
    object.__setattr__(device, "power_levels_w", levels)
    if not levels:
        return
    if any(not math.isfinite(level) for level in levels) or any(
        b <= a for a, b in itertools.pairwise(levels)
    ):
        raise _FieldError("power_levels_w", f"must be finite and increasing, got {levels!r}")
    if levels[0] != device.min_power_w or levels[-1] != device.max_power_w:
        raise _FieldError(
            "power_levels_w",
            f"must run from min_power_w ({device.min_power_w:g}) to max_power_w "
            f"({device.max_power_w:g}), got {levels!r}",
        )


def _validate_asic(device: Device) -> None:
    if device.hashrate_ths <= 0.0:
        raise _FieldError(
            "hashrate_ths", f"must be greater than 0 for an ASIC, got {device.hashrate_ths!r}"
        )
    derived = device.max_power_w / device.hashrate_ths
    if device.efficiency_j_per_th is None:
        object.__setattr__(device, "efficiency_j_per_th", derived)
        return
    _finite("efficiency_j_per_th", device.efficiency_j_per_th)
    if abs(device.efficiency_j_per_th / derived - 1.0) > EFFICIENCY_TOLERANCE:
        raise _FieldError(
            "efficiency_j_per_th",
            f"{device.efficiency_j_per_th:g} J/TH disagrees with max_power_w / hashrate_ths = "
            f"{derived:.4g} J/TH by more than {EFFICIENCY_TOLERANCE:.0%}",
        )


def _finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _FieldError(name, f"must be a finite number, got {value!r}")


_VENDORS = ("nvidia", "amd", "intel")
"""Vendor names that drivers put before a board's model (normalised)."""


def _normalise(name: str) -> str:
    """Lower-case, '+' spelled out (M30S vs M30S++), everything but letters and digits dropped."""
    return re.sub(r"[^0-9a-z]+", "", name.casefold().replace("+", "plus"))
