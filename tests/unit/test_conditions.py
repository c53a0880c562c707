"""Condition bookkeeping: lastTransitionTime moves only on a status change; summaries; Events to tell."""

from __future__ import annotations

from postmaster.conditions import Cond, merge_conditions, summarize
from postmaster.handlers.status import transitions

T0, T1 = "2026-11-21T10:00:00Z", "2026-11-21T11:00:00Z"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = merge_conditions([], [Cond("Ready", "False", "SecretNotFound", "a")], generation=1, now=T0)
    same = merge_conditions(first, [Cond("Ready", "False", "SecretKeyNotFound", "b")], generation=1, now=T1)
    assert same[0]["lastTransitionTime"] == T0
    assert same[0]["reason"] == "SecretKeyNotFound"
    flipped = merge_conditions(same, [Cond("Ready", "True", "Ready", "c")], generation=2, now=T1)
    assert flipped[0]["lastTransitionTime"] == T1
    assert flipped[0]["observedGeneration"] == 2


def test_unchanged_input_gives_an_identical_list() -> None:
    conds = [Cond("Ready", "True", "Ready", "ok"), Cond("SMTPReachable", "True", "Succeeded", "ok")]
    first = merge_conditions([], conds, generation=3, now=T0)
    assert merge_conditions(first, conds, generation=3, now=T1) == first


def test_other_writers_conditions_are_kept_and_removal_works() -> None:
    first = merge_conditions([], [Cond("A", "True", "R"), Cond("B", "True", "R")], generation=1, now=T0)
    kept = merge_conditions(first, [Cond("A", "False", "X")], generation=1, now=T1)
    assert [c["type"] for c in kept] == ["A", "B"]
    assert [c["type"] for c in merge_conditions(kept, [], generation=1, now=T1, remove=["B"])] == ["A"]


def test_summary_takes_the_first_blocking_detail() -> None:
    details = [
        Cond("CredentialsResolved", "True", "CredentialsFound"),
        Cond("SMTPReachable", "Unknown", "RateLimited", "m"),
    ]
    ready, reconciling, stalled, *_ = summarize(details, ready_message="fine")
    assert (ready.status, ready.reason, ready.message) == ("Unknown", "RateLimited", "m")
    assert reconciling.status == "False"
    assert stalled.status == "False"
    ready, *_ = summarize([Cond("X", "True", "Y")], ready_message="fine")
    assert (ready.status, ready.message) == ("True", "fine")
    stall = Cond("Stalled", "True", "InvalidSpec", "spec.region: ...")
    ready, _, stalled, *_ = summarize([], ready_message="fine", stalled=stall)
    assert (ready.status, ready.reason, stalled.status) == ("False", "InvalidSpec", "True")


def test_events_are_told_once_per_reason_and_ready_first() -> None:
    healthy = [Cond("Ready", "True", "Ready"), Cond("SMTPReachable", "True", "Succeeded")]
    old = {"conditions": merge_conditions([], healthy, generation=1, now=T0)}
    new = {
        "conditions": merge_conditions(
            old["conditions"],
            [
                Cond("Ready", "False", "AuthenticationFailed", "535"),
                Cond("Stalled", "True", "AuthenticationFailed", "535"),
                Cond("SMTPReachable", "False", "AuthenticationFailed", "535"),
            ],
            generation=1,
            now=T1,
        )
    }
    told = transitions(old, new)
    assert [(c["type"], c["reason"]) for c in told] == [("Ready", "AuthenticationFailed")]
    assert transitions(new, new) == []
    mismatch = [Cond("DKIMReady", "False", "KeyMismatch")]
    dns = {"conditions": merge_conditions(new["conditions"], mismatch, generation=1, now=T1)}
    assert [(c["type"], c["reason"]) for c in transitions(new, dns)] == [("DKIMReady", "KeyMismatch")]
