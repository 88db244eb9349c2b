"""A new row to send, stored with its drain's wake-up in the fewest statements the database allows.

``create_with_task`` is the one way a decline (``FlexChargeOrder``) or an
approval (``Transmission``) is written. Which way it takes depends on the
database and on whether the caller has a transaction open; every way stores
the row and makes sure a drain run (``tasks.deliver_due``) starts after the
commit, and every way lets a repeat's ``IntegrityError`` reach the caller
with nothing stored and the caller's transaction still usable:

* ``ImmediateBackend``: the row's own task runs on commit (a drain would send
  other rows inside the caller's request).
* PostgreSQL, no transaction open: one statement, committed alone
  (``insert_alone``).
* In the caller's transaction: no savepoint of Django's (``insert_in_transaction``):
  none at all on SQLite, and on PostgreSQL one sent with the row's statement.
* Anything else: in a savepoint, the row and its wake-up together
  (``wakeups.insert_waking``); if the wake-up fails, the row is stored on its
  own and woken on commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models, router, transaction

from .compat import ImmediateBackend, task_backends
from .conf import conf
from .delivery import configured_task, enqueue, enqueue_on_commit, queue_shares_database
from .insert_finding import one_trip_savepoint
from .inserts import insert, insert_statement, one_statement
from .wakeups import (
    WakeUpFailed,
    drain_task,
    insert_finding_drain,
    insert_waking,
    mark_woken,
    ready_drain,
    wake_on_commit,
    woken,
)

logger = logging.getLogger("django_flexcharge.delivery")

M = TypeVar("M", bound=models.Model)

INLINE, ALONE, IN_TRANSACTION, SAVEPOINT = "inline", "alone", "in transaction", "savepoint"


def create_with_task(model: type[M], task: Any, build: Callable[[], M]) -> M:
    """Store the new row ``build()`` returns (unsaved) and have it sent once it commits.

    With ``django_tasks_db`` on the row's database the drain's task row, if one
    is needed at all, is written in the same transaction as the row, so both
    commit or roll back together; any other backend is woken on commit.
    ``task(row.pk)`` is the row's own task, for ``ImmediateBackend``. If waking
    fails, the row is stored on its own with an on-commit wake-up;
    ``flexcharge_retry`` covers the rest.
    """
    using = router.db_for_write(model)
    way = store_way(model, using)
    if way == INLINE:
        with transaction.atomic(using=using):
            row = build()
            row.save(force_insert=True, using=using)
        enqueue_on_commit(task, row.pk, using=using)
        return row
    try:
        row = build()
        if way == ALONE:
            insert_alone(row)
        elif way == IN_TRANSACTION:
            insert_in_transaction(row)
        else:
            with transaction.atomic(using=using):
                insert_waking(row)
        return row
    except WakeUpFailed as err:
        _log_wake_up_failure(model, err.__cause__)
    with transaction.atomic(using=using):
        row = build()
        row.save(force_insert=True, using=using)
    wake_on_commit(using)
    return row


def store_way(model: type[models.Model], using: str) -> str:
    """Which way ``create_with_task`` stores a ``model`` row on ``using`` now."""
    try:
        backend = task_backends[conf.TASK_BACKEND]
    except Exception:  # an unknown alias: enqueue() logs it, the row is kept
        return SAVEPOINT
    if isinstance(backend, ImmediateBackend):
        return INLINE
    conn = connections[using]
    if (
        using != DEFAULT_DB_ALIAS
        or insert_statement(conn.vendor, model) is None
        or not queue_shares_database(model)
    ):
        return SAVEPOINT
    if conn.vendor == "postgresql" and not conn.in_atomic_block and one_statement(model):
        return ALONE if conn.get_autocommit() else SAVEPOINT
    if conn.in_atomic_block and (
        conn.vendor == "sqlite" or (one_statement(model) and one_trip_savepoint())
    ):
        return IN_TRANSACTION
    return SAVEPOINT


def insert_alone(obj: models.Model) -> None:
    """PostgreSQL, no transaction open: the INSERT and the look for a waiting drain are
    one statement, which commits on its own (one round trip, no BEGIN or COMMIT).

    A drain found waiting was locked by that statement until it committed, so it
    starts after the row is visible, as in ``insert_waking``. Found none: the row
    is stored, and a drain is enqueued right after, as any engine's wake-up
    follows a commit; a failure of that is logged (``delivery.enqueue``), and
    ``flexcharge_retry`` finds the row. An ``IntegrityError`` (a repeat) is raised
    as it is, any other failure of the statement (nothing stored) as
    ``WakeUpFailed``.
    """
    if not insert_finding_drain(obj):
        enqueue(drain_task())


def insert_in_transaction(obj: models.Model) -> None:
    """In the caller's transaction: the row and its wake-up, with no savepoint of Django's.

    A repeat's ``IntegrityError`` is raised as it is, nothing stored, and the
    caller's transaction goes on. Once the row is stored, a failure to wake a
    drain keeps the row and wakes one on commit instead (logged); the drain's
    task row, needed once per drain run, is written in a savepoint of its own.

    * SQLite undoes a failed statement on its own and the transaction goes on,
      so the row takes no savepoint: two statements fewer while the caller
      holds SQLite's one write lock, which every other writer waits for. Should
      SQLite end the whole transaction on an error (a full disk, say), the
      caller's atomic block is marked for rollback and the error raised.
    * PostgreSQL aborts the whole transaction on a failed statement, so the row
      needs a savepoint; it is taken and released in the round trip of the
      INSERT and the look (``insert_finding.insert_finding(savepoint=True)``): one round
      trip, not three. Should that statement fail otherwise, nothing is stored
      (``WakeUpFailed``).
    """
    using = router.db_for_write(type(obj))
    found: bool | None = None
    if connections[using].vendor == "postgresql":
        if woken(using):
            with transaction.atomic(using=using):
                insert(obj)
            return
        found = insert_finding_drain(obj, savepoint=True)
    else:
        try:
            insert(obj)
        except Exception:
            _lost_transaction(using)
            raise
        if woken(using):
            return
    try:
        if found is None:
            found = ready_drain(using)
        if not found:
            with transaction.atomic(using=using):
                configured_task(drain_task()).enqueue()
    except Exception as err:
        if _lost_transaction(using):
            raise
        _log_wake_up_failure(type(obj), err)
        wake_on_commit(using)
    mark_woken(using)


def _lost_transaction(using: str) -> bool:
    """After an error: whether SQLite ended the whole transaction (it does on a few,
    SQLITE_FULL or an I/O error); if so the caller's atomic block must refuse the
    rest of its queries, as after a savepoint that could not be rolled back."""
    conn = connections[using]
    if (
        conn.vendor == "sqlite"
        and conn.in_atomic_block
        and conn.connection is not None
        and not conn.connection.in_transaction
    ):
        conn.needs_rollback = True
        return True
    return False


def _log_wake_up_failure(model: type[models.Model], err: BaseException | None) -> None:
    logger.error(
        "Could not enqueue the delivery of %s with its row (%s); enqueueing after commit instead",
        model.__name__,
        type(err).__name__,
    )
