"""A single-thread scheduler: the emulator's clock.

Order resolutions (rescued after ``rescue_delay``, expired after
``expire_delay``) and webhook deliveries are timed jobs. Running each kind in
one thread of its own, instead of a ``threading.Timer`` per job, keeps the
thread count flat under load and lets ``stop()`` end everything at once: the
emulator is started and stopped many times per test run.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("flexcharge_emulator")


class Job:
    __slots__ = ("cancelled", "due", "fn")

    def __init__(self, due: float, fn: Callable[[], None]) -> None:
        self.due = due
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """Runs callables at monotonic times, one at a time, in a daemon thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._running_job = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Job:
        job = Job(time.monotonic() + max(delay, 0.0), fn)
        with self._cond:
            heapq.heappush(self._heap, (job.due, next(self._seq), job))
            self._cond.notify_all()
        return job

    def clear(self) -> None:
        """Drop every queued job (a job already running finishes)."""
        with self._cond:
            for _, _, job in self._heap:
                job.cancel()
            self._heap.clear()
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            live = sum(1 for _, _, job in self._heap if not job.cancelled)
            return live + (1 if self._running_job else 0)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job is queued or running; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(not job.cancelled for _, _, job in self._heap) or self._running_job:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None
        self.clear()

    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._next_due()
                if job is None:
                    return
                self._running_job = True
            try:
                job.fn()
            except Exception:
                # A failing job must not kill the clock; the next one still runs.
                logger.exception("emulator job failed")
            finally:
                with self._cond:
                    self._running_job = False
                    self._cond.notify_all()

    def _next_due(self) -> Job | None:
        """Wait (holding the condition) for the next due job; None once stopped."""
        while not self._stopped:
            while self._heap and self._heap[0][2].cancelled:
                heapq.heappop(self._heap)
            if not self._heap:
                self._cond.wait()
                continue
            wait = self._heap[0][0] - time.monotonic()
            if wait <= 0:
                return heapq.heappop(self._heap)[2]
            self._cond.wait(wait)
        return None
