"""The DKIM rotation state machine, step by step with an injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from postmaster.checks.dkim_rotation import (
    ActionKind,
    KeyPhase,
    RotationKey,
    RotationPlan,
    RotationState,
    next_selector,
    plan_rotation,
)

DOMAIN = "example.test"
EVERY = timedelta(days=90)
GRACE = timedelta(days=7)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def step(state: RotationState, clock: Clock, served: set[str], **kwargs: object) -> RotationPlan:
    plan = plan_rotation(
        state,
        now=clock.now,
        served=served,
        domain=DOMAIN,
        rotate_every=EVERY,
        grace=GRACE,
        **kwargs,  # type: ignore[arg-type]
    )
    # Whatever the step, the state survives a JSON round trip unchanged.
    assert RotationState.from_dict(json.loads(json.dumps(plan.state.to_dict()))) == plan.state
    return plan


def kinds(plan: RotationPlan) -> list[tuple[ActionKind, str]]:
    return [(a.kind, a.selector) for a in plan.actions]


def test_full_rotation_cycle() -> None:
    clock = Clock(datetime(2026, 1, 10, 9, 30, tzinfo=UTC))
    served: set[str] = set()

    # A new domain: a first key, pending until DNS serves it; nothing signs yet.
    plan = step(RotationState(), clock, served)
    assert kinds(plan) == [(ActionKind.GENERATE, "pm20260110")]
    assert (plan.active, plan.pending) == (None, "pm20260110")
    assert plan.waiting is not None
    assert plan.waiting.startswith("waiting for selector pm20260110 to be served by DNS; publish the TXT record at ")
    assert "pm20260110._domainkey.example.test" in plan.waiting
    assert plan.next_change is None  # only DNS can move it on

    # Not served yet: nothing happens, however long it takes.
    clock.advance(days=3)
    plan = step(plan.state, clock, served)
    assert plan.actions == ()
    assert plan.pending == "pm20260110"

    # Served: it becomes active.
    served.add("pm20260110")
    clock.advance(hours=1)
    activated_at = clock.now
    plan = step(plan.state, clock, served)
    assert kinds(plan) == [(ActionKind.ACTIVATE, "pm20260110")]
    assert (plan.active, plan.pending, plan.waiting) == ("pm20260110", None, None)
    assert plan.next_change == activated_at + EVERY
    assert "next rotation from 2026-04-13T10:30:00Z" in plan.summary

    # A day before it is due: nothing.
    clock.now = activated_at + EVERY - timedelta(days=1)
    plan = step(plan.state, clock, served)
    assert plan.actions == ()

    # Due: the successor is generated; the active key keeps signing meanwhile.
    clock.now = activated_at + EVERY
    plan = step(plan.state, clock, served)
    assert kinds(plan) == [(ActionKind.GENERATE, "pm20260413")]
    assert (plan.active, plan.pending) == ("pm20260110", "pm20260413")
    assert plan.waiting is not None
    assert "then switch signing from pm20260110 to it" in plan.waiting

    # DNS serves it: switch, and the old key retires for the grace period.
    served.add("pm20260413")
    clock.advance(minutes=10)
    switched_at = clock.now
    plan = step(plan.state, clock, served)
    assert kinds(plan) == [(ActionKind.ACTIVATE, "pm20260413"), (ActionKind.RETIRE, "pm20260110")]
    assert (plan.active, plan.pending) == ("pm20260413", None)
    retiring = plan.state.retiring
    assert [k.selector for k in retiring] == ["pm20260110"]
    assert retiring[0].retire_after == switched_at + GRACE
    assert plan.state.selectors == ("pm20260110", "pm20260413")  # both stay published
    assert plan.next_change == switched_at + GRACE

    # Grace not over: still published.
    clock.now = switched_at + GRACE - timedelta(seconds=1)
    assert step(plan.state, clock, served).actions == ()

    # Grace over: dropped.
    clock.now = switched_at + GRACE
    plan = step(plan.state, clock, served)
    assert kinds(plan) == [(ActionKind.DROP, "pm20260110")]
    assert plan.drop == ("pm20260110",)
    assert plan.state.selectors == ("pm20260413",)
    assert plan.next_change == switched_at + EVERY


def test_without_rotate_every_the_key_is_kept() -> None:
    clock = Clock(datetime(2026, 1, 10, tzinfo=UTC))
    plan = plan_rotation(RotationState(), now=clock.now, served=set(), domain=DOMAIN)
    plan = plan_rotation(plan.state, now=clock.advance(days=1), served={"pm20260110"}, domain=DOMAIN)
    assert plan.active == "pm20260110"
    plan = plan_rotation(plan.state, now=clock.advance(days=3650), served={"pm20260110"}, domain=DOMAIN)
    assert plan.actions == ()
    assert plan.next_change is None


def test_rotate_now_and_age_counts_from_activation() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    state = RotationState((RotationKey("pm20260101", created, KeyPhase.PENDING),), "pm20260101")
    # Published only after 200 days: the key is young from that moment on, not overdue.
    later = created + timedelta(days=200)
    plan = plan_rotation(state, now=later, served={"pm20260101"}, domain=DOMAIN, rotate_every=EVERY)
    assert kinds(plan) == [(ActionKind.ACTIVATE, "pm20260101")]
    assert plan.generate == ()
    forced = plan_rotation(plan.state, now=later, served={"pm20260101"}, domain=DOMAIN, rotate_now=True)
    assert forced.generate == ("pm20260720",)


def test_two_rotations_on_one_day_get_sortable_letters_and_names_are_never_reused() -> None:
    now = datetime(2026, 3, 5, 12, tzinfo=UTC)
    assert next_selector(now) == "pm20260305"
    assert next_selector(now, last="pm20260305") == "pm20260305b"
    assert next_selector(now, last="pm20260305b") == "pm20260305c"
    assert next_selector(now, last="pm20260301") == "pm20260305"
    # A clock behind the last name issued still sorts after it.
    assert next_selector(now, last="pm20270101") == "pm20270101a"
    assert next_selector(now, last="pm20260305z") == "pm20260305za"
    assert next_selector(now, prefix="mail", last="pm20270101") == "mail20260305"
    names = ["pm20260305", "pm20260305b", "pm20260305c", "pm20260306"]
    assert sorted(names) == names

    clock = Clock(now)
    state = RotationState()
    issued: list[str] = []
    for _ in range(3):
        plan = plan_rotation(state, now=clock.now, served=set(), domain=DOMAIN, rotate_now=True)
        issued += plan.generate
        pending = plan.pending
        assert pending is not None
        plan = plan_rotation(
            plan.state, now=clock.advance(minutes=5), served={pending}, domain=DOMAIN, grace=timedelta(0)
        )
        state = plan.state
    assert issued == ["pm20260305", "pm20260305b", "pm20260305c"]


def test_retiring_keys_expire_independently() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    state = RotationState(
        (
            RotationKey(
                "pm20260101",
                now - timedelta(days=150),
                KeyPhase.RETIRING,
                now - timedelta(days=100),
                now - timedelta(hours=1),
            ),
            RotationKey(
                "pm20260301",
                now - timedelta(days=90),
                KeyPhase.RETIRING,
                now - timedelta(days=60),
                now + timedelta(days=2),
            ),
            RotationKey("pm20260501", now - timedelta(days=30), KeyPhase.ACTIVE, now - timedelta(days=29)),
        ),
        "pm20260501",
    )
    plan = plan_rotation(state, now=now, served={"pm20260501"}, domain=DOMAIN)
    assert kinds(plan) == [(ActionKind.DROP, "pm20260101")]
    assert plan.state.selectors == ("pm20260301", "pm20260501")
    assert plan.next_change == now + timedelta(days=2)
    assert "pm20260301 stays published until 2026-06-03T00:00:00Z" in plan.summary


def test_a_broken_state_is_repaired() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    state = RotationState(
        (
            RotationKey("pm20260101", now - timedelta(days=150), KeyPhase.ACTIVE, now - timedelta(days=150)),
            RotationKey("pm20260201", now - timedelta(days=120), KeyPhase.ACTIVE, now - timedelta(days=120)),
            RotationKey("pm20260301", now - timedelta(days=90), KeyPhase.PENDING),
            RotationKey("pm20260401", now - timedelta(days=60), KeyPhase.PENDING),
        )
    )
    plan = plan_rotation(state, now=now, served=set(), domain=DOMAIN)
    assert kinds(plan) == [(ActionKind.RETIRE, "pm20260101"), (ActionKind.DROP, "pm20260301")]
    assert plan.active == "pm20260201"
    assert plan.pending == "pm20260401"


def test_state_serialisation_is_plain_json_and_validated() -> None:
    created = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
    state = RotationState(
        (
            RotationKey("pm20260110", created, KeyPhase.RETIRING, created, created + GRACE),
            RotationKey("pm20260413", created + EVERY, KeyPhase.ACTIVE, created + EVERY),
        ),
        "pm20260413",
    )
    data = state.to_dict()
    assert data == {
        "version": 1,
        "lastSelector": "pm20260413",
        "keys": [
            {
                "selector": "pm20260110",
                "created": "2026-01-10T09:30:00Z",
                "phase": "retiring",
                "activated": "2026-01-10T09:30:00Z",
                "retireAfter": "2026-01-17T09:30:00Z",
            },
            {
                "selector": "pm20260413",
                "created": "2026-04-10T09:30:00Z",
                "phase": "active",
                "activated": "2026-04-10T09:30:00Z",
            },
        ],
    }
    assert RotationState.from_dict(json.loads(json.dumps(data))) == state
    assert RotationState.from_dict(None) == RotationState()
    assert RotationState.from_dict({}) == RotationState()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"version": 2, "keys": []}, "version"),
        ({"keys": {}}, "must be a list"),
        ({"keys": [{"selector": "Bad_Sel", "created": "2026-01-01T00:00:00Z", "phase": "active"}]}, "invalid selector"),
        ({"keys": [{"selector": "a", "created": "2026-01-01T00:00:00Z", "phase": "sleeping"}]}, "invalid phase"),
        ({"keys": [{"selector": "a", "created": "2026-01-01T00:00:00", "phase": "active"}]}, "no time zone"),
        ({"keys": [{"selector": "a", "created": "yesterday", "phase": "active"}]}, "not ISO 8601"),
        ({"keys": [{"selector": "a", "created": "2026-01-01T00:00:00Z", "phase": "retiring"}]}, "needs retireAfter"),
        (
            {
                "keys": [
                    {"selector": "a", "created": "2026-01-01T00:00:00Z", "phase": "active"},
                    {"selector": "a", "created": "2026-01-02T00:00:00Z", "phase": "pending"},
                ]
            },
            "appears twice",
        ),
    ],
)
def test_bad_state_is_refused(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RotationState.from_dict(data)


def test_naive_datetimes_and_bad_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_rotation(RotationState(), now=datetime(2026, 1, 1), served=set(), domain=DOMAIN)
    with pytest.raises(ValueError, match="positive"):
        plan_rotation(
            RotationState(),
            now=datetime(2026, 1, 1, tzinfo=UTC),
            served=set(),
            domain=DOMAIN,
            rotate_every=timedelta(0),
        )
