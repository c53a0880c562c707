"""DKIM key rotation: a pure state machine the operator drives on a timer.

The practice it follows (M3AAWG's DKIM key rotation best practices): publish the next key under a new
selector *before* signing with it; switch signing only once DNS serves it; keep the old key published
for a grace period so mail already signed with it (queued, retried, re-verified) still verifies; then
remove the old key.

State: the keys of one domain (`RotationState`), each a `RotationKey` in one phase:

* ``pending``: generated and to be published; not signing yet.
* ``active``: signing. At most one.
* ``retiring``: no longer signing; still published until `retire_after`.

One step, `plan_rotation(state, now=..., served=..., rotate_every=..., grace=..., domain=...)`, in order:

1. keys retiring past their `retire_after` are dropped (action ``drop``);
2. a pending key that DNS serves (its selector in `served`, with the right key) becomes active
   (``activate``) and the active one starts retiring (``retire``) for `grace`;
3. with no pending key: a domain without any key gets its first one (``generate``; it becomes active once
   served, so mail is never signed with a key receivers cannot find), and an active key older than
   `rotate_every` (counted from when it became active), or any key when `rotate_now` is set, gets a
   successor (``generate``).

The result (`RotationPlan`) carries the new state, the actions, the active and pending selectors, a
sentence for status saying why rotation waits (``waiting for selector pm20261121 to be served by DNS;
publish ...``), and `next_change`, the moment time alone changes the plan (for the operator's timer).

Selector names: ``<prefix><yyyymmdd>`` (prefix ``pm``), the UTC date the key was generated, e.g.
``pm20261121``. A second key on the same day gets a letter, ``pm20261121b`` up to ``pm20261121z``.
Names sort in generation order and are never reused: the state remembers the last one issued, and a new
name always sorts after it (a clock that went backwards gets the last name plus ``a``).

State serialises to a JSON-friendly dict (`RotationState.to_dict` / `from_dict`), datetimes as ISO 8601
in UTC, for a Secret annotation or the status.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_PREFIX",
    "STATE_VERSION",
    "ActionKind",
    "KeyPhase",
    "RotationAction",
    "RotationKey",
    "RotationPlan",
    "RotationState",
    "next_selector",
    "plan_rotation",
]

DEFAULT_GRACE = timedelta(days=7)
"""How long a replaced key stays published: SMTP retries last up to five days (RFC 5321 section
4.5.4.1 suggests giving up after 4-5 days), plus time for messages re-verified after delivery."""
DEFAULT_PREFIX = "pm"
STATE_VERSION = 1
_SUFFIXES = "bcdefghijklmnopqrstuvwxyz"
_SELECTOR = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class KeyPhase(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRING = "retiring"


@dataclass(frozen=True, slots=True)
class RotationKey:
    selector: str
    created: datetime
    phase: KeyPhase
    activated: datetime | None = None
    """When it started signing; the age `rotate_every` compares against."""
    retire_after: datetime | None = None
    """For a retiring key: when it may be removed from DNS and from the Secret."""

    def to_dict(self) -> dict[str, str]:
        out = {"selector": self.selector, "created": _iso(self.created), "phase": self.phase.value}
        if self.activated is not None:
            out["activated"] = _iso(self.activated)
        if self.retire_after is not None:
            out["retireAfter"] = _iso(self.retire_after)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RotationKey:
        selector = data.get("selector")
        if not isinstance(selector, str) or not _SELECTOR.match(selector):
            raise ValueError(f"rotation key: invalid selector {selector!r}")
        try:
            phase = KeyPhase(str(data.get("phase")))
        except ValueError as exc:
            raise ValueError(f"rotation key {selector}: invalid phase {data.get('phase')!r}") from exc
        activated = _parse_time(data.get("activated"), selector, "activated") if "activated" in data else None
        retire_after = _parse_time(data.get("retireAfter"), selector, "retireAfter") if "retireAfter" in data else None
        if phase is KeyPhase.RETIRING and retire_after is None:
            raise ValueError(f"rotation key {selector}: a retiring key needs retireAfter")
        return cls(selector, _parse_time(data.get("created"), selector, "created"), phase, activated, retire_after)


@dataclass(frozen=True, slots=True)
class RotationState:
    keys: tuple[RotationKey, ...] = ()
    last_selector: str | None = None
    """The most recent selector ever issued: new ones sort after it, so none is reused."""

    @property
    def active(self) -> RotationKey | None:
        return next((k for k in self.keys if k.phase is KeyPhase.ACTIVE), None)

    @property
    def pending(self) -> RotationKey | None:
        return next((k for k in self.keys if k.phase is KeyPhase.PENDING), None)

    @property
    def retiring(self) -> tuple[RotationKey, ...]:
        return tuple(k for k in self.keys if k.phase is KeyPhase.RETIRING)

    @property
    def selectors(self) -> tuple[str, ...]:
        """Every selector that must be published now: pending, active and retiring."""
        return tuple(k.selector for k in self.keys)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "lastSelector": self.last_selector,
            "keys": [k.to_dict() for k in self.keys],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RotationState:
        """Read what `to_dict` wrote; None or ``{}`` is the empty state. Raises ValueError on anything else."""
        if not data:
            return cls()
        version = data.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise ValueError(f"rotation state version {version!r} is not supported (expected {STATE_VERSION})")
        raw_keys = data.get("keys", [])
        if not isinstance(raw_keys, list):
            raise ValueError("rotation state: keys must be a list")  # noqa: TRY004 - one error type for bad state
        keys = tuple(RotationKey.from_dict(k) for k in raw_keys)
        if len({k.selector for k in keys}) != len(keys):
            raise ValueError("rotation state: a selector appears twice")
        last = data.get("lastSelector")
        if last is not None and not isinstance(last, str):
            raise ValueError("rotation state: lastSelector must be a string")
        return cls(keys, last)


class ActionKind(StrEnum):
    GENERATE = "generate"
    """Generate a key for the selector, store it in the Secret and publish its TXT record."""
    ACTIVATE = "activate"
    """Start signing with the selector's key."""
    RETIRE = "retire"
    """Stop signing with the selector's key; keep its record published until its retire_after."""
    DROP = "drop"
    """Remove the selector's key from the Secret and its record from DNS."""


