"""The status of every object the operator writes, as it last wrote it: writes only what differs, tells transitions.

The operator is the only writer of its objects' status. The book learns each object's stored status from the first
event that shows it (the initial listing at start-up, or a create), and from then on from its own writes, so a
write never needs a read first, and a late event carrying an older status cannot make the book go back in time.
Entries are keyed by uid as well, so an object deleted and created again under the same name starts afresh. The
status is kept as compressed JSON, not as live models: ten thousand SendingDomains fit in a few megabytes.

`update` runs a pure `compute(old) -> new` on the typed status under a per-object lock (two writers of one
MailProvider's status, the outputs reconcile and the probe, never interleave), patches only when the result differs,
and records an Event when `Ready` changes in a way a person cares about.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from postmaster.api.common import CommonStatus
from postmaster.api.resources import Resource
from postmaster.conditions import READY, find
from postmaster.runtime.kube import Kube, KubeError, ObjectRef

log = logging.getLogger(__name__)

S = TypeVar("S", bound=CommonStatus)
Key = tuple[str, str, str]


@dataclass(slots=True)
class _Entry:
    uid: str | None
    packed: bytes

    @classmethod
    def of(cls, uid: str | None, status: Mapping[str, Any]) -> _Entry:
        return cls(uid, zlib.compress(json.dumps(status, separators=(",", ":")).encode(), 1))

    def status(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(zlib.decompress(self.packed))
        return loaded


def dump_status(status: CommonStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7396) that turns `old` into `new`: fields absent now are deleted (null), at
    every depth, since a merge patch merges nested objects; lists are replaced whole."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before or key not in old:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def ready_event(old: CommonStatus, new: CommonStatus) -> tuple[str, str, str] | None:
    """(type, reason, message) of the Event a change of Ready deserves, or None.

    Every change of Ready's status or reason is told, but a new object's first verdict only when it is False (a
    person must act): a check still running, or a new object that is simply Ready, is in the status, and a thousand
    new SendingDomains do not make a thousand Events."""
    before, after = find(old.conditions, READY), find(new.conditions, READY)
    if after is None:
        return None
    if before is None and after.status != "False":
        return None
    if before is not None and (before.status, before.reason) == (after.status, after.reason):
        return None
    return ("Normal" if after.status == "True" else "Warning", after.reason, f"Ready={after.status}: {after.message}")


class StatusBook:
    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._entries: dict[Key, _Entry] = {}
        self._locks: weakref.WeakValueDictionary[Key, asyncio.Lock] = weakref.WeakValueDictionary()

    def observe(self, resource: Resource, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """Learn an object's stored status from an event, unless this object's status is known already."""
        meta = body["metadata"]
        key = (resource.plural, meta["namespace"], meta["name"])
        if deleted:
            self._entries.pop(key, None)
            return
        entry = self._entries.get(key)
        if entry is None or entry.uid != meta.get("uid"):
            self._entries[key] = _Entry.of(meta.get("uid"), body.get("status") or {})

    def stored(self, resource: Resource, ref: ObjectRef, model: type[S]) -> S | None:
        entry = self._entries.get((resource.plural, ref.namespace, ref.name))
        if entry is None or entry.uid != ref.uid:
            return None
        return model.model_validate(entry.status())

    def _lock(self, key: Key) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def update(self, resource: Resource, ref: ObjectRef, model: type[S], compute: Callable[[S], S]) -> S | None:
        """Apply `compute` to the stored status; write it when it differs. None when the object is gone."""
        key = (resource.plural, ref.namespace, ref.name)
        async with self._lock(key):
            entry = self._entries.get(key)
            if entry is None or entry.uid != ref.uid:  # not seen in an event yet: read it once
                body = await self._kube.get_custom(resource, ref.namespace, ref.name)
                if body is None or body["metadata"].get("uid") != ref.uid:
                    return None
                entry = self._entries[key] = _Entry.of(ref.uid, body.get("status") or {})
            raw_old = entry.status()
            old = model.model_validate(raw_old)
            new = compute(old)
            before, after = dump_status(old), dump_status(new)
            patch = merge_patch(raw_old, after)
            if after == before or not patch:
                return new
            try:
                await self._kube.patch_status(resource, ref.namespace, ref.name, patch)
            except KubeError as exc:
                if exc.status == 404:
                    self._entries.pop(key, None)
                    return None
                raise
            self._entries[key] = _Entry.of(ref.uid, after)
        event = ready_event(old, new)
        if event is not None:
            type_, reason, message = event
            level = logging.INFO if type_ == "Normal" else logging.WARNING
            log.log(level, "%r: %s", ref, message)
            await self._kube.post_event(ref, type_=type_, reason=reason, message=message)
        return new
