"""Durable delivery: claiming a stored row, backing off, and (re-)enqueueing its task.

Each call to FlexCharge is a row (``FlexChargeOrder`` for ``/evaluate``,
``Transmission`` for ``/transmit``) written in the caller's transaction. A
task only carries the row's primary key. Whoever runs it first *claims* the
row with one conditional UPDATE that sets a lease (``locked_until``): exactly
one worker gets rowcount 1, on every database, without holding a lock across
the HTTP call. A worker that dies mid-call leaves a lease that expires, and
``flexcharge_retry`` re-enqueues the row; the stored body goes out again with
the same idempotency key, so FlexCharge sees a replay, not a new request.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from typing import Any

from django.db import models, router, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from .compat import task_backends
from .conf import conf

logger = logging.getLogger("django_flexcharge.delivery")

QUEUED = "queued"
#: Rows younger than this are left to the task enqueued on commit.
LOST_TASK_GRACE = dt.timedelta(minutes=1)


def lease_length() -> dt.timedelta:
    """How long a claim holds a row: longer than the slowest call can take.

    One call may fetch a token, send, get a 401 and send again: three
    (connect + read) timeouts, plus a margin for the database work around it.
    """
    connect, read = conf.TIMEOUT
    return dt.timedelta(seconds=3 * (connect + read) + 30)


def unleased(model: type[models.Model], now: dt.datetime) -> models.QuerySet[Any]:
    """Queued rows no lease holds (none taken, or it ended before ``now``)."""
    return model._default_manager.filter(status=QUEUED).filter(
        Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    )


def claimable(model: type[models.Model], now: dt.datetime) -> models.QuerySet[Any]:
    """What a claim may take: queued, unleased rows whose time has come (never tried, or due)."""
    return unleased(model, now).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


def claim(model: type[models.Model], pk: Any, *, now: dt.datetime | None = None) -> bool:
    """Take the lease on a queued, due, unleased row; True when this caller owns it.

    The WHERE clause is the lock: two workers racing for one row both run
    this UPDATE and the database lets exactly one of them match. ``attempts``
    counts sends started, so a crash after sending still counts.
    """
    now = now or timezone.now()
    updated = (
        claimable(model, now)
        .filter(pk=pk)
        .update(locked_until=now + lease_length(), attempts=F("attempts") + 1)
    )
    return updated == 1


def hold(model: type[models.Model], pk: Any, *, now: dt.datetime | None = None) -> bool:
    """Lease a queued row whether due or not, so no worker sends it (e.g. during a cancel)."""
    now = now or timezone.now()
    return unleased(model, now).filter(pk=pk).update(locked_until=now + lease_length()) == 1


def release(model: type[models.Model], pk: Any) -> None:
    """Give a lease back early (the row was not sent)."""
    model._default_manager.filter(pk=pk).update(locked_until=None)


def backoff(attempts: int, retry_after: float | None = None) -> dt.timedelta:
    """Delay before the next attempt: exponential with full jitter, capped.

    ``attempts`` is the number of sends so far (1 after the first). Full
    jitter (a uniform draw below the exponential ceiling) spreads the
    retries of many rows that failed together, e.g. during an outage.
    FlexCharge's ``Retry-After`` is a floor.
    """
    exponent = min(max(attempts - 1, 0), 32)
    ceiling = min(conf.RETRY_MAX_DELAY, conf.RETRY_BASE_DELAY * 2**exponent)
    delay = random.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return dt.timedelta(seconds=delay)


def backend_defers() -> bool:
    """Whether the configured task backend can run a task later (``run_after``)."""
    return bool(getattr(task_backends[conf.TASK_BACKEND], "supports_defer", False))


def enqueue(task: Any, *args: Any, run_after: dt.datetime | None = None) -> bool:
    """Enqueue ``task(*args)`` on the configured backend and queue; True when enqueued.

    A deferred run needs a backend that supports ``run_after``; otherwise
    nothing is enqueued and ``flexcharge_retry`` picks the row up when due.
    Enqueueing failures are logged, never raised: the row is stored, and a
    lost task is exactly what ``flexcharge_retry`` exists for.
    """
    try:
        if run_after is not None and not backend_defers():
            return False
        configured = configured_task(task)
        if run_after is not None:
            configured = configured.using(run_after=run_after)
        configured.enqueue(*args)
    except Exception as err:
        enqueue_failures.failed(task.name, ", ".join(map(str, args)), err)
        return False
    enqueue_failures.succeeded()
    return True


class EnqueueFailures:
    """Logs a queue outage once per burst instead of once per row.

    While Redis (or any queue) is down every decline and approval still
    stores its row, and each one's enqueue fails; a log line per row would
    bury the one that matters. The first failure of a burst is logged with
    its traceback, then at most one summary per ``every`` seconds while it
    lasts, and one line when enqueueing works again.
    """

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._failed = 0  # failures since the last line logged
        self._burst = 0  # failures since the burst began
        self._logged_at: float | None = None

    def failed(self, name: str, pk: Any, err: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._failed += 1
            self._burst += 1
            first = self._logged_at is None
            if not first and now - self._logged_at < self.every:  # type: ignore[operator]
                return
            count, self._failed, self._logged_at = self._failed, 0, now
        if first:
            logger.error(
                "Could not enqueue %s(%s): the queue is failing (%s). The rows stay stored "
                "and flexcharge_retry will send them; further failures are summarised.",
                name,
                pk,
                type(err).__name__,
                exc_info=err,
            )
        else:
            logger.error(
                "The queue is still failing: %s more tasks not enqueued (%s); "
                "flexcharge_retry delivers them",
                count,
                type(err).__name__,
            )

    def succeeded(self) -> None:
        if self._logged_at is not None:  # else the common case: no lock taken
            self._recovered()

    def _recovered(self) -> None:
        with self._lock:
            if self._logged_at is None:  # another thread logged the recovery
                return
            burst, self._failed, self._burst, self._logged_at = self._burst, 0, 0, None
        logger.warning(
            "Enqueueing works again; %s tasks were not enqueued during the failure "
            "and are left to flexcharge_retry",
            burst,
        )


enqueue_failures = EnqueueFailures()


def enqueue_on_commit(
    task: Any, pk: Any, *, run_after: dt.datetime | None = None, using: str | None = None
) -> None:
    """Enqueue after the current transaction commits (nothing if it rolls back)."""
    transaction.on_commit(lambda: enqueue(task, pk, run_after=run_after), using, robust=True)


_configured: dict[tuple[Any, str, str], Any] = {}


def configured_task(task: Any) -> Any:
    """``task`` bound to the configured backend and queue, built once per combination.

    ``Task.using()`` validates and copies the task on every call; on the
    approval path that was a measurable share of the time (docs/benchmarks.md).
    The key holds the settings' values, so ``override_settings`` still works,
    and the task itself (Tasks are frozen dataclasses), so variants of one
    function made with ``task.using(priority=...)`` stay apart.
    """
    key = (task, conf.TASK_BACKEND, conf.TASK_QUEUE)
    configured = _configured.get(key)
    if configured is None:
        configured = task.using(backend=key[1], queue_name=key[2])
        _configured[key] = configured
    return configured


def queue_shares_database(model: type[models.Model]) -> bool:
    """Whether tasks are rows in ``model``'s own database (``django_tasks_db`` there)."""
    try:
        from django_tasks_db.backend import DatabaseBackend
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # pragma: no cover - django-tasks-db is a dependency
        return False
    try:
        backend = task_backends[conf.TASK_BACKEND]
    except Exception:  # an unknown alias: enqueue() logs it, the row is kept
        return False
    return isinstance(backend, DatabaseBackend) and router.db_for_write(
        DBTaskResult
    ) == router.db_for_write(model)


