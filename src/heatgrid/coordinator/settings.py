"""Settings of a coordinator process."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from heatgrid.core.challenge_space import DEFAULT_REVEAL_SLACK_S
from heatgrid.core.defaults import (
    DEFAULT_CHALLENGE_TARGET_S,
    DEFAULT_ROWS_CHECKED,
    MAX_CHALLENGE_N,
)
from heatgrid.core.errors import InputError
from heatgrid.core.leasing import DEFAULT_LEASE_S, DEFAULT_RETRY_BASE_S, DEFAULT_RETRY_MAX_S
from heatgrid.core.trust import (
    DEFAULT_CLAWBACK_WINDOW_S,
    DEFAULT_HOLD_LIMIT_S,
    DEFAULT_SPOT_CHECK_FLOOR,
)
from heatgrid.mining.addresses import NETWORKS

__all__ = ["SESSION_SECRET_ENV", "Settings"]

SESSION_SECRET_ENV = "HEATGRID_SESSION_SECRET"
"""Environment variable with the key that signs dashboard session cookies; several
coordinator machines behind one load balancer must share it."""


def _session_secret() -> str:
    return os.environ.get(SESSION_SECRET_ENV) or secrets.token_hex(32)


@dataclass(frozen=True)
class Settings:
    """What a coordinator process needs to know.

    Attributes
    ----------
    database_url : str
        ``sqlite:///FILE`` or ``postgresql+psycopg://USER@HOST:PORT/NAME``.
    heartbeat_interval_s : float
        How often heaters are asked to send a heartbeat [s].
    online_window_s : float
        A device whose last heartbeat is younger than this counts as online [s].
    max_body_bytes : int
        Largest request body accepted [bytes]; larger ones are answered 413.
    body_timeout_s : float
        Longest a client may take to send a request body [s]; slower is answered 408 and the
        connection closed (checkpoint uploads: the longest pause between two chunks).
    ready_wait_s : float
        Longest ``/readyz`` waits for a request slot before it answers 503 (stalled) [s].
    max_clock_skew_s : float
        How far ``sent_ts`` and a heat window's start may be from the coordinator's clock,
        either way, and how far ahead a telemetry sample may be [s].
    checkpoint_url : str or None
        Where checkpoint blobs go: an fsspec URL or a local directory (``s3://bucket/prefix``
        with s3fs installed); None keeps them beside a SQLite database, else refuses tasks.
    max_checkpoint_bytes : int
        Largest checkpoint blob accepted [bytes].
    checkpoint_keep : int
        Checkpoints kept per task: the newest ones; older ones are pruned from the store
        (their rows stay, marked ``pruned_ts``).
    replay_keep : int
        With ``verify_results``, for a job with ``verify_rel_l2`` (segment replay): older
        checkpoints kept besides the newest, a uniform random sample the device cannot see, so
        that a segment early in a long task can still be replayed (0: none).
    max_artifact_bytes : int
        Largest job artifact accepted (``PUT /v1/artifacts/{sha256}``) [bytes]; artifacts are
        kept in the checkpoint store, under ``artifacts/``.
    lease_s : float
        How long a lease holds without news from its device [s]; heartbeats, progress reports
        and checkpoints renew it.
    scheduling_policy : str
        The policy of :mod:`heatgrid.core.scheduling` that grants leases.
    max_wait_s : float
        How long a task waits for a heater before a device without a room may take it [s].
    retry_base_s, retry_max_s : float
        Backoff before a failed or expired task is retried: ``retry_base_s · 2^(attempt−1)``,
        at most ``retry_max_s`` [s].
    compute_price_eur_per_kwh : float
        What submitters pay per kWh their tasks burn [EUR/kWh].
    owner_share : float
        Share of that paid to the heater's owner [-]; the rest is the platform's fee.
    rate_limit_per_s : float
        Requests per second allowed per token, on average, per coordinator process [1/s].
    rate_limit_burst : int
        Requests a token may send at once before the rate applies.
    anonymous_rate_limit_per_s : float
        Requests per second allowed per client address for requests without a valid
        credential (none, or refused; enrollment), per coordinator process [1/s].
    anonymous_rate_limit_burst : int
        Such requests an address may send at once before that rate applies.
    credential_cache_s : float
        How long a verified API key is trusted without reading it from the database again
        [s]; 0 checks every request. Revocation through this process takes effect at once;
        through another process, within this time (see :mod:`heatgrid.coordinator.credentials`).
    device_credential_cache_s : float
        The same for device tokens [s]. It can be long (longer than a heartbeat interval, or
        the cache never hits): every device request checks its device row for revocation
        anyway, so a revoked device is refused at once whatever this is.
    metrics_refresh_s : float
        Longest ``/metrics`` serves the fleet gauges (devices online, fleet heat, tasks per
        state) without reading them from the database again [s].
    expiry_interval_s : float
        How often the process ends leases whose devices went silent [s].
    hardware_challenges : bool
        Challenge CPU and GPU devices (:mod:`heatgrid.coordinator.challenges`) at enrollment,
        on new hardware and at random; they get tasks only once they pass.
    verify_results : bool
        Verify results before paying for them (:mod:`heatgrid.coordinator.verification`):
        completed results are held, replicated on devices of other owners as each device's
        reputation asks, and paid when enough owners agree. Off: a result is kept and paid
        as it comes.
    verify_quorum : int
        Owners whose devices must return the same result for a checked task, >= 2.
    verify_max_results : int
        Results a task may be run for before its results are void and it runs again,
        >= ``verify_quorum``.
    spot_check_floor : float
        Share of a trusted device's results still replicated, in (0, 1].
    hold_limit_s : float
        Longest a result's credit stays held unverified [s] (14 days): an unchecked result no
        later spot check of its device covered, or a checked one no device of another owner
        replicated, is then refunded to the submitter (:func:`heatgrid.core.trust.held_fate`).
    clawback_window_s : float
        Clawback, on by default (90 days, :data:`heatgrid.core.trust.DEFAULT_CLAWBACK_WINDOW_S`;
        0: off): when a device is caught with a wrong result, what its unchecked results
        reported within this long before the catch were paid is taken back from its owner's
        balance (never more than the balance holds) and refunded to the submitter
        (:func:`heatgrid.core.trust.clawback_due`); the operator's release of the device
        reverses it [s], >= 0.
    challenge_every_s : float
        Mean time between random re-checks of a device [s]; 0: never.
    challenge_target_s : float
        Time the claimed device needs for a challenge [s].
    challenge_max_n : int
        Largest side of a challenge's matrices [entries].
    challenge_rows_checked : int
        Places checked per challenge (rows of the chain, and as many blocks of the working set).
    challenge_max_memory_bytes : int
        Largest working set a challenge asks a device to hold [bytes]; a device claiming more
        than this over :data:`heatgrid.core.challenge.DEFAULT_MEMORY_FRACTION` is checked up to
        it only. 0: no memory check.
    challenge_reveal_slack_s : float
        Round trip and scheduling allowed between picking blocks of the working set and
        receiving their seal [s] (:func:`heatgrid.core.challenge_space.seal_deadline_s`).
    bitcoin_network : str
        Network that owners' payout addresses must be for: ``mainnet``, ``testnet``,
        ``signet`` or ``regtest``.
    stratum_url : str or None
        Where miners reach the coordinator's Stratum proxy (``stratum+tcp://HOST:PORT``), told
        to them with their mining credentials; None when no proxy runs.
    dashboard_session_s : float
        How long a dashboard login lasts, on the coordinator's clock [s] (an emulated clock's
        seconds pass faster: the demo gives it its speed times longer).
    session_secret : str
        Key that signs the dashboard's session cookies and CSRF tokens: from
        ``$HEATGRID_SESSION_SECRET``, else random per ``Settings`` (``serve --workers`` hands
        one ``Settings`` to every worker, so they agree).
    """

    database_url: str
    heartbeat_interval_s: float = 60.0
    online_window_s: float = 180.0
    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 30.0
    ready_wait_s: float = 5.0
    max_clock_skew_s: float = 300.0
    checkpoint_url: str | None = None
    max_checkpoint_bytes: int = 256 * 1024 * 1024
    checkpoint_keep: int = 3
    replay_keep: int = 8
    max_artifact_bytes: int = 256 * 1024 * 1024
    lease_s: float = DEFAULT_LEASE_S
    scheduling_policy: str = "heat-aware"
    max_wait_s: float = 900.0
    retry_base_s: float = DEFAULT_RETRY_BASE_S
    retry_max_s: float = DEFAULT_RETRY_MAX_S
    compute_price_eur_per_kwh: float = 0.20
    owner_share: float = 0.85
    rate_limit_per_s: float = 20.0
    rate_limit_burst: int = 200
    anonymous_rate_limit_per_s: float = 5.0
    anonymous_rate_limit_burst: int = 100
    credential_cache_s: float = 10.0
    device_credential_cache_s: float = 3600.0
    metrics_refresh_s: float = 15.0
    expiry_interval_s: float = 15.0
    hardware_challenges: bool = False
    verify_results: bool = False
    verify_quorum: int = 2
    verify_max_results: int = 3
    spot_check_floor: float = DEFAULT_SPOT_CHECK_FLOOR
    hold_limit_s: float = DEFAULT_HOLD_LIMIT_S
    clawback_window_s: float = DEFAULT_CLAWBACK_WINDOW_S
    challenge_every_s: float = 7 * 86_400.0
    challenge_target_s: float = DEFAULT_CHALLENGE_TARGET_S
    challenge_max_n: int = MAX_CHALLENGE_N
    challenge_rows_checked: int = DEFAULT_ROWS_CHECKED
    challenge_max_memory_bytes: int = 1 << 40
    challenge_reveal_slack_s: float = DEFAULT_REVEAL_SLACK_S
    bitcoin_network: str = "mainnet"
    stratum_url: str | None = None
    dashboard_session_s: float = 8 * 3600.0
    session_secret: str = field(default_factory=_session_secret, repr=False)

    def __post_init__(self) -> None:
        if self.verify_quorum < 2 or self.verify_max_results < self.verify_quorum:
            raise InputError(
                "verify_quorum must be >= 2 and verify_max_results >= verify_quorum, got "
                f"{self.verify_quorum} and {self.verify_max_results}"
            )
        if not 0.0 < self.hold_limit_s < float("inf"):
            raise InputError(f"hold_limit_s must be a positive number, got {self.hold_limit_s}")
        if not 0.0 <= self.clawback_window_s < float("inf"):
            raise InputError(
                "clawback_window_s must be a number of seconds >= 0 (0: clawback off), got "
                f"{self.clawback_window_s}"
            )
        if not 60.0 <= self.dashboard_session_s < float("inf"):
            raise InputError(
                f"dashboard_session_s must be at least 60, got {self.dashboard_session_s}"
            )
        if self.replay_keep < 0:
            raise InputError(f"replay_keep must be >= 0, got {self.replay_keep}")
        if not 0.0 < self.spot_check_floor <= 1.0:
            raise InputError(f"spot_check_floor must be in (0, 1], got {self.spot_check_floor}")
        if not self.challenge_reveal_slack_s >= 0.0:
            raise InputError(
                f"challenge_reveal_slack_s must be >= 0, got {self.challenge_reveal_slack_s}"
            )
        if self.bitcoin_network not in NETWORKS:
            raise InputError(
                f"bitcoin_network must be one of {', '.join(NETWORKS)}, "
                f"got {self.bitcoin_network!r}"
            )
