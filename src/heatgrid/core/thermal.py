"""Lumped RC thermal models of rooms, integrated exactly under a zero-order hold.

A room is a network of heat capacities (nodes) joined by heat-loss coefficients:

* :class:`Room1R1C`: one node, ``C dT/dt = P_heat + gains + UA (T_out − T)``.
* :class:`Room2R2C`: the room air (heater power and gains go here; ventilation and windows lose
  heat straight to outside) and the building mass (walls, floors), which exchanges heat with
  the air and with outside.

Every model field may be a float or an array, so one object describes a fleet of homes; the
functions broadcast the model's fields, the state and the inputs together. The state has shape
``(..., n)`` with the room air first (``n`` = 1 or 2). The inputs ``u = [heat_power_w,
outdoor_temp_c, gains_w]`` are held constant over each step (zero-order hold), and each step is
integrated exactly with the matrix exponential, computed in closed form from the symmetric
eigen-decomposition of ``C^(−1/2) K C^(−1/2)`` (``K`` the conductance matrix): any step size is
exact and stable; there is no Euler step anywhere. The heat lost to outside during a step is
integrated exactly too, so energy balances close to rounding error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from heatgrid.core._arrays import FloatArray, FloatOrArray, checked_array, scalar_or_array
from heatgrid.core.defaults import HOUSE_PRESET_PARAMS
from heatgrid.core.errors import InputError, require_positive

__all__ = [
    "HOUSE_PRESETS",
    "DiscreteModel",
    "EnergyRun",
    "Room1R1C",
    "Room2R2C",
    "RoomModel",
    "discretize",
    "heat_power_for_target_w",
    "simulate",
    "simulate_energy",
    "steady_state_c",
    "step",
    "stored_heat_j",
]

_S_PER_H = 3600.0
_N_INPUTS = 3  # heat_power_w, outdoor_temp_c, gains_w
_PHI2_SERIES_BELOW = 0.2
_PHI2_SERIES_TERMS = 14
_STEP_MATCH_RTOL = 1e-12


def _field(name: str, value: ArrayLike) -> FloatOrArray:
    """Validate one model field (positive, finite) and freeze it as a float or read-only array."""
    array = checked_array(name, value, minimum=0.0, strictly_above=True)
    if array.ndim == 0:
        return float(array)
    array = array.copy()
    array.flags.writeable = False
    return array


def _freeze_fields(model: object) -> None:
    for item in fields(model):  # type: ignore[arg-type]
        object.__setattr__(model, item.name, _field(item.name, getattr(model, item.name)))


def _batch_shape(model: object) -> tuple[int, ...]:
    shapes = [np.shape(getattr(model, item.name)) for item in fields(model)]  # type: ignore[arg-type]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise InputError(
            f"the fields of {type(model).__name__} must broadcast together, got shapes {shapes}"
        ) from None


@dataclass(frozen=True)
class Room1R1C:
    """One-node room: ``C dT/dt = P_heat + gains + UA (T_out − T)``.

    Parameters
    ----------
    ua_w_per_k : float or ndarray
        Heat-loss coefficient from the room to outside [W/K], > 0.
    capacity_j_per_k : float or ndarray
        Heat capacity of the room and everything at its temperature [J/K], > 0.
    """

    ua_w_per_k: FloatOrArray
    capacity_j_per_k: FloatOrArray

    def __post_init__(self) -> None:
        _freeze_fields(self)
        _batch_shape(self)

    @property
    def time_constant_h(self) -> FloatOrArray:
        """Time constant ``C / UA`` [h]."""
        return scalar_or_array(np.asarray(self.capacity_j_per_k / self.ua_w_per_k / _S_PER_H))


@dataclass(frozen=True)
class Room2R2C:
    """Two-node room: the air and the building mass.

    ``C_air dT_air/dt = P_heat + gains + UA_ao (T_out − T_air) + UA_am (T_mass − T_air)`` and
    ``C_mass dT_mass/dt = UA_am (T_air − T_mass) + UA_mo (T_out − T_mass)``.

    Parameters
    ----------
    ua_air_out_w_per_k : float or ndarray
        Loss coefficient from the air straight to outside (ventilation, windows) [W/K], > 0.
    ua_air_mass_w_per_k : float or ndarray
        Coefficient between the air and the building mass (interior surfaces) [W/K], > 0.
    ua_mass_out_w_per_k : float or ndarray
        Loss coefficient from the building mass to outside (opaque envelope) [W/K], > 0.
    capacity_air_j_per_k : float or ndarray
        Heat capacity of the air node (air, furniture, light partitions) [J/K], > 0.
    capacity_mass_j_per_k : float or ndarray
        Heat capacity of the building mass [J/K], > 0.
    """

    ua_air_out_w_per_k: FloatOrArray
    ua_air_mass_w_per_k: FloatOrArray
    ua_mass_out_w_per_k: FloatOrArray
    capacity_air_j_per_k: FloatOrArray
    capacity_mass_j_per_k: FloatOrArray

    def __post_init__(self) -> None:
        _freeze_fields(self)
        _batch_shape(self)

    @property
    def ua_w_per_k(self) -> FloatOrArray:
        """Steady-state loss coefficient ``UA_ao + UA_am·UA_mo / (UA_am + UA_mo)`` [W/K]."""
        am, mo = self.ua_air_mass_w_per_k, self.ua_mass_out_w_per_k
        return scalar_or_array(np.asarray(self.ua_air_out_w_per_k + am * mo / (am + mo)))

    @property
    def capacity_j_per_k(self) -> FloatOrArray:
        """Total heat capacity, air plus mass [J/K]."""
        return scalar_or_array(np.asarray(self.capacity_air_j_per_k + self.capacity_mass_j_per_k))

    @property
    def time_constant_h(self) -> FloatOrArray:
        """Overall time constant: total capacity over steady-state UA [h]."""
        return scalar_or_array(np.asarray(self.capacity_j_per_k / self.ua_w_per_k / _S_PER_H))

    @classmethod
    def from_ua_and_time_constant(
        cls,
        ua_w_per_k: ArrayLike,
        time_constant_h: ArrayLike,
        *,
        air_capacity_fraction: ArrayLike = 0.1,
        air_out_fraction: ArrayLike = 0.3,
        air_mass_coupling: ArrayLike = 10.0,
    ) -> Room2R2C:
        """Build a 2R2C room from its overall loss coefficient and time constant.

        Parameters
        ----------
        ua_w_per_k : float or array_like
            Steady-state loss coefficient of the whole room [W/K], > 0.
        time_constant_h : float or array_like
            Total capacity over ``ua_w_per_k`` [h], > 0.
        air_capacity_fraction : float or array_like
            Share of the total capacity in the air node [-], in (0, 1).
        air_out_fraction : float or array_like
            Share of ``ua_w_per_k`` lost straight from the air (ventilation, windows) [-],
            in (0, 1); the rest flows through the mass.
        air_mass_coupling : float or array_like
            ``ua_air_mass_w_per_k / ua_w_per_k`` [-]; must exceed ``1 − air_out_fraction``
            (interior surfaces couple air and mass far better than the envelope insulates).

        Returns
        -------
        Room2R2C
            The room, with ``ua_w_per_k`` and ``time_constant_h`` as given.
        """
        ua = checked_array("ua_w_per_k", ua_w_per_k, minimum=0.0, strictly_above=True)
        tau_h = checked_array("time_constant_h", time_constant_h, minimum=0.0, strictly_above=True)
        f_cap = _fraction("air_capacity_fraction", air_capacity_fraction)
        f_out = _fraction("air_out_fraction", air_out_fraction)
        coupling = checked_array("air_mass_coupling", air_mass_coupling, minimum=0.0)
        if bool(np.any(coupling <= 1.0 - f_out)):
            raise InputError(
                "air_mass_coupling must exceed 1 − air_out_fraction (else the mass path "
                f"cannot carry its share of UA), got {air_mass_coupling!r}"
            )
        capacity = ua * tau_h * _S_PER_H
        through_mass = (1.0 - f_out) * ua
        air_mass = coupling * ua
        mass_out = through_mass * air_mass / (air_mass - through_mass)
        return cls(
            ua_air_out_w_per_k=scalar_or_array(f_out * ua),
            ua_air_mass_w_per_k=scalar_or_array(air_mass),
            ua_mass_out_w_per_k=scalar_or_array(mass_out),
            capacity_air_j_per_k=scalar_or_array(f_cap * capacity),
            capacity_mass_j_per_k=scalar_or_array((1.0 - f_cap) * capacity),
        )


def _fraction(name: str, value: ArrayLike) -> FloatArray:
    array = checked_array(name, value, minimum=0.0, strictly_above=True)
    if bool(np.any(array >= 1.0)):
        raise InputError(f"{name} must be below 1, got {value!r}")
    return array


RoomModel: TypeAlias = Room1R1C | Room2R2C


def _preset(ua_w_per_k: float, time_constant_h: float, air_out_fraction: float) -> Room2R2C:
    return Room2R2C.from_ua_and_time_constant(
        ua_w_per_k, time_constant_h, air_out_fraction=air_out_fraction
    )


HOUSE_PRESETS: Mapping[str, Room2R2C] = MappingProxyType(
    {name: _preset(*params) for name, params in HOUSE_PRESET_PARAMS.items()}
)
"""Representative homes as :class:`Room2R2C` rooms (read-only mapping).

