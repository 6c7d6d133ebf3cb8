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
    """Three requests at once, then one every 1000 s: the tests never wait for a refill."""
    return {"rate_limit_per_s": 0.001, "rate_limit_burst": 3}


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
