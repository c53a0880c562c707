"""Condition bookkeeping: lastTransitionTime moves only on a status change; summaries; which changes are Events."""

from __future__ import annotations

import pytest

from postmaster.api.common import CommonStatus, Condition
from postmaster.conditions import Stamp, merge_conditions, summarize
from postmaster.runtime.statusbook import merge_patch, ready_event

T0, T1 = Stamp(1, "2026-11-21T10:00:00Z"), Stamp(2, "2026-11-21T11:00:00Z")


def test_transition_time_moves_only_when_status_changes() -> None:
    first = merge_conditions([], [T0.condition("Ready", "False", "SecretNotFound", "a")])
    same = merge_conditions(first, [T1.condition("Ready", "False", "SecretKeyNotFound", "b")])
    assert same[0].last_transition_time == T0.now
    assert same[0].reason == "SecretKeyNotFound"
    assert same[0].observed_generation == 2
    flipped = merge_conditions(same, [T1.condition("Ready", "True", "Ready", "c")])
    assert flipped[0].last_transition_time == T1.now


def test_unchanged_input_gives_an_identical_list() -> None:
    def conds(stamp: Stamp) -> list[Condition]:
        return [stamp.condition("Ready", "True", "Ready", "ok"), stamp.condition("SMTPReachable", "True", "Succeeded")]

    first = merge_conditions([], conds(T0))
    later = Stamp(1, T1.now)  # same generation, later time: nothing may change
    assert merge_conditions(first, conds(later)) == first


def test_other_writers_conditions_are_kept_and_removal_works() -> None:
    first = merge_conditions([], [T0.condition("A", "True", "R"), T0.condition("B", "True", "R")])
    kept = merge_conditions(first, [T1.condition("A", "False", "X")])
    assert [c.type for c in kept] == ["A", "B"]
    assert kept[1] == first[1]
    assert [c.type for c in merge_conditions(kept, [], remove=["B"])] == ["A"]


def test_summary_takes_the_first_blocking_detail() -> None:
    details = [
        T0.condition("CredentialsResolved", "True", "CredentialsFound"),
        T0.condition("SMTPReachable", "Unknown", "RateLimited", "m"),
    ]
    ready, reconciling, stalled, *_ = summarize(details, T0, ready_message="fine")
    assert (ready.status, ready.reason, ready.message) == ("Unknown", "RateLimited", "m")
    assert reconciling.status == "False"
    assert stalled.status == "False"
    ready, *_ = summarize([T0.condition("X", "True", "Y")], T0, ready_message="fine")
    assert (ready.status, ready.message) == ("True", "fine")
    stall = T0.condition("Stalled", "True", "InvalidSpec", "spec.region: ...")
    ready, _, stalled, *_ = summarize([], T0, ready_message="fine", stalled=stall)
    assert (ready.status, ready.reason, stalled.status) == ("False", "InvalidSpec", "True")


def _status(*ready: tuple[str, str]) -> CommonStatus:
    return CommonStatus(conditions=[T0.condition("Ready", status, reason, "m") for status, reason in ready])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        # A new object: a check still running is not news, nor is being Ready; a verdict a person must act on is.
        ((), (("Unknown", "DNSCheckPending"),), None),
        ((), (("True", "Ready"),), None),
        ((), (("False", "SecretNotFound"),), ("Warning", "SecretNotFound")),
        # Every change of Ready's status or reason is told, the way back to Ready too.
        ((("Unknown", "DNSCheckPending"),), (("True", "Ready"),), ("Normal", "Ready")),
        ((("True", "Ready"),), (("False", "AuthenticationFailed"),), ("Warning", "AuthenticationFailed")),
        ((("False", "AuthenticationFailed"),), (("False", "TLSMismatch"),), ("Warning", "TLSMismatch")),
        ((("False", "RecordMissing"),), (("True", "Ready"),), ("Normal", "Ready")),
        ((("True", "Ready"),), (("Unknown", "DNSTimeout"),), ("Warning", "DNSTimeout")),
        # The same verdict again (a new message, a later check) is not.
        ((("True", "Ready"),), (("True", "Ready"),), None),
        ((("False", "RecordMissing"),), (("False", "RecordMissing"),), None),
    ],
)
def test_which_changes_of_ready_are_events(
    before: tuple[tuple[str, str], ...], after: tuple[tuple[str, str], ...], event: tuple[str, str] | None
) -> None:
    told = ready_event(_status(*before), _status(*after))
    assert (told[:2] if told else None) == event


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        # Nested objects are merged by the API server: what is gone inside them must be deleted explicitly.
        (
            {"dkim": {"summary": "x", "waiting": "w"}},
            {"dkim": {"summary": "y"}},
            {"dkim": {"summary": "y", "waiting": None}},
        ),
        ({"dkim": {"waiting": "w"}}, {}, {"dkim": None}),
        ({}, {"dkim": {"summary": "y"}}, {"dkim": {"summary": "y"}}),
        # Lists are replaced whole.
        ({"records": [1, 2]}, {"records": [1]}, {"records": [1]}),
    ],
)
def test_status_patches_delete_what_is_gone_at_every_depth(
    old: dict[str, object], new: dict[str, object], patch: dict[str, object]
) -> None:
    assert merge_patch(old, new) == patch