@dataclass(frozen=True, slots=True)
class RotationAction:
    kind: ActionKind
    selector: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "selector": self.selector, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class RotationPlan:
    state: RotationState
    actions: tuple[RotationAction, ...]
    active: str | None
    """The selector to sign with now (None until a first key is served)."""
    pending: str | None
    """The next key's selector, published but not signing yet."""
    waiting: str | None
    """Why rotation cannot progress by itself, for status; None when nothing waits on DNS."""
    summary: str
    """One sentence on where rotation stands."""
    next_change: datetime | None
    """When time alone changes the plan (a rotation due, a retirement ending); None if only DNS can."""

    @property
    def generate(self) -> tuple[str, ...]:
        return tuple(a.selector for a in self.actions if a.kind is ActionKind.GENERATE)

    @property
    def drop(self) -> tuple[str, ...]:
        return tuple(a.selector for a in self.actions if a.kind is ActionKind.DROP)


def next_selector(
    now: datetime, *, prefix: str = DEFAULT_PREFIX, last: str | None = None, taken: Collection[str] = ()
) -> str:
    """``<prefix><yyyymmdd>`` for `now` (UTC), lettered b..z when taken, always sorting after `last`."""
    base = f"{prefix}{_utc(now):%Y%m%d}"
    comparable = last if last is not None and last.startswith(prefix) else None
    for candidate in (base, *(base + letter for letter in _SUFFIXES)):
        if candidate not in taken and (comparable is None or candidate > comparable):
            return candidate
    fallback = (comparable or base) + "a"
    while fallback in taken:
        fallback += "a"
    return fallback


def plan_rotation(
    state: RotationState,
    *,
    now: datetime,
    served: Collection[str],
    domain: str,
    rotate_every: timedelta | None = None,
    grace: timedelta = DEFAULT_GRACE,
    rotate_now: bool = False,
    prefix: str = DEFAULT_PREFIX,
) -> RotationPlan:
    """One step of rotation. `served`: selectors whose record DNS serves with the Secret's key.

    `rotate_now` asks for a successor to the active key regardless of its age (a changed key type, a
    suspected leak); it has no effect while a pending key already exists.
    """
    now = _utc(now)
    if rotate_every is not None and rotate_every <= timedelta(0):
        raise ValueError("rotate_every must be positive")
    served_set = {s.lower() for s in served}
    actions: list[RotationAction] = []
    keys = _normalised(list(state.keys), now, grace, actions)
    last = state.last_selector

    # 1. Retirements that have run their course.
    for key in [k for k in keys if k.phase is KeyPhase.RETIRING and k.retire_after is not None]:
        if key.retire_after is not None and key.retire_after <= now:
            keys.remove(key)
            actions.append(
                RotationAction(
                    ActionKind.DROP,
                    key.selector,
                    f"grace period over: remove the key and the TXT record at {_record(key.selector, domain)}",
                )
            )

    # 2. A pending key the world serves takes over.
    pending = _find(keys, KeyPhase.PENDING)
    active = _find(keys, KeyPhase.ACTIVE)
    if pending is not None and pending.selector in served_set:
        keys[keys.index(pending)] = replace(pending, phase=KeyPhase.ACTIVE, activated=now)
        actions.append(RotationAction(ActionKind.ACTIVATE, pending.selector, "DNS serves it: sign with it from now"))
        if active is not None:
            until = now + grace
            keys[keys.index(active)] = replace(active, phase=KeyPhase.RETIRING, retire_after=until)
            actions.append(
                RotationAction(
                    ActionKind.RETIRE,
                    active.selector,
                    f"stop signing with it; keep {_record(active.selector, domain)} published until {_iso(until)}",
                )
            )
        pending = None
        active = _find(keys, KeyPhase.ACTIVE)

    # 3. A first key, or a successor when the active one is due.
    if pending is None:
        due = active is None or rotate_now
        if active is not None and rotate_every is not None and active.activated is not None:
            due = due or now - active.activated >= rotate_every
        if due:
            selector = next_selector(now, prefix=prefix, last=last, taken={k.selector for k in keys})
            pending = RotationKey(selector, now, KeyPhase.PENDING)
            keys.append(pending)
            last = selector
            why = "first key of the domain" if active is None else f"successor of {active.selector}"
            actions.append(
                RotationAction(
                    ActionKind.GENERATE,
                    selector,
                    f"{why}: generate it, store it and publish its TXT record at {_record(selector, domain)}",
                )
            )

    keys.sort(key=lambda k: k.selector)
    new_state = RotationState(tuple(keys), last)
    return RotationPlan(
        state=new_state,
        actions=tuple(actions),
        active=active.selector if active else None,
        pending=pending.selector if pending else None,
        waiting=_waiting(pending, active, domain),
        summary=_summary(new_state, rotate_every),
        next_change=_next_change(new_state, rotate_every),
    )


