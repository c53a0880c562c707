"""Work that runs per object on its own schedule: SMTP probes, DNS checks, the rendering of a provider's outputs.

A `Scheduler` runs `step(key)` when a key falls due, never twice at once for one key, and at most `concurrency`
steps at a time; a step returns the seconds until its key's next run (None: only when woken). `wake(key, delay)`
makes a key due sooner (a change to the spec or a Secret, an on-demand request); wakes that arrive while the key's
step runs fold into one more run after it. A step that raises is logged with the object's name and retried with
back-off (doubling from `retry_first` up to `retry_max`): no exception ends the scheduler.

One scheduler holds a heap of due times and a few worker tasks, however many objects there are: ten thousand
SendingDomains cost ten thousand heap entries, not ten thousand sleeping tasks. These are not kopf daemons because
kopf gives every daemon a finalizer, and a finalizer keeps objects from being deleted while the operator is not
running (after an uninstall, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from postmaster.runtime.kube import KubeError

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
Step = Callable[[K], Awaitable[float | None]]


class Scheduler(Generic[K]):
    def __init__(
        self,
        what: str,
        step: Step[K],
        *,
        concurrency: int,
        retry_first: float,
        retry_max: float = 300.0,
    ) -> None:
        self.what = what
        self._step = step
        self._slots = asyncio.Semaphore(concurrency)
        self._retry_first = retry_first
        self._retry_max = retry_max
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._order = itertools.count()
        self._running: set[K] = set()
        self._again: set[K] = set()
        self._failures: dict[K, int] = {}
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._due) + len(self._running)

    def wake(self, key: K, delay: float = 0.0) -> None:
        """Run the key's step within `delay` seconds (sooner if it was due sooner already)."""
        if key in self._running:
            self._again.add(key)
            return
        when = asyncio.get_running_loop().time() + max(delay, 0.0)
        current = self._due.get(key)
        if current is not None and current <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._order), key))
        self._changed.set()
        self._start()

    def forget(self, key: K) -> None:
        """Run the key no more (a step that is running finishes, and is not rescheduled)."""
        self._due.pop(key, None)
        self._again.discard(key)
        self._failures.pop(key, None)
        self._running.discard(key)

    def _start(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name=f"{self.what} scheduler")

    async def stop(self) -> None:
        tasks = [t for t in (self._dispatcher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._dispatcher = None
        self._due.clear()
        self._heap.clear()

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._changed.clear()
            now = loop.time()
            while self._heap and self._heap[0][0] <= now:
                when, _, key = heapq.heappop(self._heap)
                if self._due.get(key) != when:
                    continue  # superseded by an earlier wake, or forgotten
                del self._due[key]
                await self._slots.acquire()
                self._running.add(key)
                task = asyncio.create_task(self._run(key), name=f"{self.what} {key}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                now = loop.time()
            timeout = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=timeout)

    async def _run(self, key: K) -> None:
        delay: float | None
        try:
            delay = await self._step(key)
            self._failures.pop(key, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(self._retry_first * 2 ** (failures - 1), self._retry_max)
            if isinstance(exc, KubeError):
                log.warning("%s of %s postponed %.0f s: %s", self.what, _name(key), delay, exc)
            else:  # a bug or an unforeseen failure: the traceback, once per failure, and the retry goes on
                log.exception("%s of %s failed, retrying in %.0f s", self.what, _name(key), delay)
        finally:
            self._slots.release()
        if key not in self._running:  # forgotten while it ran
            return
        self._running.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.wake(key)
        elif delay is not None:
            self.wake(key, delay)


def _name(key: object) -> str:
    return "/".join(key) if isinstance(key, tuple) and all(isinstance(k, str) for k in key) else str(key)
