"""``insert(obj)``: a new row as ``obj.save(force_insert=True)`` writes it, its SQL built once.

The webhook's hot path inserts two rows per delivery (the event, its history
row); the ORM compiles the same INSERT every time, which costs more than the
database's work (benchmarks: ``bench_profile.py``). Here the statement is
built once per model and database vendor, the values are prepared by each
field as the ORM prepares them (``pre_save``, ``get_db_prep_save``), and the
model's ``pre_save``/``post_save`` signals are still sent to any receiver.

Only for plain models: an auto primary key (``db_returning``) returned by ``RETURNING`` (PostgreSQL,
SQLite >= 3.35), concrete fields, no ``db_default`` or generated columns;
anything else, or another database, takes ``save(force_insert=True)``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model, signals


def insert(obj: Model) -> None:
    """Insert ``obj`` (a new instance) in the current transaction; sets its primary key."""
    model = type(obj)
    statement = _statement(connection.vendor, model)
    if statement is None:
        obj.save(force_insert=True)
        return
    sql, fields = statement
    alias = connection.alias
    if signals.pre_save.has_listeners(model):
        signals.pre_save.send(model, instance=obj, raw=False, using=alias, update_fields=None)
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = alias
    if signals.post_save.has_listeners(model):
        signals.post_save.send(
            model, instance=obj, created=True, update_fields=None, raw=False, using=alias
        )


@cache
def _statement(vendor: str, model: type[Model]) -> tuple[str, list[Any]] | None:
    meta = model._meta
    pk = meta.pk
    plain = (
        vendor in ("postgresql", "sqlite")
        and connection.features.can_return_columns_from_insert
        and getattr(pk, "db_returning", False)
        and not any(f.generated or f.has_db_default() for f in meta.concrete_fields)
    )
    if not plain or pk is None:
        return None
    q = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if f is not pk]
    columns = ", ".join(q(str(f.column)) for f in fields)
    # Names from the model's own meta, quoted; every value is a parameter.
    sql = (
        f"INSERT INTO {q(meta.db_table)} ({columns})"  # noqa: S608
        f" VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {q(str(pk.column))}"
    )
    return sql, fields
