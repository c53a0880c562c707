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


async def _record_transition(body: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
    before = conditions.find(old.get("conditions"), conditions.READY)
    after = conditions.find(new.get("conditions"), conditions.READY)
    if after is None:
        return
    if before is not None and (before["status"], before["reason"]) == (after["status"], after["reason"]):
        return
    meta = body["metadata"]
    level = logging.INFO if after["status"] == "True" else logging.WARNING
    log.log(level, "%s %s/%s: Ready=%s %s: %s", body.get("kind"), meta["namespace"], meta["name"],
            after["status"], after["reason"], after["message"])  # fmt: skip
    await kubeapi.post_event(
        body,
        type_="Normal" if after["status"] == "True" else "Warning",
        reason=after["reason"],
        message=after["message"],
    )