(UA [W/K], time constant [h], share of UA lost straight from the air): ``apartment`` (90, 35,
0.35): a 70 m² flat in a concrete block, neighbours on most sides; ``terraced`` (180, 30,
0.3): a 90 m² mid-terrace house, some insulation; ``detached-1970s`` (400, 20, 0.3): a 150 m²
detached house, little insulation, single or early double glazing; ``detached-modern`` (150,
45, 0.35): a 150 m² detached house built to a recent code, ventilation losses a larger share;
``passive-house`` (45, 60, 0.4): a 120 m² passive house, losses mostly through (heat-recovered)
ventilation. The UA values follow floor area × heat-loss parameter (about 1.3, 1.9, 2.7, 1.0
and 0.4 W/(m²·K), the spread of the TABULA/EPISCOPE residential typologies and UK SAP
heat-loss parameters); the time constants sit inside DESIGN.md's 10–60 h. 10 % of the capacity
is in the air node, and the air–mass coupling is 10 × UA (see
:meth:`Room2R2C.from_ua_and_time_constant`). They are representative, not measurements of a
particular building.
"""


@dataclass(frozen=True, eq=False)
class _Network:
    """A model as capacities ``c`` (..., n), conductances ``k`` (..., n, n), outside ``k_out``."""

    capacity_j_per_k: FloatArray
    conductance_w_per_k: FloatArray
    outdoor_ua_w_per_k: FloatArray


def _network(model: RoomModel) -> _Network:
    if not isinstance(model, Room1R1C | Room2R2C):
        raise InputError(f"model must be a Room1R1C or Room2R2C, got {type(model).__name__}")
    shape = _batch_shape(model)
    if isinstance(model, Room1R1C):
        ua = np.broadcast_to(np.asarray(model.ua_w_per_k, dtype=np.float64), shape)
        c = np.broadcast_to(np.asarray(model.capacity_j_per_k, dtype=np.float64), shape)
        return _Network(c[..., None], ua[..., None, None], ua[..., None])
    ao, am, mo, ca, cm = (
        np.broadcast_to(np.asarray(getattr(model, f.name), dtype=np.float64), shape)
        for f in fields(model)
    )
    k = np.empty((*shape, 2, 2))
    k[..., 0, 0] = ao + am
    k[..., 0, 1] = -am
    k[..., 1, 0] = -am
    k[..., 1, 1] = am + mo
    return _Network(np.stack([ca, cm], axis=-1), k, np.stack([ao, mo], axis=-1))


def _symmetric_eig(network: _Network) -> tuple[FloatArray, FloatArray]:
    """Eigenvalues [1/s] and orthonormal eigenvectors of ``S = C^(−1/2) K C^(−1/2)``.

    Closed form for n ≤ 2 (a Jacobi rotation), stable for close or far-apart eigenvalues.
    Returns ``lam`` (..., n) and ``r`` (..., n, n) with ``S = r diag(lam) r^T``.
    """
    c, k = network.capacity_j_per_k, network.conductance_w_per_k
    if c.shape[-1] == 1:
        return k[..., 0] / c, np.ones_like(k)
    s00 = k[..., 0, 0] / c[..., 0]
    s11 = k[..., 1, 1] / c[..., 1]
    s01 = k[..., 0, 1] / np.sqrt(c[..., 0] * c[..., 1])
    half = 0.5 * (s00 - s11)
    large = 0.5 * (s00 + s11) + np.hypot(half, s01)
    # det(K) = k00 k11 − k01² is a sum of positive products for these networks; computing it
    # from the entries would cancel, so the small eigenvalue comes from det(S) / large.
    det_k = k[..., 0, 0] * k[..., 1, 1] - k[..., 0, 1] ** 2
    small = det_k / (c[..., 0] * c[..., 1]) / large
    theta = 0.5 * np.arctan2(2.0 * s01, 2.0 * half)
    cos, sin = np.cos(theta), np.sin(theta)
    r = np.empty(k.shape)
    r[..., 0, 0], r[..., 1, 0] = cos, sin  # eigenvector of the large eigenvalue
    r[..., 0, 1], r[..., 1, 1] = -sin, cos  # eigenvector of the small eigenvalue
    return np.stack([large, small], axis=-1), r


def _phi1(x: FloatArray) -> FloatArray:
    """``(1 − e^(−x)) / x``, accurate for small ``x`` (→ 1)."""
    return np.asarray(-np.expm1(-x) / x)


def _phi2(x: FloatArray) -> FloatArray:
    """``(x − 1 + e^(−x)) / x²``, accurate for small ``x`` (→ 1/2)."""
    safe = np.maximum(x, _PHI2_SERIES_BELOW)
    direct = (safe + np.expm1(-safe)) / safe**2
    series = np.zeros_like(x)
    term = np.full_like(x, 0.5)
    for j in range(_PHI2_SERIES_TERMS):
        series = series + term
        term = term * (-x) / (j + 3)
    return np.asarray(np.where(x < _PHI2_SERIES_BELOW, series, direct))


def _eig_function(r: FloatArray, values: FloatArray) -> FloatArray:
    """``r diag(values) r^T`` over the batch."""
    return np.asarray(np.einsum("...ik,...k,...jk->...ij", r, values, r))


@dataclass(frozen=True, eq=False)
class DiscreteModel:
    """Exact zero-order-hold discretization of a room model for one step size.

    Over a step with inputs ``u = [heat_power_w, outdoor_temp_c, gains_w]`` held constant,
    ``x_end = a @ x + b @ u`` and the time integral of the state over the step is
    ``∫x dt = a_integral_s @ x + b_integral_s @ u``. Arrays carry the model's batch shape first.

    Parameters
    ----------
    step_s : float
        Step size [s].
    a : ndarray
        State transition matrix ``exp(A_c step_s)``, shape (..., n, n) [-].
    b : ndarray
        Input matrix, shape (..., n, 3): columns in [K/W], [-], [K/W].
    a_integral_s : ndarray
        ``∫_0^step exp(A_c t) dt``, shape (..., n, n) [s].
    b_integral_s : ndarray
        Input part of the state's time integral, shape (..., n, 3): [K·s/W], [s], [K·s/W].
    capacity_j_per_k : ndarray
        Heat capacity of each node, shape (..., n) [J/K].
    outdoor_ua_w_per_k : ndarray
        Loss coefficient from each node to outside, shape (..., n) [W/K].
    """

    step_s: float
    a: FloatArray
    b: FloatArray
    a_integral_s: FloatArray
    b_integral_s: FloatArray
    capacity_j_per_k: FloatArray
    outdoor_ua_w_per_k: FloatArray

    @property
    def n_nodes(self) -> int:
        """Number of temperature nodes (room air first)."""
        return int(self.a.shape[-1])


def discretize(model: RoomModel, step_s: float) -> DiscreteModel:
    """Discretize a room model exactly for a zero-order hold of ``step_s``.

    Parameters
    ----------
    model : Room1R1C or Room2R2C
        The room(s); array fields give a fleet.
    step_s : float
        Step size [s], > 0.

    Returns
    -------
    DiscreteModel
        The matrices ``a``, ``b`` (and the exact state integrals) for every home.
    """
    h = require_positive("step_s", step_s)
    net = _network(model)
    lam, r = _symmetric_eig(net)
    x = lam * h
    expo = _eig_function(r, np.exp(-x))
    first = _eig_function(r, h * _phi1(x))
    second = _eig_function(r, h * h * _phi2(x))
    sq = np.sqrt(net.capacity_j_per_k)
    similar = sq[..., None, :] / sq[..., :, None]  # C^(−1/2) · C^(1/2) entrywise
    congruent = 1.0 / (sq[..., None, :] * sq[..., :, None])  # C^(−1/2) · C^(−1/2) entrywise
    g = np.zeros((*net.capacity_j_per_k.shape, _N_INPUTS))
    g[..., 0, 0] = 1.0
    g[..., :, 1] = net.outdoor_ua_w_per_k
    g[..., 0, 2] = 1.0
    return DiscreteModel(
        step_s=h,
        a=expo * similar,
        b=(first * congruent) @ g,
        a_integral_s=first * similar,
        b_integral_s=(second * congruent) @ g,
        capacity_j_per_k=np.array(net.capacity_j_per_k),
        outdoor_ua_w_per_k=np.array(net.outdoor_ua_w_per_k),
    )


def _resolve(model: RoomModel | DiscreteModel, step_s: float) -> DiscreteModel:
    if isinstance(model, DiscreteModel):
        h = require_positive("step_s", step_s)
        if abs(h - model.step_s) > _STEP_MATCH_RTOL * model.step_s:
            raise InputError(
                f"step_s ({h!r} s) differs from the DiscreteModel's step_s ({model.step_s!r} s)"
            )
        return model
    return discretize(model, step_s)


def _state(name: str, value: ArrayLike, n: int) -> FloatArray:
    state = checked_array(name, value)
    if state.ndim == 0 or state.shape[-1] != n:
        raise InputError(
            f"{name} must have shape (..., {n}) (room air first), got shape {state.shape}"
        )
    return state


def _advance(d: DiscreteModel, x: FloatArray, u: tuple[ArrayLike, ...]) -> FloatArray:
    out = (d.a @ x[..., None])[..., 0]
    for j, value in enumerate(u):
        out = out + d.b[..., j] * np.asarray(value)[..., None]
    return np.asarray(out)


def step(  # noqa: PLR0917 (positional order is the published API)
    model: RoomModel | DiscreteModel,
    state_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    step_s: float,
    gains_w: ArrayLike = 0.0,
) -> FloatArray:
    """Advance the room state by one step with the inputs held constant (exact).

    Parameters
    ----------
    model : Room1R1C, Room2R2C or DiscreteModel
        The room(s); a :class:`DiscreteModel` from :func:`discretize` skips re-discretizing.
    state_c : array_like
        Node temperatures at the start of the step, shape (..., n), room air first [°C].
    heat_power_w : float or array_like
        Heater power during the step [W]; may be negative (cooling).
    outdoor_temp_c : float or array_like
        Outdoor temperature during the step [°C].
    step_s : float
        Step size [s], > 0.
    gains_w : float or array_like
        Other heat gains into the room air (people, appliances, sun) [W].

    Returns
    -------
    ndarray
        Node temperatures at the end of the step, shape (..., n) [°C].
    """
    d = _resolve(model, step_s)
    x = _state("state_c", state_c, d.n_nodes)
    u = _inputs(heat_power_w, outdoor_temp_c, gains_w)
    return _advance(d, x, u)


def _inputs(
    heat_power_w: ArrayLike, outdoor_temp_c: ArrayLike, gains_w: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    return (
        checked_array("heat_power_w", heat_power_w),
        checked_array("outdoor_temp_c", outdoor_temp_c),
        checked_array("gains_w", gains_w),
    )


def heat_power_for_target_w(  # noqa: PLR0917 (positional order is the published API)
    model: RoomModel | DiscreteModel,
    state_c: ArrayLike,
    target_room_c: ArrayLike,
    outdoor_temp_c: ArrayLike,
    step_s: float,
    gains_w: ArrayLike = 0.0,
) -> FloatOrArray:
    """Constant heater power over one step that ends the step with the air at a target.

    The exact inverse of :func:`step` for the room air node (the step is affine in the power).

    Parameters
    ----------
    model : Room1R1C, Room2R2C or DiscreteModel
        The room(s).
    state_c : array_like
        Node temperatures at the start of the step, shape (..., n) [°C].
    target_room_c : float or array_like
        Room air temperature wanted at the end of the step [°C].
    outdoor_temp_c : float or array_like
        Outdoor temperature during the step [°C].
    step_s : float
        Step size [s], > 0.
    gains_w : float or array_like
        Other heat gains into the room air [W].

    Returns
    -------
    float or ndarray
        Heater power [W], unclipped: negative when the room must cool faster than it would.
    """
    d = _resolve(model, step_s)
    x = _state("state_c", state_c, d.n_nodes)
    target = checked_array("target_room_c", target_room_c)
    _, outdoor, gains = _inputs(0.0, outdoor_temp_c, gains_w)
    free = _advance(d, x, (0.0, outdoor, gains))[..., 0]
    return scalar_or_array(np.asarray((target - free) / d.b[..., 0, 0]))


def steady_state_c(
    model: RoomModel,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    gains_w: ArrayLike = 0.0,
) -> FloatArray:
    """Node temperatures that constant inputs hold forever.

    Parameters
    ----------
    model : Room1R1C or Room2R2C
        The room(s).
    heat_power_w : float or array_like
        Constant heater power [W].
    outdoor_temp_c : float or array_like
        Constant outdoor temperature [°C].
    gains_w : float or array_like
        Constant other gains [W].

    Returns
    -------
    ndarray
        Shape (..., n) [°C]; the room air is ``T_out + (P + gains) / UA``.
    """
    power, outdoor, gains = _inputs(heat_power_w, outdoor_temp_c, gains_w)
    net = _network(model)
    n = net.capacity_j_per_k.shape[-1]
    injection = np.zeros(np.broadcast_shapes(net.capacity_j_per_k.shape, (*power.shape, n)))
    injection[..., 0] = power + gains
    k = np.broadcast_to(net.conductance_w_per_k, (*injection.shape, n))
    rise = np.linalg.solve(k, injection[..., None])[..., 0]
    return np.asarray(outdoor[..., None] + rise)


def stored_heat_j(
    model: RoomModel | DiscreteModel, state_c: ArrayLike, reference_temp_c: ArrayLike
) -> FloatOrArray:
    """Heat stored in the room above a reference temperature.

    Parameters
    ----------
    model : Room1R1C, Room2R2C or DiscreteModel
        The room(s).
    state_c : array_like
        Node temperatures, shape (..., n) [°C].
    reference_temp_c : float or array_like
        Temperature at which the stored heat is zero [°C].

    Returns
    -------
    float or ndarray
        ``Σ C_i (T_i − T_ref)`` [J].
    """
    capacity = (
        model.capacity_j_per_k
        if isinstance(model, DiscreteModel)
        else _network(model).capacity_j_per_k
    )
    x = _state("state_c", state_c, capacity.shape[-1])
    ref = checked_array("reference_temp_c", reference_temp_c)
    return scalar_or_array(np.asarray(np.sum(capacity * (x - ref[..., None]), axis=-1)))


def _time_series(
    heat_power_w: ArrayLike, outdoor_temp_c: ArrayLike, gains_w: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    power, outdoor, gains = _inputs(
        heat_power_w, outdoor_temp_c, 0.0 if gains_w is None else gains_w
    )
    try:
        shape = np.broadcast_shapes(power.shape, outdoor.shape, gains.shape)
    except ValueError:
        raise InputError(
            "heat_power_w, outdoor_temp_c and gains_w must broadcast together (time first), "
            f"got shapes {power.shape}, {outdoor.shape}, {gains.shape}"
        ) from None
    if len(shape) == 0 or shape[0] == 0:
        raise InputError(
            f"the inputs need a time axis first with at least one step, got shape {shape}"
        )
    return (
        np.broadcast_to(power, shape),
        np.broadcast_to(outdoor, shape),
        np.broadcast_to(gains, shape),
    )


@dataclass(frozen=True, eq=False)
class EnergyRun:
    """States of a run and the heat that crossed the room boundary in each step.

    Over the whole run, ``Σ (heat_input_j + gains_j − loss_j) == stored_heat_j(end) −
    stored_heat_j(start)`` to rounding error; each term is integrated exactly.

    Parameters
    ----------
    state_c : ndarray
        Node temperatures at every step boundary, shape (T+1, ..., n) [°C].
    heat_input_j : ndarray
        Heater energy in each step, shape (T, ...) [J].
    gains_j : ndarray
        Other gains in each step, shape (T, ...) [J].
    loss_j : ndarray
        Heat lost to outside in each step (exact integral), shape (T, ...) [J].
    """

    state_c: FloatArray
    heat_input_j: FloatArray
    gains_j: FloatArray
    loss_j: FloatArray


def _run(
    model: RoomModel | DiscreteModel,
    *,
    initial_state_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    step_s: float,
    gains_w: ArrayLike | None,
    energy: bool,
) -> EnergyRun:
    d = _resolve(model, step_s)
    x = _state("initial_state_c", initial_state_c, d.n_nodes)
    power, outdoor, gains = _time_series(heat_power_w, outdoor_temp_c, gains_w)
    n_steps = power.shape[0]
    batch = np.broadcast_shapes(d.a.shape[:-2], x.shape[:-1], power.shape[1:])
    states = np.empty((n_steps + 1, *batch, d.n_nodes))
    states[0] = x
    loss = np.empty((n_steps, *batch)) if energy else np.empty(0)
    for k in range(n_steps):
        u = (power[k], outdoor[k], gains[k])
        if energy:
            integral = (d.a_integral_s @ states[k][..., None])[..., 0]
            for j, value in enumerate(u):
                integral = integral + d.b_integral_s[..., j] * value[..., None]
            excess = integral - outdoor[k][..., None] * d.step_s
            loss[k] = np.sum(d.outdoor_ua_w_per_k * excess, axis=-1)
        states[k + 1] = _advance(d, states[k], u)
    shape = (n_steps, *batch)
    return EnergyRun(
        state_c=states,
        heat_input_j=np.broadcast_to(power * d.step_s, shape).copy(),
        gains_j=np.broadcast_to(gains * d.step_s, shape).copy(),
        loss_j=loss,
    )


def simulate(  # noqa: PLR0917 (positional order is the published API)
    model: RoomModel | DiscreteModel,
    initial_state_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    step_s: float,
    gains_w: ArrayLike | None = None,
) -> FloatArray:
    """Run the room through a series of steps, exactly.

    Parameters
    ----------
    model : Room1R1C, Room2R2C or DiscreteModel
        The room(s).
    initial_state_c : array_like
        Node temperatures at the start, shape (..., n) [°C].
    heat_power_w : float or array_like
        Heater power per step [W]; time first: shape (T, ...) or broadcastable to it (a
        constant per home is shape (1, homes)).
    outdoor_temp_c : float or array_like
        Outdoor temperature per step [°C], time first.
    step_s : float
        Step size [s], > 0.
    gains_w : float or array_like, optional
        Other gains per step [W], time first; none by default.

    Returns
    -------
    ndarray
        Node temperatures at every step boundary, shape (T+1, ..., n) [°C]; index 0 is the
        initial state.
    """
    return _run(
        model,
        initial_state_c=initial_state_c,
        heat_power_w=heat_power_w,
        outdoor_temp_c=outdoor_temp_c,
        step_s=step_s,
        gains_w=gains_w,
        energy=False,
    ).state_c


def simulate_energy(  # noqa: PLR0917 (positional order is the published API)
    model: RoomModel | DiscreteModel,
    initial_state_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    step_s: float,
    gains_w: ArrayLike | None = None,
) -> EnergyRun:
    """Run like :func:`simulate` and account for the heat of every step.

    Parameters
    ----------
    model : Room1R1C, Room2R2C or DiscreteModel
        The room(s).
    initial_state_c : array_like
        Node temperatures at the start, shape (..., n) [°C].
    heat_power_w : float or array_like
        Heater power per step [W], time first.
    outdoor_temp_c : float or array_like
        Outdoor temperature per step [°C], time first.
    step_s : float
        Step size [s], > 0.
    gains_w : float or array_like, optional
        Other gains per step [W], time first.

    Returns
    -------
    EnergyRun
        States, heater energy, gains and the exact losses to outside per step.
    """
    return _run(
        model,
        initial_state_c=initial_state_c,
        heat_power_w=heat_power_w,
        outdoor_temp_c=outdoor_temp_c,
        step_s=step_s,
        gains_w=gains_w,
        energy=True,
    )
