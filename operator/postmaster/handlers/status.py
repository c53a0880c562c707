"""Status writes: read fresh, merge, write only when something changed, record transitions as Events."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from postmaster import conditions
from postmaster.api.resources import Resource
from postmaster.handlers import kubeapi

log = logging.getLogger(__name__)

_locks: weakref.WeakValueDictionary[tuple[str, str, str], asyncio.Lock] = weakref.WeakValueDictionary()


def object_lock(plural: str, namespace: str, name: str) -> asyncio.Lock:
    """One lock per object, so two writers never interleave a read-modify-write of its status."""
    key = (plural, namespace, name)
    lock = _locks.get(key)
    if lock is None:
        lock = asyncio.Lock()
        _locks[key] = lock
    return lock


StatusFn = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


async def update_status(
    resource: Resource,
    namespace: str,
    name: str,
    compute: StatusFn,
    *,
    on_change: Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Awaitable[None]] | None = None,
) -> dict[str, Any] | None:
    """Apply `compute(body, old_status) -> new_status` to the object's current status.

    Writes only when the result differs; records an Event when Ready changes status or reason.
    Returns the new status, or None when the object no longer exists.
    """
    async with object_lock(resource.plural, namespace, name):
        body = await kubeapi.get_custom(resource, namespace, name)
        if body is None:
            return None
        old = body.get("status") or {}
        new = compute(body, old)
        if new == old:
            return new
        await kubeapi.patch_status(resource, namespace, name, _with_removals(old, new))
    await _record_transition(body, old, new)
    if on_change is not None:
        await on_change(body, old, new)
    return new


def _with_removals(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that also deletes fields present before and absent now."""
    patch: dict[str, Any] = dict(new)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


_SILENT = (conditions.RECONCILING, conditions.STALLED)


def transitions(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Conditions whose status or reason changed, Ready first, one per reason (a detail that caused a
    change of Ready is not told twice). Reconciling and Stalled follow the others and are not told."""
    before = {c["type"]: c for c in old.get("conditions") or []}
    changed: list[dict[str, Any]] = []
    for cond in sorted(new.get("conditions") or [], key=lambda c: c["type"] != conditions.READY):
        if cond["type"] in _SILENT:
            continue
        prior = before.get(cond["type"])
        if prior is not None and (prior["status"], prior["reason"]) == (cond["status"], cond["reason"]):
            continue
        if any(c["reason"] == cond["reason"] for c in changed):
            continue
        changed.append(cond)
    return changed


async def _record_transition(body: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
    meta = body["metadata"]
    for cond in transitions(old, new):
        ok = cond["status"] == "True"
        where = f"{body.get('kind')} {meta['namespace']}/{meta['name']}"
        level = logging.INFO if ok else logging.WARNING
        log.log(level, "%s: %s=%s %s: %s", where, cond["type"], cond["status"], cond["reason"], cond["message"])
        reason = cond["reason"] if cond["type"] == conditions.READY else f"{cond['type']}{cond['reason']}"
        if cond["type"] != conditions.READY and cond["reason"] in ("Ready", "Succeeded", "Published"):
            reason = cond["type"]  # e.g. SPFReady, SMTPReachable: reads better than SPFReadyReady
        await kubeapi.post_event(body, type_="Normal" if ok else "Warning", reason=reason[:128],
                                 message=f"{cond['type']}={cond['status']}: {cond['message']}")  # fmt: skip
