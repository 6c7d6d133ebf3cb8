"""Per-credential rate limits: a token bucket per API key, device token or client address."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.coordinator.ratelimit import RateLimiter

from .conftest import Coordinator


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Three requests at once, then one every 1000 s: the tests never wait for a refill.

    Requests without a valid credential get four per address, then one every 1000 s.
    """
    return {
        "rate_limit_per_s": 0.001,
        "rate_limit_burst": 3,
        "anonymous_rate_limit_per_s": 0.001,
        "anonymous_rate_limit_burst": 4,
    }


class _Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_a_bucket_allows_its_burst_then_refills_at_the_rate() -> None:
    clock = _Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.wait_s("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_s("a") == pytest.approx(0.5)
    assert limiter.wait_s("b") == 0.0  # another credential has its own bucket
    clock.now_s += 0.5
    assert limiter.wait_s("a") == 0.0
    assert limiter.wait_s("a") > 0.0
    clock.now_s += 100.0  # a long pause refills to the burst, not beyond
    assert [limiter.wait_s("a") for _ in range(4)].count(0.0) == 3


@given(
    rate_per_s=st.floats(0.1, 100.0),
    burst=st.integers(1, 50),
    gaps_s=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate_per_s: float, burst: int, gaps_s: list[float]
) -> None:
    clock = _Clock()
    limiter = RateLimiter(rate_per_s=rate_per_s, burst=burst, clock=clock)
    allowed = 0
    for gap_s in gaps_s:
        clock.now_s += gap_s
        allowed += limiter.wait_s("k") == 0.0
    assert allowed <= burst + rate_per_s * clock.now_s + 1e-9


def test_the_table_of_buckets_is_bounded() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=_Clock(), max_keys=10)
    for n in range(100):
        limiter.wait_s(f"k{n}")
    assert len(limiter._buckets) == 10


@pytest.mark.parametrize(("rate_per_s", "burst"), [(0.0, 1), (float("nan"), 1), (1.0, 0)])
def test_bad_limits_are_refused(rate_per_s: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        RateLimiter(rate_per_s=rate_per_s, burst=burst)


def test_a_credential_over_its_rate_gets_429_and_others_do_not(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key("alice")
    other = coordinator.owner_key("bob")
    statuses = [
        coordinator.client.get("/v1/devices", headers=coordinator.auth(owner)).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    refused = coordinator.client.get("/v1/devices", headers=coordinator.auth(owner))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "rate limit" in refused.json()["detail"]
    assert coordinator.client.get("/v1/devices", headers=coordinator.auth(other)).status_code == 200
    assert coordinator.client.get("/healthz").status_code == 200  # health checks are exempt


def _victim(coordinator: Coordinator) -> tuple[str, str]:
    """A heater enrolled with one anonymous request (the address has three left)."""
    return coordinator.enroll(coordinator.enrollment_code(coordinator.owner_key("alice")))


def test_forged_tokens_naming_a_device_do_not_use_up_its_rate(coordinator: Coordinator) -> None:
    """Issue 12, fault 3: ``hgd_<victim id>_<junk>`` used to be counted against the victim."""
    device_id, token = _victim(coordinator)
    url = f"/v1/devices/{device_id}/heartbeat"
    body = {"sent_ts": coordinator.clock()}
    forged = [
        coordinator.client.post(
            url, json=body, headers=coordinator.auth(f"hgd_{device_id}_junk{n}")
        ).status_code
        for n in range(10)
    ]
    assert forged == [401] * 3 + [429] * 7  # charged to the forger's address
    real = [
        coordinator.client.post(url, json=body, headers=coordinator.auth(token)).status_code
        for _ in range(3)
    ]
    assert real == [200, 200, 200]  # the victim's own bucket is untouched
    over = coordinator.client.post(url, json=body, headers=coordinator.auth(token))
    assert over.status_code == 429  # and it is the device's bucket, not a free pass
    assert "a credential may send" in over.json()["detail"]


@pytest.mark.parametrize("kind", ["hgd", "hgk"])
def test_rotating_made_up_ids_is_still_limited(coordinator: Coordinator, kind: str) -> None:
    def forged(n: int) -> int:
        headers = coordinator.auth(f"{kind}_{n:016x}_secret")
        if kind == "hgk":
            return coordinator.client.get("/v1/devices", headers=headers).status_code
        url = f"/v1/devices/{n:016x}/claim"
        return coordinator.client.post(url, json={"slots": 1}, headers=headers).status_code

    assert [forged(n) for n in range(8)] == [401] * 4 + [429] * 4
    refused = coordinator.client.get("/v1/jobs", headers=coordinator.auth(f"{kind}_{99:016x}_x"))
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert "without a valid credential" in refused.json()["detail"]
    # a valid key from the same address still works: it has its own bucket
    operator = coordinator.auth(coordinator.operator_key)
    assert coordinator.client.get("/v1/devices", headers=operator).status_code == 200


def test_requests_without_a_token_are_limited_by_address(coordinator: Coordinator) -> None:
    statuses = [coordinator.client.get("/v1/jobs").status_code for _ in range(6)]
    assert statuses == [401] * 4 + [429] * 2
    assert coordinator.client.get("/readyz").status_code == 200  # probes are exempt
