"""Delivery on a site's existing Celery workers, without a Tasks API backend for Celery.

The rows are the queue. ``drain`` is a Celery task that sends every due
``/evaluate`` and ``/transmit`` row with the claim/lease code ``flexcharge_retry``
uses, so two drains (or a drain and a cron run) never send one row twice.
Celery only carries wake-ups without payload:

* ``WakeUpBackend``, a Tasks API backend for ``FLEXCHARGE_TASK_BACKEND``,
  answers each enqueue (a new row, a deferred retry) by sending ``drain``,
  so a decline is sent within a worker's reaction time, not a beat period;
* the beat entry from ``beat_schedule()`` runs ``drain`` every few seconds,
  which covers a lost wake-up, a worker killed mid-call (once its lease
  expires) and a broker that was down while rows were stored.

A lost or repeated wake-up therefore costs nothing. docs/engines/celery.md
says why this recipe and not one of the Tasks API backends for Celery.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from celery import current_app, shared_task
from django.utils import timezone
from django.utils.module_loading import import_string

from .celery_beat import DRAIN_TASK, beat_schedule

try:  # Django >= 6.0
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskResult, TaskResultStatus
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks.backends.base import (  # type: ignore[no-redef,assignment,unused-ignore]
        BaseTaskBackend,
    )
    from django_tasks.base import (  # type: ignore[no-redef,assignment,unused-ignore]
        TaskResult,
        TaskResultStatus,
    )

__all__ = ["DRAIN_TASK", "WakeUpBackend", "beat_schedule", "drain", "drain_once"]

#: Rows taken per query; shuffled so parallel drains rarely race for one row.
BATCH = 50


def _kinds() -> list[tuple[str, Any, Callable[[Any], str]]]:
    # Imported when used: this module is imported by Celery's app loading,
    # possibly before Django's app registry is ready.
    from ..evaluations import send_evaluation
    from ..models import FlexChargeOrder, Transmission
    from ..transmissions import send_transmission

    return [
        ("evaluations", FlexChargeOrder, send_evaluation),
        ("transmissions", Transmission, send_transmission),
    ]


def drain_once(*, budget: float = 50.0, limit: int = 10_000) -> Counter[str]:
    """Send due rows in batches (``batch.drain``) until none is left or ``budget`` seconds passed.

    Outcomes are counted per kind (``evaluations:approved``...). ``limit``
    caps the rows tried. Rows another drain claimed are not seen here.
    """
    from ..batch import drain as drain_batches

    return drain_batches(budget=budget, limit=limit)


@shared_task(name=DRAIN_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
def drain(budget: float = 50.0, limit: int = 10_000) -> dict[str, int]:
    """The Celery task: run ``drain_once`` (from a wake-up or from beat)."""
    return dict(drain_once(budget=budget, limit=limit))


def celery_app(alias_options: dict[str, Any]) -> Any:
    """The Celery app named by the backend's ``OPTIONS["APP"]`` (a dotted path), else the current one."""
    path = alias_options.get("APP")
    return import_string(path) if path else current_app._get_current_object()


class WakeUpBackend(BaseTaskBackend):
    """A Tasks API backend whose "enqueue" wakes ``drain`` on Celery.

    The task and its arguments are not sent: the row they name is found by
    ``drain``. ``run_after`` becomes the wake-up's ``eta``. Publishing is not
    retried inside the request: if the broker is down the row waits for beat
    (``delivery.enqueue`` logs the outage once per burst).

    ``OPTIONS``: ``APP`` (dotted path of the Celery app; default: the current
    app), ``QUEUE`` (Celery queue of the wake-ups; default: Celery's default).
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = False

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        options: dict[str, Any] = {"retry": False}
        if self.options.get("QUEUE"):
            options["queue"] = self.options["QUEUE"]
        if task.run_after is not None:
            options["eta"] = task.run_after
        app = celery_app(self.options)
        with app.pool.acquire(block=True) as connection:
            # Kombu would otherwise reconnect for minutes inside the request.
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            sent = app.send_task(DRAIN_TASK, connection=connection, **options)
        return TaskResult(
            task=task,
            id=str(sent.id),
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
