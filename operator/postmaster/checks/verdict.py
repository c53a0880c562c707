"""The shape every DNS readiness check returns, so the operator treats SPF, DKIM and DMARC alike.

A verdict carries at least:

* `reason`: a CamelCase, stable word (it is API: it lands in a condition's ``reason``);
* `status`: the condition status, ``"True"``, ``"False"`` or ``"Unknown"``;
* `message`: names the record and says exactly what to change.

`spf.SpfVerdict`, `dkim.DkimVerdict` (and the per-selector `dkim.SelectorVerdict`) and `dmarc.DmarcVerdict`
all satisfy the `Verdict` protocol. DNS timeouts and server failures are never verdicts about the
domain: they are always ``Unknown`` with reason ``DNSTimeout`` or ``DNSServerFailure`` (`TRANSIENT_REASONS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

__all__ = [
    "DNS_SERVER_FAILURE",
    "DNS_TIMEOUT",
    "TRANSIENT_REASONS",
    "ConditionStatus",
    "Verdict",
    "status_for",
    "worst_status",
]

ConditionStatus = Literal["True", "False", "Unknown"]

DNS_TIMEOUT = "DNSTimeout"
DNS_SERVER_FAILURE = "DNSServerFailure"
TRANSIENT_REASONS = frozenset({DNS_TIMEOUT, DNS_SERVER_FAILURE})
"""Reasons that mean "could not tell this time": status ``Unknown``, retried later, never a verdict."""


class Verdict(Protocol):
    """What the operator reads from any check to set a condition."""

    @property
    def reason(self) -> str: ...

    @property
    def status(self) -> ConditionStatus: ...

    @property
    def message(self) -> str: ...


def status_for(reason: str, *, ready: bool) -> ConditionStatus:
    """``True`` when ready, ``Unknown`` for the transient reasons, ``False`` otherwise."""
    if reason in TRANSIENT_REASONS:
        return "Unknown"
    return "True" if ready else "False"


def worst_status(statuses: Iterable[ConditionStatus]) -> ConditionStatus:
    """How several checks add up: any ``False`` wins, then any ``Unknown``; ``True`` only when all are."""
    seen = set(statuses)
    if "False" in seen:
        return "False"
    if "Unknown" in seen:
        return "Unknown"
    return "True"
