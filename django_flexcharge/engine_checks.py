"""System checks for the engine that runs FlexCharge's tasks: each one's classic mistake.

Ids ``django_flexcharge.E035``-``E040`` and ``W035``-``W038``. Only what
settings show is checked: a worker's command line is not visible here, so
a setting that a command-line flag may replace is a warning, not an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import router

from .conf import conf

ID = "django_flexcharge.{}"
RQ_BACKEND = "django_tasks_rq.backend.RQBackend"
RQ_JOB_CLASS = "django_tasks_rq.Job"
WAKE_UP_BACKEND = "django_flexcharge.contrib.celery.WakeUpBackend"
DB_BACKEND = "django_tasks_db.backend.DatabaseBackend"
#: Tasks API backends that publish to Celery (theirs read Celery's settings too).
CELERY_BACKEND_MODULES = (
    "django_flexcharge.contrib.celery",
    "django_tasks_celery",
    "django_tasks_fennel",
)
CELERY_INCLUDE = "django_flexcharge.contrib.celery"


def _backend() -> Any:
    from .compat import task_backends

    try:
        return task_backends[conf.TASK_BACKEND]
    except Exception:  # E010 reports an unusable alias
        return None


def _is(backend: Any, dotted: str) -> bool:
    return any(f"{c.__module__}.{c.__qualname__}" == dotted for c in type(backend).__mro__)


def _celery_based(backend: Any) -> bool:
    return type(backend).__module__.startswith(CELERY_BACKEND_MODULES)


@register(Tags.compatibility)
def check_task_engine(**kwargs: Any) -> list[CheckMessage]:
    backend = _backend()
    if backend is None:
        return []
    messages = _check_queue(backend)
    if _is(backend, RQ_BACKEND):
        messages += _check_rq()
    if _celery_based(backend):
        messages += _check_celery(backend)
    if _is(backend, DB_BACKEND):
        messages += _check_database()
    return messages


def _check_queue(backend: Any) -> list[CheckMessage]:
    queues = getattr(backend, "queues", None)
    if queues and conf.TASK_QUEUE not in queues:
        return [
            Error(
                f"FLEXCHARGE_TASK_QUEUE {conf.TASK_QUEUE!r} is not a queue of the task backend "
                f"{conf.TASK_BACKEND!r} (its QUEUES: {sorted(queues)}).",
                hint="Every enqueue would fail and wait for flexcharge_retry. Add the queue to "
                "TASKS[...]['QUEUES'] or set FLEXCHARGE_TASK_QUEUE to one of them.",
                id=ID.format("E035"),
            )
        ]
    return []


def _check_rq() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    rq_queues = getattr(settings, "RQ_QUEUES", {}) or {}
    queue = rq_queues.get(conf.TASK_QUEUE)
    if queue is None:
        messages.append(
            Error(
                f"FLEXCHARGE_TASK_QUEUE {conf.TASK_QUEUE!r} is not in RQ_QUEUES.",
                hint=f"Add RQ_QUEUES[{conf.TASK_QUEUE!r}] = {{'URL': 'redis://...'}}; "
                "django-rq cannot enqueue to a queue it does not know.",
                id=ID.format("E036"),
            )
        )
    elif queue.get("ASYNC") is False and not settings.DEBUG:
        messages.append(
            Error(
                f"RQ_QUEUES[{conf.TASK_QUEUE!r}] has ASYNC False: FlexCharge calls run inside "
                "the request that stores them.",
                hint="Checkout would wait for FlexCharge. Remove 'ASYNC': False outside tests.",
                id=ID.format("E037"),
            )
        )
    job_class = (getattr(settings, "RQ", {}) or {}).get("JOB_CLASS")
    name = job_class if isinstance(job_class, str) else getattr(job_class, "__module__", "")
    if not str(name).startswith("django_tasks_rq"):
        messages.append(
            Warning(
                "RQ workers run RQ's plain Job class unless told otherwise; it cannot run "
                "Tasks API tasks, so every FlexCharge job would fail.",
                hint=f"Set RQ = {{'JOB_CLASS': {RQ_JOB_CLASS!r}}}, or start every worker with "
                f"manage.py rqworker --job-class {RQ_JOB_CLASS} --with-scheduler (then silence this).",
                id=ID.format("W035"),
            )
        )
    return messages


def _celery_app(backend: Any) -> Any:
    from django.utils.module_loading import import_string

    path = (getattr(backend, "options", {}) or {}).get("APP") or (
        (getattr(backend, "options", {}) or {}).get("CELERY_APP")
    )
    if path:
        return import_string(path)
    from celery import current_app

    return current_app._get_current_object()


def _check_celery(backend: Any) -> list[CheckMessage]:
    try:
        app = _celery_app(backend)
    except Exception as err:
        return [
            Error(
                f"The Celery app of task backend {conf.TASK_BACKEND!r} cannot be loaded: {err}",
                hint="Set TASKS[...]['OPTIONS']['APP'] to the dotted path of your Celery app.",
                id=ID.format("E038"),
            )
        ]
    messages: list[CheckMessage] = []
    if app.conf.task_always_eager and not settings.DEBUG:
        messages.append(
            Error(
                "Celery runs tasks eagerly (task_always_eager): FlexCharge calls run inside "
                "the request that stores them.",
                hint="Checkout would wait for FlexCharge. Set CELERY_TASK_ALWAYS_EAGER only in tests.",
                id=ID.format("E039"),
            )
        )
    if str(app.conf.broker_url or "").startswith("memory://") and not settings.DEBUG:
        messages.append(
            Error(
                "Celery's broker is the in-memory transport: no worker process ever sees a task.",
                hint="Point CELERY_BROKER_URL at the Redis (or RabbitMQ) your workers read.",
                id=ID.format("E040"),
            )
        )
    if _is(backend, WAKE_UP_BACKEND):
        from .contrib.celery_beat import DRAIN_TASK

        schedule = app.conf.beat_schedule or {}
        if not any(entry.get("task") == DRAIN_TASK for entry in schedule.values()):
            messages.append(
                Warning(
                    f"No beat entry runs {DRAIN_TASK}: a lost wake-up, a killed worker's row and "
                    "rows stored while the broker was down wait for flexcharge_retry.",
                    hint="CELERY_BEAT_SCHEDULE = {**beat_schedule()} with beat_schedule from "
                    "django_flexcharge.contrib.celery_beat, and run celery beat.",
                    id=ID.format("W036"),
                )
            )
        listed = [*(app.conf.include or ()), *(app.conf.imports or ())]
        if CELERY_INCLUDE not in listed:
            messages.append(
                Warning(
                    f"The Celery app does not import {CELERY_INCLUDE}: workers would reject "
                    f"{DRAIN_TASK} as an unregistered task.",
                    hint=f"Celery('proj', include=[{CELERY_INCLUDE!r}]) or "
                    f"CELERY_IMPORTS = [{CELERY_INCLUDE!r}].",
                    id=ID.format("W037"),
                )
            )
    return messages


def _check_database() -> list[CheckMessage]:
    try:
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # pragma: no cover - the backend imports it itself
        return []
    alias = router.db_for_write(DBTaskResult)
    database = settings.DATABASES.get(alias, {})
    if not str(database.get("ENGINE", "")).endswith("sqlite3"):
        return []
    name = str(database.get("NAME") or "")
    if name in ("", ":memory:") or "mode=memory" in name:
        return [
            Error(
                f"The task queue is an in-memory SQLite database ({alias!r}): db_worker, "
                "another process, can never read it.",
                hint="Use a SQLite file or PostgreSQL shared by the site and db_worker.",
                id=ID.format("E041"),
            )
        ]
    if not name.startswith("file:") and not Path(name).is_absolute():
        return [
            Warning(
                f"The task queue's SQLite file {name!r} is a relative path: a db_worker "
                "started from another directory reads another (empty) database.",
                hint="Give DATABASES an absolute NAME, e.g. BASE_DIR / 'db.sqlite3'.",
                id=ID.format("W038"),
            )
        ]
    return []