def _normalised(
    keys: list[RotationKey], now: datetime, grace: timedelta, actions: list[RotationAction]
) -> list[RotationKey]:
    """Repair a state that breaks the invariants (hand-edited, or two writers): one active, one pending."""
    actives = sorted(
        (k for k in keys if k.phase is KeyPhase.ACTIVE), key=lambda k: (k.activated or k.created, k.selector)
    )
    for extra in actives[:-1]:
        keys[keys.index(extra)] = replace(extra, phase=KeyPhase.RETIRING, retire_after=now + grace)
        actions.append(
            RotationAction(ActionKind.RETIRE, extra.selector, "more than one key was active: keep the newest")
        )
    for index, key in enumerate(keys):
        if key.phase is KeyPhase.ACTIVE and key.activated is None:
            keys[index] = replace(key, activated=key.created)
    pendings = sorted((k for k in keys if k.phase is KeyPhase.PENDING), key=lambda k: (k.created, k.selector))
    for extra in pendings[:-1]:
        keys.remove(extra)
        actions.append(
            RotationAction(ActionKind.DROP, extra.selector, "more than one key was pending: keep the newest")
        )
    return keys


def _find(keys: list[RotationKey], phase: KeyPhase) -> RotationKey | None:
    return next((k for k in keys if k.phase is phase), None)


def _waiting(pending: RotationKey | None, active: RotationKey | None, domain: str) -> str | None:
    if pending is None:
        return None
    then = f"then switch signing from {active.selector} to it" if active else "then start signing with it"
    return (
        f"waiting for selector {pending.selector} to be served by DNS; publish the TXT record at "
        f"{_record(pending.selector, domain)} (its value is in the records to publish), {then}"
    )


def _summary(state: RotationState, rotate_every: timedelta | None) -> str:
    active, pending, retiring = state.active, state.pending, state.retiring
    parts: list[str] = []
    if active is None:
        parts.append("no key is signing yet")
    else:
        parts.append(f"signing with {active.selector}")
        if rotate_every is not None and pending is None and active.activated is not None:
            parts.append(f"next rotation from {_iso(active.activated + rotate_every)}")
    if pending is not None:
        parts.append(f"next key {pending.selector} waits to be served by DNS")
    parts.extend(f"{k.selector} stays published until {_iso(k.retire_after)}" for k in retiring if k.retire_after)
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _next_change(state: RotationState, rotate_every: timedelta | None) -> datetime | None:
    moments = [k.retire_after for k in state.retiring if k.retire_after is not None]
    active = state.active
    if rotate_every is not None and state.pending is None and active is not None and active.activated is not None:
        moments.append(active.activated + rotate_every)
    return min(moments) if moments else None


def _record(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("rotation needs timezone-aware datetimes")
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return _utc(moment).isoformat().replace("+00:00", "Z")


def _parse_time(value: object, selector: str, field_name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"rotation key {selector}: {field_name} must be an ISO 8601 string")  # noqa: TRY004
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"rotation key {selector}: {field_name} {value!r} is not ISO 8601") from exc
    if moment.tzinfo is None:
        raise ValueError(f"rotation key {selector}: {field_name} {value!r} has no time zone")
    return moment.astimezone(UTC)
