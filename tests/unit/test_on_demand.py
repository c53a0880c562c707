"""On-demand requests (postmaster.dev/probe-now, postmaster.dev/send-test-to) and their minimum interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postmaster.runtime.probing import decide

HOUR = timedelta(hours=1)
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_first_request_is_accepted_and_says_when_the_next_may_come() -> None:
    decision = decide(None, "ops@example.com", HOUR, T0)
    assert decision is not None
    assert decision.accepted
    assert decision.record["lastAcceptedTime"] == "2026-11-21T12:00:00Z"
    assert decision.record["nextAllowedTime"] == "2026-11-21T13:00:00Z"


def test_the_same_request_is_handled_once() -> None:
    first = decide(None, "ops@example.com", HOUR, T0)
    assert first is not None
    assert decide(first.record, "ops@example.com", HOUR, T0 + 2 * HOUR) is None


def test_a_new_request_too_soon_is_throttled_until_the_interval_passed() -> None:
    first = decide(None, "ops@example.com", HOUR, T0)
    assert first is not None
    second = decide(first.record, "ops@example.com 2", HOUR, T0 + timedelta(minutes=10))
    assert second is not None
    assert not second.accepted
    assert second.record["outcome"] == "Throttled"
    assert second.record["nextAllowedTime"] == "2026-11-21T13:00:00Z"
    assert "2026-11-21T13:00:00Z" in second.record["message"]
    # the throttled request did not move the window; a later one is accepted
    third = decide(second.record, "ops@example.com 3", HOUR, T0 + HOUR)
    assert third is not None
    assert third.accepted
