"""Request and answer bodies of the coordinator's own API (accounts, keys, devices).

The heater's messages (enrollment, heartbeat) are wire protocol and live in
:mod:`heatgrid.protocol`; these are for people and their tools.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from heatgrid.protocol import v1
from heatgrid.protocol.values import Text

__all__ = [
    "Balance",
    "BalancePage",
    "CreateEnrollmentCodeRequest",
    "CreateKeyRequest",
    "CreatedEnrollmentCode",
    "CreatedKey",
    "DeviceDetail",
    "DeviceInfo",
    "DevicePage",
    "DeviceRelease",
    "KeyInfo",
    "LatestSample",
]


_Scope = Annotated[Text, StringConstraints(max_length=100)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class CreateKeyRequest(_Body):
    """Ask for an API key for the account ``name``, created with ``role`` if new.

    Attributes
    ----------
    name : str
        Account name.
    role : str
        ``"operator"``, ``"owner"`` or ``"submitter"``.
    scopes : list of str or None
        The key's scopes, a subset of the role's; None (the default) gives all of them.
    """

    name: Annotated[
        Text,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
        ),
    ]
    role: Annotated[str, StringConstraints(pattern=r"^(operator|owner|submitter)$")]
    scopes: Annotated[list[_Scope], Field(max_length=32)] | None = None


class CreatedKey(_Body):
    """A new API key; ``api_key`` is shown this once, the coordinator keeps only its hash."""

    key_id: str
    account_name: str
    role: str
    scopes: list[str]
    created_ts: float
    api_key: str


class KeyInfo(_Body):
    """An API key, without its secret."""

    key_id: str
    scopes: list[str]
    created_ts: float
    revoked_ts: float | None


class CreateEnrollmentCodeRequest(_Body):
    """Ask for a one-time enrollment code.

    Attributes
    ----------
    owner_name : str or None
        Whose heater will use it; None means the caller's own account.
    ttl_s : float
        How long the code stays valid [s], at most 30 days.
    """

    owner_name: Annotated[Text, StringConstraints(min_length=1, max_length=100)] | None = None
    ttl_s: Annotated[float, Field(gt=0.0, le=30 * 86_400.0)] = 3600.0


class CreatedEnrollmentCode(_Body):
    """A new enrollment code; ``enrollment_code`` is shown this once."""

    code_id: str
    owner_name: str
    created_ts: float
    expires_ts: float
    enrollment_code: str


class DeviceInfo(_Body):
    """An enrolled device, as listed; ``online`` means heard from within the online window.

    ``agent_features``: what its agent declared in its latest heartbeat while hardware
    challenges are on (None: not heard yet). ``claim_unproven_reason``: why the hardware
    challenge it owes is held back (its agent lacks a feature the challenge needs), so that
    it gets no tasks; None when nothing is held back.
    """

    device_id: str
    owner_name: str
    name: str
    kind: v1.DeviceKind
    hardware: v1.Hardware
    has_room: bool
    energy_price_eur_per_kwh: float | None
    enrolled_ts: float
    last_seen_ts: float | None
    revoked_ts: float | None
    online: bool
    quarantined_ts: float | None = None
    quarantine_reason: str | None = None
    agent_features: list[str] | None = None
    claim_unproven_reason: str | None = None


class DeviceRelease(DeviceInfo):
    """A device just released from quarantine, and what its release gave back.

    Attributes
    ----------
    clawbacks_reversed : int
        Its clawed-back results whose clawback this release reversed (0 on a retry, or with
        ``keep_clawbacks``).
    owner_restored_eur : float
        Given back to its owner: what those clawbacks took from the owner's balance [EUR].
    fee_restored_eur : float
        The platform's fees on those results, given back to the platform [EUR].
    from_submitters_eur : float
        The submitters' refunds charged back, which paid for both (their sum) [EUR].
    """

    clawbacks_reversed: int = 0
    owner_restored_eur: float = 0.0
    fee_restored_eur: float = 0.0
    from_submitters_eur: float = 0.0


class LatestSample(v1.TelemetrySample):
    """A stored telemetry sample and when the coordinator received it."""

    received_ts: float


class DeviceDetail(DeviceInfo):
    """A device with its newest telemetry sample and its latest heat window."""

    latest_sample: LatestSample | None
    heat_window: list[v1.HeatWindowSegment]


class Balance(_Body):
    """The balance of one ledger account in one unit.

    Attributes
    ----------
    account : str
        ``submitter:<id>``, ``owner:<id>``, ``platform``, ``device:<id>``, ``job:<id>``,
        ``pool`` or ``paid_out``.
    unit : str
        ``"micro_eur"`` (1e-6 EUR), ``"j"`` (joules) or ``"sat"`` (satoshi, mining).
    amount : int
        Sum of the account's entries in that unit (negative: it owes or gave).
    """

    account: str
    unit: str
    amount: int


class BalancePage(_Body):
    """A page of balances, by account and unit; ``next_cursor`` None on the last page."""

    items: list[Balance]
    next_cursor: str | None


class DevicePage(_Body):
    """A page of devices, oldest first; ``next_cursor`` None on the last page."""

    items: list[DeviceInfo]
    next_cursor: str | None
