"""One background task per object, for checks that run on their own schedule (SMTP probes, DNS checks).

Each task runs `step`, then sleeps for the delay the step returns (None: until woken), and wakes early on
`wake()` (a spec or Secret change, an on-demand request). These are plain asyncio tasks started by the
handlers rather than kopf daemons: kopf gives every daemon a finalizer, and a finalizer keeps objects
from being deleted while the operator is not running (for example after it was uninstalled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from postmaster.handlers import kubeapi

log = logging.getLogger(__name__)

Key = tuple[str, str]
Reconcile = Callable[[str, str], Awaitable[None]]
# step(namespace, name, counter, reconcile) -> (seconds until the next step or None, new counter)
Step = Callable[[str, str, int, Reconcile], Awaitable[tuple[float | None, int]]]


class Loops:
    def __init__(self, what: str, step: Step, *, retry: timedelta, on_stop: Callable[[Key], object]) -> None:
        self.what = what
        self._step = step
        self._retry = retry
        self._on_stop = on_stop
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._wake: dict[Key, asyncio.Event] = {}

    def _event(self, key: Key) -> asyncio.Event:
        return self._wake.setdefault(key, asyncio.Event())

    def wake(self, namespace: str, name: str) -> None:
        self._event((namespace, name)).set()

    def ensure(self, namespace: str, name: str, reconcile: Reconcile) -> None:
        """Start the object's loop unless it runs already; a new loop steps at once."""
        key = (namespace, name)
        task = self._tasks.get(key)
        if task is None or task.done():
            self._tasks[key] = asyncio.create_task(self._run(key, reconcile), name=f"{self.what} {namespace}/{name}")

    async def stop(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        task = self._tasks.pop(key, None)
        self._wake.pop(key, None)
        self._on_stop(key)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop_all(self) -> None:
        for namespace, name in list(self._tasks):
            await self.stop(namespace, name)

    async def _run(self, key: Key, reconcile: Reconcile) -> None:
        wake = self._event(key)
        counter = 0
        while True:
            wake.clear()
            delay: float | None
            try:
                delay, counter = await self._step(key[0], key[1], counter, reconcile)
            except kubeapi.KubeError as exc:
                log.warning("%s of %s/%s postponed: %s", self.what, key[0], key[1], exc)
                delay = self._retry.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)
