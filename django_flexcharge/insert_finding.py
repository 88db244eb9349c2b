"""A new row's INSERT and a SELECT in one round trip (PostgreSQL), with the savepoint
a caller's transaction needs sent in the same trip.

A decline or an approval stores its row and looks for a waiting drain task
(``wakeups.insert_finding_drain``): two statements, one network round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model

from .inserts import field_values, insert_statement, mark_saved, send_pre_save

#: The savepoint ``insert_finding`` takes and releases in its one round trip.
SAVEPOINT = "flexcharge_row"


def insert_finding(
    obj: Model, query: str, params: Sequence[Any], *, savepoint: bool = False
) -> bool:
    """PostgreSQL: insert ``obj`` and run the SELECT ``query`` (with ``params``), in one
    statement (one round trip); whether ``query`` found a row.

    A locking clause in ``query`` (``FOR SHARE SKIP LOCKED``) locks what it finds
    as the SELECT on its own would: a WITH query that is referenced runs in full.
    ``savepoint``: inside a transaction, the statement goes between a SAVEPOINT and
    its RELEASE sent with it, still one round trip; if it fails (a repeat), the
    savepoint is rolled back, so the transaction goes on, and the error raised.
    Check ``one_statement()`` (and, for ``savepoint``, ``one_trip_savepoint()``) first.
    """
    model = type(obj)
    statement = insert_statement("postgresql", model)
    assert statement is not None, "check one_statement() first"
    sql, fields = statement
    pk = connection.ops.quote_name(str(model._meta.pk.column))
    # The INSERT built from the model's meta and a caller's own SELECT; values are parameters.
    combined = (
        f"WITH stored AS ({sql}), found AS ({query})"  # noqa: S608
        f" SELECT stored.{pk}, EXISTS (SELECT 1 FROM found) FROM stored"
    )
    if savepoint:
        combined = f"SAVEPOINT {SAVEPOINT}; {combined}; RELEASE SAVEPOINT {SAVEPOINT}"
    send_pre_save(obj)
    try:
        with connection.cursor() as cursor:
            cursor.execute(combined, [*field_values(obj, fields), *params])
            if savepoint:
                cursor.nextset()
            row = cursor.fetchone()
    except Exception:
        if savepoint:
            _roll_back_to_savepoint()
        raise
    mark_saved(obj, row[0])
    return bool(row[1])


def one_trip_savepoint() -> bool:
    """Whether ``insert_finding(..., savepoint=True)`` works here: PostgreSQL with psycopg 3
    binding on the client (Django's default), which sends several statements at once."""
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    options = connection.settings_dict.get("OPTIONS", {})
    return bool(is_psycopg3) and options.get("server_side_binding") is not True


def _roll_back_to_savepoint() -> None:
    # A statement that failed in the server left the transaction aborted: back to
    # before it. (One refused before it was sent never took the savepoint.) Should
    # even that fail, Django must refuse the rest of the caller's atomic block.
    from psycopg.pq import TransactionStatus

    if connection.connection.info.transaction_status != TransactionStatus.INERROR:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}")
    except Exception:
        connection.needs_rollback = True
