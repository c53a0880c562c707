"""Pure condition bookkeeping, per the Kubernetes API conventions and kstatus, on the one `Condition` type.

`lastTransitionTime` moves only when a condition's status changes; reason and message may change without
moving it. Conditions keep the order in which the operator first wrote them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from postmaster.api.common import Condition

Status = Literal["True", "False", "Unknown"]

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Stamp:
    """The generation a decision was made from and when: what every condition it makes carries."""

    generation: int | None
    now: str

    def condition(self, type_: str, status: Status, reason: str, message: str = "") -> Condition:
        return Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=self.now,
            observed_generation=self.generation,
        )


def merge_conditions(
    existing: Sequence[Condition], updates: Iterable[Condition], *, remove: Iterable[str] = ()
) -> list[Condition]:
    """`updates` applied over `existing` (an update whose status did not change keeps the old
    lastTransitionTime), types in `remove` dropped, the others kept as they are."""
    by_type = {c.type: c for c in existing}
    order = [c.type for c in existing]
    for update in updates:
        old = by_type.get(update.type)
        kept = (
            old is not None and old.status == update.status and old.last_transition_time != update.last_transition_time
        )
        cond = update.model_copy(update={"last_transition_time": old.last_transition_time}) if kept and old else update
        by_type[cond.type] = cond
        if cond.type not in order:
            order.append(cond.type)
    dropped = set(remove)
    return [by_type[t] for t in order if t not in dropped]


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def summarize(
    details: Sequence[Condition],
    stamp: Stamp,
    *,
    ready_message: str,
    stalled: Condition | None = None,
    reconciling: Condition | None = None,
) -> list[Condition]:
    """Ready, Reconciling and Stalled from the detail conditions, then the details.

    Ready is True only when every detail condition is True. Otherwise it carries the reason and message of
    the first detail that is not True (the most important comes first in `details`), or of `stalled` when a
    person must act. Reconciling is True while the operator still works towards a verdict.
    """
    blocking = next((d for d in details if d.status != "True"), None)
    if stalled is not None:
        ready = stamp.condition(READY, "False", stalled.reason, stalled.message)
    elif blocking is not None:
        ready = stamp.condition(
            READY, "False" if blocking.status == "False" else "Unknown", blocking.reason, blocking.message
        )
    else:
        ready = stamp.condition(READY, "True", "Ready", ready_message)
    return [
        ready,
        reconciling or stamp.condition(RECONCILING, "False", "Reconciled", "Nothing left to do."),
        stalled or stamp.condition(STALLED, "False", "Progressing", "Nothing needs a person."),
        *details,
    ]
