"""Wake-ups of the delivery drain: at most one queue operation per transaction, not per row.

A stored ``/evaluate`` or ``/transmit`` row needs a task run that finds it,
not a task of its own: ``tasks.deliver_due`` sends every due row, in
batches. So the caller's transaction only has to make sure one such run
will start after it commits:

* ``django_tasks_db`` on the row's database: the caller, after INSERTing its
  row, looks for a drain task that is READY and not started. If there is
  one, nothing is enqueued; else the task row is inserted in the same
  transaction. The READY task found is locked ``FOR SHARE SKIP LOCKED`` on
  PostgreSQL, so a worker (whose claim is ``FOR UPDATE SKIP LOCKED``) cannot
  start it before the caller commits: the run it makes therefore sees the
  row. A task a worker is claiming right now is skipped, and a new one is
  enqueued. On SQLite the caller holds the database's one write lock from
  its INSERT until its commit, and a worker claims a task in an exclusive
  transaction, so the task found cannot start before the commit either. A
  drain that has started (RUNNING) never counts: it may already have looked
  for rows for the last time.
  On PostgreSQL the caller's INSERT and this look are one statement
  (``insert_waking``, ``insert_finding_drain``). ``new_rows`` picks the way a
  row is stored; on SQLite, in the caller's transaction, it takes no savepoint.
* Any other backend (RQ, Celery's ``WakeUpBackend``): one enqueue on commit
  per transaction.

In both cases a transaction asks once: later rows of the same transaction
find the marker callback this module leaves in ``on_commit``, which Django
discards with a rolled-back savepoint, together with the task row and the
lock taken in it.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connection,
    connections,
    models,
    router,
    transaction,
)
from django.utils import timezone

from .compat import ImmediateBackend, task_backends
from .conf import conf
from .delivery import configured_task, enqueue, queue_shares_database
from .insert_finding import insert_finding
from .inserts import insert, one_statement

logger = logging.getLogger("django_flexcharge.delivery")


def _woken() -> None:
    """The marker left in ``on_commit``: this transaction has its drain."""


def drain_task() -> Any:
    """The drain job (imported when needed: the tasks module imports the senders)."""
    from .tasks import deliver_due

    return deliver_due


def runs_inline() -> bool:
    """Whether the backend runs tasks in the caller's process (``ImmediateBackend``).

    There a drain would send other rows inside the caller's request, so each
    row gets its own task, as before batches.
    """
    try:
        return isinstance(task_backends[conf.TASK_BACKEND], ImmediateBackend)
    except Exception:  # an unknown alias: enqueue() logs it
        return False


def woken(using: str) -> bool:
    """Whether the current transaction on ``using`` already has its drain."""
    return any(func is _woken for _sids, func, *_ in connections[using].run_on_commit)


def mark_woken(using: str) -> None:
    """Leave the marker: later rows of this transaction need no wake-up of their own."""
    transaction.on_commit(_woken, using)


def _ready_sql(connection: Any) -> str | None:
    """SELECT of a READY, not deferred drain task; None where a lock cannot be had."""
    # Built once per database: on SQLite every approval runs it holding the write lock.
    if connection.vendor not in _ready_sqls:
        _ready_sqls[connection.vendor] = _build_ready_sql(connection)
    return _ready_sqls[connection.vendor]


_ready_sqls: dict[str, str | None] = {}


def _build_ready_sql(connection: Any) -> str | None:
    from django_tasks_db.models import DBTaskResult

    if connection.vendor == "postgresql":
        lock = " FOR SHARE SKIP LOCKED"
    elif connection.vendor == "sqlite":
        lock = ""  # the caller's INSERT holds the write lock until commit
    else:
        return None
    q = connection.ops.quote_name
    # Only quoted names are interpolated; the values are parameters.
    return (
        f"SELECT 1 FROM {q(DBTaskResult._meta.db_table)} WHERE {q('status')} = %s "  # noqa: S608
        f"AND {q('task_path')} = %s AND {q('queue_name')} = %s AND {q('backend_name')} = %s "
        f"AND ({q('run_after')} = %s OR {q('run_after')} <= %s) LIMIT 1{lock}"
    )


def _ready_params(connection: Any) -> list[Any]:
    return [
        "READY",
        _drain_path(),
        conf.TASK_QUEUE,
        conf.TASK_BACKEND,
        _not_deferred(connection),
        connection.ops.adapt_datetimefield_value(timezone.now()),
    ]


@cache
def _drain_path() -> str:
    return str(drain_task().module_path)


_never: dict[tuple[str, bool], Any] = {}


def _not_deferred(connection: Any) -> Any:
    """The ``run_after`` of a task that is not deferred, as ``connection`` stores it."""
    from django_tasks_db.models import get_date_max

    key = (connection.vendor, settings.USE_TZ)
    if key not in _never:
        _never[key] = connection.ops.adapt_datetimefield_value(get_date_max())
    return _never[key]


def ready_drain(using: str) -> bool:
    """Whether a drain task of the configured queue is READY and not started (locked on PostgreSQL)."""
    connection = connections[using]
    sql = _ready_sql(connection)
    if sql is None:
        return False
    params = _ready_params(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


class WakeUpFailed(Exception):
    """Waking a drain failed (or, in ``insert_waking``'s one statement, maybe the INSERT)."""


def insert_waking(obj: models.Model) -> None:
    """Insert ``obj``, a new row to send, and have a drain start after the transaction commits.

    ``wake_in_transaction`` after the INSERT; on PostgreSQL, with the queue in
    the row's (default) database, the INSERT and the look for a waiting drain
    are one statement (one round trip fewer per decline or approval). Call
    inside ``atomic``. An ``IntegrityError`` (a repeat) is raised as it is;
    any other failure of the wake-up as ``WakeUpFailed``.
    """
    model = type(obj)
    using = router.db_for_write(model)
    if using != DEFAULT_DB_ALIAS:
        obj.save(force_insert=True, using=using)
    elif (
        connections[using].vendor == "postgresql"
        and not woken(using)
        and one_statement(model)
        and queue_shares_database(model)
    ):
        found = insert_finding_drain(obj)
        try:
            if not found:
                configured_task(drain_task()).enqueue()
        except Exception as err:
            raise WakeUpFailed from err
        mark_woken(using)
        return
    else:
        insert(obj)
    try:
        wake_in_transaction(model)
    except Exception as err:
        raise WakeUpFailed from err


def insert_finding_drain(obj: models.Model, *, savepoint: bool = False) -> bool:
    """PostgreSQL: insert ``obj`` and look for a waiting drain (locked), in one
    statement (``savepoint``: see ``insert_finding.insert_finding``); whether one was found.
    A repeat's ``IntegrityError`` as it is, else ``WakeUpFailed``."""
    try:
        return insert_finding(
            obj, str(_ready_sql(connection)), _ready_params(connection), savepoint=savepoint
        )
    except IntegrityError:
        raise
    except Exception as err:
        raise WakeUpFailed from err


def wake_in_transaction(model: type[models.Model]) -> None:
    """Have a drain start after the current transaction commits (call inside ``atomic``).

    Raises what enqueueing a task row raises (``create_with_task`` handles it).
    """
    using = router.db_for_write(model)
    if woken(using):
        return
    if queue_shares_database(model):
        if not ready_drain(using):
            configured_task(drain_task()).enqueue()
        mark_woken(using)
        return
    # Another engine: its queue is not in this transaction; wake it once, on commit.
    mark_woken(using)
    wake_on_commit(using)


def wake_on_commit(using: str) -> None:
    """Enqueue a drain once the current transaction on ``using`` commits (a failure is
    logged by ``enqueue``; ``flexcharge_retry`` finds the rows)."""
    drain = drain_task()
    transaction.on_commit(lambda: enqueue(drain), using, robust=True)


def wake_another(model: type[models.Model]) -> bool:
    """From a running drain: start one more run (another worker helps) unless one is waiting.

    Outside any transaction; a failure is logged by ``enqueue``, and the
    running drain carries on alone.
    """
    if runs_inline():
        return False
    try:
        if queue_shares_database(model) and ready_drain(router.db_for_write(model)):
            return False
    except DatabaseError:
        logger.exception("Could not look for a waiting drain task")
        return False
    return enqueue(drain_task())
