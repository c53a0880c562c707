"""Pure condition bookkeeping, per the Kubernetes API conventions and kstatus.

`lastTransitionTime` moves only when a condition's status changes; reason and message may change
without moving it. Conditions are kept as plain dicts in the order the operator first wrote them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"


@dataclass(frozen=True)
class Cond:
    type: str
    status: Status
    reason: str
    message: str = ""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    existing: Sequence[dict[str, Any]] | None,
    updates: Iterable[Cond],
    *,
    generation: int | None,
    now: str,
    remove: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Return a new list: `updates` applied over `existing`, types in `remove` dropped, others kept."""
    by_type = {c["type"]: dict(c) for c in (existing or [])}
    order = [c["type"] for c in (existing or [])]
    for cond in updates:
        old = by_type.get(cond.type)
        transition = old["lastTransitionTime"] if old and old.get("status") == cond.status else now
        by_type[cond.type] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": transition,
            "observedGeneration": generation,
        }
        if cond.type not in order:
            order.append(cond.type)
    dropped = set(remove)
    return [by_type[t] for t in order if t not in dropped]


def find(conditions: Sequence[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def summarize(
    details: Sequence[Cond],
    *,
    ready_message: str,
    stalled: Cond | None = None,
    reconciling: Cond | None = None,
) -> list[Cond]:
    """Ready, Reconciling and Stalled from the detail conditions.

    Ready is True only when every detail condition is True. Otherwise it carries the reason and message
    of the first detail that is not True (the most important comes first in `details`), Stalled when a
    person must act, Reconciling when the operator is still working on it.
    """
    blocking = next((d for d in details if d.status != "True"), None)
    if stalled is not None:
        ready = Cond(READY, "False", stalled.reason, stalled.message)
    elif blocking is not None:
        ready = Cond(READY, "False" if blocking.status == "False" else "Unknown", blocking.reason, blocking.message)
    else:
        ready = Cond(READY, "True", "Ready", ready_message)
    return [
        ready,
        reconciling or Cond(RECONCILING, "False", "Reconciled", "Nothing left to do."),
        stalled or Cond(STALLED, "False", "Progressing", "Nothing needs a person."),
        *details,
    ]
