"""``insert(obj)``: a new row as ``obj.save(force_insert=True)`` writes it, its SQL built once.

The webhook's hot path inserts two rows per delivery (the event, its history
row), a decline or an approval one; the ORM compiles the same INSERT every time, which costs more than the
database's work (benchmarks: ``bench_profile.py``). Here the statement is
built once per model and database vendor, the values are prepared by each
field as the ORM prepares them (``pre_save``, ``get_db_prep_save``), and the
model's ``pre_save``/``post_save`` signals are still sent to any receiver.

Only for plain models: an auto primary key (``db_returning``) returned by ``RETURNING`` (PostgreSQL,
SQLite >= 3.35), concrete fields, no ``db_default`` or generated columns;
anything else, or another database, takes ``save(force_insert=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import Model, signals


def default_connection() -> Any:
    """The default database's connection itself, for code that reads it once per value.

    ``django.db.connection`` is a proxy that looks the connection up in
    thread-local storage again at every attribute read; a field's
    ``get_db_prep_save`` reads it several times per value."""
    return connections[DEFAULT_DB_ALIAS]


def insert(obj: Model) -> None:
    """Insert ``obj`` (a new instance) in the current transaction; sets its primary key."""
    model = type(obj)
    conn = default_connection()
    statement = insert_statement(conn.vendor, model)
    if statement is None:
        obj.save(force_insert=True)
        return
    sql, fields = statement
    send_pre_save(obj)
    with conn.cursor() as cursor:
        cursor.execute(sql, field_values(obj, fields))
        row = cursor.fetchone()
    mark_saved(obj, row[0])


def insert_after(
    obj: Model,
    source: str,
    params: Sequence[Any],
    *,
    link: str,
    then: Model | None = None,
    then_links: tuple[str, str] = ("", ""),
) -> tuple[Any, ...] | None:
    """PostgreSQL: ``obj`` inserted by the statement that runs ``source``, in one round trip.

    ``source`` is an ``UPDATE ... RETURNING`` (its ``params``) that returns at most
    one row, with the column the foreign key ``link`` of ``obj`` points at; ``obj``
    is inserted with ``link`` set to that row (a data-modifying CTE). ``then``, a
    further new row, is inserted by the same statement with its foreign keys
    ``then_links`` = (to what ``link`` points at, to ``obj``) set. Returns the row
    ``source`` returned, the rows saved; None, with nothing inserted, when it
    returned none. Check ``one_statement()`` first.
    """
    sql, fields, then_fields = _after_statement(
        type(obj), link, source, type(then) if then is not None else None, then_links
    )
    send_pre_save(obj)
    values = [*params, *field_values(obj, fields)]
    if then is not None:
        send_pre_save(then)
        values += field_values(then, then_fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return None
    setattr(obj, f"{link}_id", row[1])
    mark_saved(obj, row[0])
    if then is None:
        return tuple(row[2:])
    setattr(then, f"{then_links[0]}_id", row[1])
    setattr(then, f"{then_links[1]}_id", row[0])
    mark_saved(then, row[2])
    return tuple(row[3:])


def save_fields(
    obj: Model, names: Sequence[str], *, then: Model | None = None, link: str = ""
) -> None:
    """``obj.save(update_fields=names)`` for a stored row, its UPDATE built once per field set.

    Each field's value is prepared as the ORM prepares it (``pre_save``, so
    ``auto_now`` stamps it), and ``pre_save``/``post_save`` go to any receiver.
    Like ``save``, an UPDATE that matched no row raises ``DatabaseError``.
    ``then``: a new row whose foreign key ``link`` points at ``obj``, inserted
    after it (on PostgreSQL by the same statement: one round trip fewer).
    A row loaded from another database than the default is saved by the ORM.
    """
    model = type(obj)
    if obj._state.db not in (None, connection.alias):
        obj.save(update_fields=names)
        if then is not None:
            setattr(then, link, obj)
            then.save(force_insert=True, using=obj._state.db)
        return
    combined = then is not None and one_statement(type(then))
    sql, fields = _update_statement(connection.vendor, model, tuple(names), returning=combined)
    update_fields = frozenset(names)
    send_pre_save(obj, update_fields)
    conn = default_connection()
    params = [*(f.get_db_prep_save(f.pre_save(obj, False), conn) for f in fields), obj.pk]
    if then is not None:
        setattr(then, link, obj)
    if then is not None and combined:
        if insert_after(then, sql, params, link=link) is None:
            raise DatabaseError("Save with update_fields did not affect any rows.")
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            if cursor.rowcount != 1:
                raise DatabaseError("Save with update_fields did not affect any rows.")
        if then is not None:
            insert(then)
    send_post_save(obj, created=False, update_fields=update_fields)


@cache
def _update_statement(
    vendor: str, model: type[Model], names: tuple[str, ...], *, returning: bool
) -> tuple[str, list[Any]]:
    meta = model._meta
    q = connection.ops.quote_name
    fields = [meta.get_field(name) for name in names]
    sets = ", ".join(f"{q(str(f.column))} = %s" for f in fields)  # type: ignore[union-attr]
    pk = q(str(meta.pk.column))
    # Names from the model's own meta, quoted; every value is a parameter.
    sql = f"UPDATE {q(meta.db_table)} SET {sets} WHERE {pk} = %s"  # noqa: S608
    # RETURNING: ``insert_after`` links a new row to it.
    return (f"{sql} RETURNING {pk}" if returning else sql), fields


def one_statement(model: type[Model]) -> bool:
    """Whether ``insert_after`` works for ``model`` on this database."""
    return (
        connection.vendor == "postgresql" and insert_statement(connection.vendor, model) is not None
    )


def send_pre_save(obj: Model, update_fields: frozenset[str] | None = None) -> None:
    if signals.pre_save.has_listeners(type(obj)):
        signals.pre_save.send(
            type(obj), instance=obj, raw=False, using=connection.alias, update_fields=update_fields
        )


def field_values(obj: Model, fields: list[Any]) -> list[Any]:
    # What the ORM's insert compiler sends for each field.
    conn = default_connection()
    return [field.get_db_prep_save(field.pre_save(obj, True), conn) for field in fields]


def mark_saved(obj: Model, pk: Any) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias
    send_post_save(obj, created=True, update_fields=None)


def send_post_save(obj: Model, *, created: bool, update_fields: frozenset[str] | None) -> None:
    if signals.post_save.has_listeners(type(obj)):
        signals.post_save.send(
            type(obj),
            instance=obj,
            created=created,
            update_fields=update_fields,
            raw=False,
            using=connection.alias,
        )


@cache
def _after_statement(
    model: type[Model],
    link: str,
    source: str,
    then: type[Model] | None = None,
    then_links: tuple[str, str] = ("", ""),
) -> tuple[str, list[Any], list[Any]]:
    """``insert_after``'s statement and the fields whose values it takes, for ``obj``
    and ``then`` (their links aside)."""
    q = connection.ops.quote_name
    meta = model._meta
    linked = meta.get_field(link)
    target = q(str(linked.target_field.column))  # type: ignore[union-attr]
    stored_sql, fields = _insert_select(model, {link: f"source.{target}"}, "source")
    link_column = q(str(getattr(linked, "column", "")))
    returning = f"{q(str(meta.pk.column))}, {link_column}"
    sql = f"WITH source AS ({source}), stored AS ({stored_sql} RETURNING {returning})"
    then_fields: list[Any] = []
    if then is None:
        return f"{sql} SELECT stored.*, source.* FROM stored, source", fields, then_fields  # noqa: S608
    to_source, to_stored = then_links
    then_sql, then_fields = _insert_select(
        then,
        {to_source: f"stored.{link_column}", to_stored: f"stored.{q(str(meta.pk.column))}"},
        "stored",
    )
    then_pk = q(str(then._meta.pk.column))
    sql += (
        f", after AS ({then_sql} RETURNING {then_pk})"  # noqa: S608
        " SELECT stored.*, after.*, source.* FROM stored, after, source"
    )
    return sql, fields, then_fields


def _insert_select(
    model: type[Model], linked: dict[str, str], source: str
) -> tuple[str, list[Any]]:
    """``INSERT INTO model (...) SELECT ... FROM source``: the ``linked`` fields take the
    given column of ``source``, the others a parameter each (the fields returned)."""
    statement = insert_statement("postgresql", model)
    assert statement is not None, "check one_statement() first"
    q = connection.ops.quote_name
    meta = model._meta
    links = {meta.get_field(name): column for name, column in linked.items()}
    fields = [f for f in statement[1] if f not in links]
    # Typed: a parameter in a SELECT list has no column to take its type from.
    values = [
        links[f] if f in links else f"CAST(%s AS {f.cast_db_type(connection)})"
        for f in statement[1]
    ]
    columns = ", ".join(q(str(f.column)) for f in statement[1])
    # Names from the models' own meta, quoted; every value is a parameter.
    sql = (
        f"INSERT INTO {q(meta.db_table)} ({columns})"  # noqa: S608
        f" SELECT {', '.join(values)} FROM {source}"
    )
    return sql, fields


@cache
def insert_statement(
    vendor: str, model: type[Model], rows: int = 1
) -> tuple[str, list[Any]] | None:
    """``INSERT ... VALUES (...)`` with ``rows`` rows ``RETURNING`` the primary key, and
    the fields each row gives (in order); None where the model or database is not plain."""
    parts = insert_parts(vendor, model)
    if parts is None:
        return None
    head, row, returning, fields = parts
    return f"{head} VALUES {', '.join([row] * rows)} {returning}", fields


@cache
def insert_parts(vendor: str, model: type[Model]) -> tuple[str, str, str, list[Any]] | None:
    """``insert_statement``'s parts: ``INSERT INTO table (columns)``, one row's
    placeholders, ``RETURNING pk``, and the fields; None where not plain."""
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
    head = f"INSERT INTO {q(meta.db_table)} ({columns})"
    row = f"({', '.join(['%s'] * len(fields))})"
    return head, row, f"RETURNING {q(str(pk.column))}", fields