def due(
    model: type[models.Model],
    *,
    now: dt.datetime | None = None,
    grace: dt.timedelta | None = None,
) -> models.QuerySet[Any]:
    """Queued, unleased rows whose task looks lost, oldest first.

    A row never tried must be ``LOST_TASK_GRACE`` old, so the task enqueued on
    commit gets the first chance. A row waiting for a retry is due at its
    ``next_attempt_at``; when the backend defers tasks, a task with
    ``run_after`` exists for it, so it too gets the grace and a healthy queue
    sees no duplicates (a duplicate would only lose the claim anyway).
    ``grace`` replaces ``LOST_TASK_GRACE``: zero when the caller is itself the
    only runner (``contrib.celery.drain``), so nothing waits a minute.
    """
    now = now or timezone.now()
    grace_end = now - (LOST_TASK_GRACE if grace is None else grace)
    retry_cutoff = grace_end if backend_defers() and grace is None else now
    return (
        unleased(model, now)
        .filter(
            Q(next_attempt_at__isnull=True, created__lte=grace_end)
            | Q(next_attempt_at__lte=retry_cutoff)
        )
        .order_by(Coalesce("next_attempt_at", "created").asc(), "pk")
    )


def retry_now(model: type[models.Model], task: Any, pk: Any) -> bool:
    """Make a queued, unleased row due now and enqueue its task; False if it is not waiting.

    For a person who fixed what made the row fail (credentials, a setting) and
    does not want to wait for the back-off. The row keeps its body and
    idempotency key, so this is the same retry, only sooner; a worker racing
    it still loses the claim.
    """
    now = timezone.now()
    using = router.db_for_write(model)
    with transaction.atomic(using=using):
        updated = unleased(model, now).filter(pk=pk).update(next_attempt_at=now)
        if updated:
            enqueue_on_commit(task, pk, using=using)
    return updated == 1
