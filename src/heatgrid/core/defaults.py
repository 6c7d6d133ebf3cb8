"""Defaults that commands show in their help, kept free of numpy so that ``--help`` is fast.

The models that use them (:mod:`heatgrid.core.heat_value`, :mod:`heatgrid.core.thermal`) import
them from here; this is their one home.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "DEFAULT_BOILER_EFFICIENCY",
    "DEFAULT_CHALLENGE_TARGET_S",
    "DEFAULT_FLOW_TEMP_C",
    "DEFAULT_HOT_TOLERANCE_K",
    "DEFAULT_ROWS_CHECKED",
    "HOUSE_PRESET_PARAMS",
    "MAX_CHALLENGE_N",
]

MAX_CHALLENGE_N = 4096
"""Largest side of a hardware challenge's matrices: bigger claims get more links [entries]."""

DEFAULT_CHALLENGE_TARGET_S = 0.5
"""Time the claimed device needs for a hardware challenge's whole chain [s]."""

DEFAULT_ROWS_CHECKED = 12
"""Places of a hardware challenge revealed and checked: a device that computed half the rows
passes with about 2**-12."""

DEFAULT_HOT_TOLERANCE_K = 0.3
"""The thermostat stops heating this far over the setpoint [K]; a room up to it still wants heat."""

DEFAULT_FLOW_TEMP_C = 45.0
"""Heat-pump flow temperature for radiators sized for a heat pump [°C]."""

DEFAULT_BOILER_EFFICIENCY = 0.9
"""Seasonal efficiency of a condensing gas boiler, heat out per fuel energy in (NCV)."""

HOUSE_PRESET_PARAMS: Mapping[str, tuple[float, float, float]] = MappingProxyType(
    {
        "apartment": (90.0, 35.0, 0.35),
        "terraced": (180.0, 30.0, 0.3),
        "detached-1970s": (400.0, 20.0, 0.3),
        "detached-modern": (150.0, 45.0, 0.35),
        "passive-house": (45.0, 60.0, 0.4),
    }
)
"""The representative homes of :data:`heatgrid.core.thermal.HOUSE_PRESETS` by name: (UA [W/K],
time constant [h], share of UA lost straight from the air)."""
