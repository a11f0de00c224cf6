"""Admission against quotas and the submit rate (token bucket arithmetic), and the retry policy: which failures go
back to the queue and how long they wait. Table-driven cases and hypothesis properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xrunner.contracts.policy import RATE_BURST_S, Admitted, Bucket, Rejected, admit, backoff_s, refill, should_retry
from xrunner.contracts.spec import RetryPolicy
from xrunner.contracts.stats import TenantLimits

NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
LIMITS = TenantLimits(weight=1.0, max_inflight=10, max_queued=5, submit_rate_per_s=2.0)
FULL = Bucket(2.0 * RATE_BURST_S, NOW)
EMPTY = Bucket(0.0, NOW)
NEW = Bucket(0.0, None)

# --- admission -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant_queued", "queued_total", "max_total", "bucket", "drain", "cause", "scope", "retry_after"),
    [
        (0, 100, 100, FULL, 1.0, "global_queue_full", "global", 1.0),
        (0, 109, 100, FULL, 2.0, "global_queue_full", "global", 5.0),
        # The global limit is checked first: a tenant over its own limit too hears about the global one.
        (5, 100, 100, EMPTY, 1.0, "global_queue_full", "global", 1.0),
        (5, 5, 100, FULL, 1.0, "tenant_queue_full", "tenant", 1.0),
        (8, 8, 100, FULL, 4.0, "tenant_queue_full", "tenant", 1.0),
        # The queue limits come before the rate: a full queue is not blamed on the rate.
        (5, 5, 100, EMPTY, 1.0, "tenant_queue_full", "tenant", 1.0),
        # An empty bucket at rate 2/s refills one token in half a second.
        (0, 0, 100, EMPTY, 1.0, "rate_limited", "tenant", 0.5),
        (0, 0, 100, Bucket(0.5, NOW), 1.0, "rate_limited", "tenant", 0.25),
        # A drain rate of zero is treated as 0.1/s, and the wait is capped at an hour.
        (0, 100, 100, FULL, 0.0, "global_queue_full", "global", 10.0),
        (0, 10**6, 10, FULL, 0.1, "global_queue_full", "global", 3600.0),
        # A tiny wait is still a positive one.
        (0, 0, 100, Bucket(0.99999, NOW), 1.0, "rate_limited", "tenant", 0.05),
    ],
)
def test_admission_rejects_with_the_cause_scope_and_retry_after_of_the_first_limit_hit(
    tenant_queued: int,
    queued_total: int,
    max_total: int,
    bucket: Bucket,
    drain: float,
    cause: str,
    scope: str,
    retry_after: float,
) -> None:
    decision = admit(LIMITS, tenant_queued, queued_total, max_total, bucket, NOW, drain)
    assert isinstance(decision, Rejected)
    assert (decision.cause, decision.scope, decision.retry_after_s) == (cause, scope, retry_after)
    assert decision.detail


@pytest.mark.parametrize("bucket", [NEW, FULL, Bucket(1.0, NOW), Bucket(0.0, NOW - timedelta(seconds=0.5))])
def test_admission_under_every_limit_spends_one_token(bucket: Bucket) -> None:
    decision = admit(LIMITS, 4, 99, 100, bucket, NOW)
    assert isinstance(decision, Admitted)
    assert decision.bucket == Bucket(refill(bucket, LIMITS.submit_rate_per_s, NOW).tokens - 1.0, NOW)


@settings(max_examples=100, deadline=None)
@given(
    tenant_queued=st.integers(0, 10**7),
    queued_total=st.integers(0, 10**7),
    max_total=st.integers(0, 10**7),
    max_queued=st.integers(0, 10**7),
    rate=st.floats(0.001, 10**6),
    tokens=st.floats(-5.0, 5.0),
    drain=st.floats(0.0, 10**6),
)
def test_every_rejection_carries_a_positive_bounded_retry_after(
    tenant_queued: int, queued_total: int, max_total: int, max_queued: int, rate: float, tokens: float, drain: float
) -> None:
    limits = TenantLimits(max_queued=max_queued, submit_rate_per_s=rate)
    decision = admit(limits, tenant_queued, queued_total, max_total, Bucket(tokens, NOW), NOW, drain)
    if isinstance(decision, Rejected):
        assert 0.05 <= decision.retry_after_s <= 3600.0
        expected = {
            "global_queue_full": queued_total >= max_total,
            "tenant_queue_full": queued_total < max_total and tenant_queued >= max_queued,
            "rate_limited": queued_total < max_total and tenant_queued < max_queued,
        }
        assert expected[decision.cause]
        assert decision.scope == ("global" if decision.cause == "global_queue_full" else "tenant")
    else:
        assert queued_total < max_total and tenant_queued < max_queued and tokens >= 1.0


# --- the token bucket ------------------------------------------------------------------------------------------------


def admissions_in_an_instant(limits: TenantLimits, bucket: Bucket, now: datetime) -> tuple[int, Bucket, Rejected]:
    """Submit until rejected, all at `now`: how many got in, the bucket after them, and the rejection."""
    admitted = 0
    while True:
        decision = admit(limits, 0, 0, 10**9, bucket, now)
        if isinstance(decision, Rejected):
            return admitted, bucket, decision
        admitted, bucket = admitted + 1, decision.bucket
        assert admitted <= 10_000, "the bucket never runs dry"


@settings(max_examples=100, deadline=None)
@given(half_rate=st.integers(1, 1000), idle_s=st.floats(0.0, 3600.0))
@example(half_rate=72, idle_s=1 / 3)  # 1/3 s is 333,333 µs on the clock: a refill of 11.99999 tokens, not 12
def test_a_tenant_gets_rate_times_burst_admissions_at_once_then_one_more_per_one_over_rate_seconds(
    half_rate: int, idle_s: float
) -> None:
    rate = half_rate / 2  # so that rate * burst is a whole number of tokens
    limits = TenantLimits(submit_rate_per_s=rate)
    burst, bucket, rejected = admissions_in_an_instant(limits, NEW, NOW)
    assert burst == rate * RATE_BURST_S
    assert (rejected.cause, rejected.scope) == ("rate_limited", "tenant")
    assert rejected.retry_after_s == max(0.05, math.ceil(1000 / rate) / 1000)  # rounded up: a retry then passes

    # 1/rate seconds later (rounded up to the clock's microsecond) exactly one more submission gets in.
    later = NOW + timedelta(microseconds=math.ceil(1e6 / rate))
    again, bucket, _ = admissions_in_an_instant(limits, bucket, later)
    assert again == 1

    # However long the tenant stays idle, the bucket holds at most rate * burst tokens.
    rested = later + timedelta(seconds=idle_s)
    idle = (rested - later).total_seconds()  # what the bucket sees: the idle time on the clock's microseconds
    refilled, _, _ = admissions_in_an_instant(limits, bucket, rested)
    assert refilled == min(rate * RATE_BURST_S, math.floor(1e-9 + bucket.tokens + idle * rate))


@pytest.mark.parametrize(("rate", "burst"), [(0.1, 1), (0.5, 1), (0.75, 1), (1.3, 2), (2.6, 5), (100.0, 200)])
def test_a_fractional_rate_admits_the_whole_tokens_of_its_burst_and_at_least_one(rate: float, burst: int) -> None:
    admitted, _, _ = admissions_in_an_instant(TenantLimits(submit_rate_per_s=rate), NEW, NOW)
    assert admitted == burst


def test_refill_adds_rate_tokens_per_second_up_to_the_burst_and_ignores_a_clock_going_back() -> None:
    assert refill(NEW, 3.0, NOW) == Bucket(6.0, NOW)
    assert refill(Bucket(1.0, NOW), 3.0, NOW + timedelta(seconds=1)) == Bucket(4.0, NOW + timedelta(seconds=1))
    assert refill(Bucket(1.0, NOW), 3.0, NOW + timedelta(seconds=10)).tokens == 6.0
    assert refill(Bucket(1.0, NOW), 3.0, NOW - timedelta(seconds=10)).tokens == 1.0


# --- retries ---------------------------------------------------------------------------------------------------------

RETRY = RetryPolicy(max_attempts=3, retry_on_exit_codes=[1, 137])


@pytest.mark.parametrize(
    ("policy", "exit_code", "retries_used", "expected"),
    [
        (RETRY, 1, 0, True),
        (RETRY, 137, 1, True),
        (RETRY, 1, 2, False),  # the third attempt was the last one
        (RETRY, 1, 7, False),
        (RETRY, 2, 0, False),  # not a retryable exit code
        (RETRY, 0, 0, False),
        (RETRY, None, 0, False),  # killed by a signal or a sandbox error: no exit code
        (RetryPolicy(max_attempts=1, retry_on_exit_codes=[1]), 1, 0, False),
        (RetryPolicy(max_attempts=5), 1, 0, False),  # no exit code is retryable by default
    ],
)
def test_a_failure_is_retried_only_for_a_listed_exit_code_and_within_max_attempts(
    policy: RetryPolicy, exit_code: int | None, retries_used: int, expected: bool
) -> None:
    assert should_retry(policy, exit_code, retries_used) is expected


@settings(max_examples=100, deadline=None)
@given(max_attempts=st.integers(1, 100), codes=st.lists(st.integers(0, 255), max_size=5), code=st.integers(0, 255))
def test_a_job_that_always_fails_runs_max_attempts_times_when_its_exit_code_is_retryable(
    max_attempts: int, codes: list[int], code: int
) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, retry_on_exit_codes=codes)
    attempts, retries_used = 1, 0
    while should_retry(policy, code, retries_used):
        attempts, retries_used = attempts + 1, retries_used + 1
        assert attempts <= 100
    assert attempts == (max_attempts if code in codes else 1)


@pytest.mark.parametrize(
    ("retries_used", "jitter", "expected"),
    [
        (0, 0.0, 1.0),
        (0, 0.5, 1.5),
        (1, 0.0, 2.0),
        (2, 0.0, 4.0),
        (2, 0.999, 7.996),
        (5, 0.0, 32.0),
        (8, 0.0, 256.0),
        (9, 0.0, 300.0),  # 2^9 * 2 s is past the 600 s cap: half of 600 s
        (10, 0.0, 300.0),
        (60, 0.0, 300.0),
        (99, 0.999, 599.7),
        (-1, 0.0, 1.0),  # the scheduler passes retries_used - 1; a negative count is the first step
    ],
)
def test_backoff_doubles_each_retry_until_the_cap(retries_used: int, jitter: float, expected: float) -> None:
    policy = RetryPolicy(backoff_s=2.0, backoff_max_s=600.0)
    assert backoff_s(policy, retries_used, jitter) == expected


@settings(max_examples=100, deadline=None)
@given(
    base=st.floats(0.0, 3600.0),
    cap=st.floats(0.0, 86_400.0),
    retries_used=st.integers(0, 98),
    jitter=st.floats(0.0, 1.0, exclude_max=True),
)
def test_backoff_stays_within_half_and_all_of_its_capped_exponential_step(
    base: float, cap: float, retries_used: int, jitter: float
) -> None:
    policy = RetryPolicy(backoff_s=base, backoff_max_s=cap)
    step = min(cap, base * 2.0**retries_used)
    delay = backoff_s(policy, retries_used, jitter)
    assert step * 0.5 - 5e-4 <= delay <= step + 5e-4
    assert delay <= cap + 5e-4
    following = backoff_s(policy, retries_used + 1, jitter)
    assert following >= delay  # never shrinks with more retries
    if base * 2.0 ** (retries_used + 1) <= cap:
        assert following == pytest.approx(2 * delay, abs=2e-3)  # exponential until the cap
