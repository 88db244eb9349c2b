"""Saving a group of rows at once: ``save_many`` (stored rows, each its own fields) and
``insert_many`` (new rows), each one statement built once per shape.

A delivery run saves FlexCharge's answers ten at a time (``sending.APPLY_GROUP``);
one round trip per group instead of one per row is most of what it saves on
PostgreSQL. The values are prepared and the model's signals sent as
``inserts.save_fields`` and ``inserts.insert`` do for one row.

``save_many(..., guard=...)`` saves a row only if the ``guard`` fields are still
as they were read (``seen``): rows read without a lock are changed as if they had
been locked, and a row something else changed meanwhile is left alone, for the
caller to lock and decide again. ``order_state.change_orders`` is its caller.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import DatabaseError, connection
from django.db.models import JSONField, Model

from .inserts import (
    default_connection,
    field_values,
    insert_parts,
    insert_statement,
    mark_saved,
    one_statement,
    save_fields,
    send_post_save,
    send_pre_save,
)

#: Parameters of one statement ``insert_many`` stays under (SQLite's oldest limit).
MAX_PARAMETERS = 999

#: One row for ``save_many``: the stored row, the fields to save, a new row linked to it.
Row = tuple[Model, Sequence[str], Model | None]


def save_many(
    rows: Sequence[Row],
    *,
    link: str,
    guard: tuple[str, ...] = (),
    seen: Sequence[tuple[Any, ...]] = (),
) -> set[Any]:
    """``save_fields(obj, names, then=then, link=link)`` for each of ``rows`` (one model),
    on PostgreSQL in one statement: an UPDATE per set of ``names``, one INSERT of the
    ``then`` rows whose row was saved; the primary keys saved.

    Without ``guard``, an UPDATE that matched fewer rows than it was given raises
    ``DatabaseError``, as ``save`` does. With it (PostgreSQL only), each row is
    saved only where its ``guard`` fields still hold the values in ``seen`` (one
    tuple per row), and the others are left out of the keys returned.
    """
    if not rows:
        return set()
    model = type(rows[0][0])
    thens = [then for _, _, then in rows if then is not None]
    plain = connection.vendor == "postgresql" and all(
        obj._state.db in (None, connection.alias) for obj, _, _ in rows
    )
    if not plain or (thens and not one_statement(type(thens[0]))):
        assert not guard, "a guarded save needs PostgreSQL (check one_statement())"
        for obj, names, then in rows:
            save_fields(obj, names, then=then, link=link)
        return {obj.pk for obj, _, _ in rows}
    groups: dict[tuple[str, ...], list[tuple[Model, tuple[Any, ...]]]] = {}
    for number, (obj, names, then) in enumerate(rows):
        groups.setdefault(tuple(names), []).append((obj, seen[number] if guard else ()))
        send_pre_save(obj, frozenset(names))
        if then is not None:
            setattr(then, link, obj)
            send_pre_save(then)
    then_model = type(thens[0]) if thens else None
    meta = model._meta
    checks = [meta.get_field(name) for name in guard]
    sql, fields, then_fields = _many_statement(model, tuple(groups), guard, then_model, link)
    conn = default_connection()
    params = [
        _json_rows(
            [
                _json_value(meta.pk, obj.pk, conn),
                *(_json_value(f, f.pre_save(obj, False), conn) for f in group_fields),
                *(_json_value(f, value, conn) for f, value in zip(checks, values, strict=True)),
            ]
            for obj, values in members
        )
        for members, group_fields in zip(groups.values(), fields, strict=True)
    ]
    if thens:
        params.append(
            _json_rows(
                [_json_value(f, f.pre_save(then, True), conn) for f in then_fields]
                for then in thens
            )
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    saved = {pk for kind, pk, _ in returned if kind == 0}
    if not guard and len(saved) != len(rows):
        raise DatabaseError("Save with update_fields did not affect any rows.")
    for obj, names, _ in rows:
        if obj.pk in saved:
            send_post_save(obj, created=False, update_fields=frozenset(names))
    stored = {linked: pk for kind, pk, linked in returned if kind == 1}
    for then in thens:
        if getattr(then, f"{link}_id") in stored:
            mark_saved(then, stored[getattr(then, f"{link}_id")])
    return saved


def insert_many(objs: Sequence[Model]) -> None:
    """``inserts.insert`` for several new rows of one model, in one statement; sets their
    primary keys. PostgreSQL: the rows as one JSON parameter; SQLite: a multi-row
    INSERT, built once per row count; elsewhere ``bulk_create``."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor == "postgresql" and one_statement(model):
        sql, fields = _many_insert(model)
        for obj in objs:
            send_pre_save(obj)
        conn = default_connection()
        params = [
            _json_rows(
                [_json_value(f, f.pre_save(obj, True), conn) for f in fields] for obj in objs
            )
        ]
    else:
        statement = insert_statement(connection.vendor, model, len(objs))
        if statement is None or len(objs) * len(statement[1]) > MAX_PARAMETERS:
            model._default_manager.bulk_create(objs)
            return
        sql, fields = statement
        params = []
        for obj in objs:
            send_pre_save(obj)
            params += field_values(obj, fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pks = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, pks, strict=True):
        mark_saved(obj, pk)


@cache
def _many_insert(model: type[Model]) -> tuple[str, list[Any]]:
    """PostgreSQL: ``INSERT ... SELECT`` of the rows one JSON parameter carries, in order."""
    parts = insert_parts("postgresql", model)
    assert parts is not None, "check one_statement() first"
    head, _, returning, fields = parts
    types = [str(f.cast_db_type(connection)) for f in fields]
    return f"{head} {_json_select(types, ordered=True)} {returning}", fields


def _json_rows(rows: Iterable[list[Any]]) -> str:
    """The rows' values as one JSON array of arrays, the statement's one parameter per set:
    psycopg then quotes one value, not hundreds, and caches the query's split."""
    return json.dumps(list(rows))


def _json_value(field: Any, value: Any, conn: Any) -> Any:
    """``value`` as ``field.get_db_prep_save`` prepares it for ``conn``, as JSON whose text the
    column's type reads (a JSON field's value: Django's JSON text for it).

    ``conn``: ``inserts.default_connection()``, looked up once per statement."""
    if isinstance(field, JSONField):
        return None if value is None else json.dumps(field.get_prep_value(value), cls=field.encoder)
    value = field.get_db_prep_save(value, conn)
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    raise TypeError(f"{field}: no JSON form for {type(value).__name__}")


def _json_select(types: Sequence[str], *, ordered: bool = False) -> str:
    """SELECT of the rows a ``_json_rows`` parameter carries, each column cast to its type;
    ``ordered``: in the parameter's order (an INSERT's ``RETURNING`` then follows it)."""
    columns = ", ".join(f"CAST(e.value->>{i} AS {t})" for i, t in enumerate(types))
    order = " ORDER BY e.number" if ordered else ""
    # Only the types from the models' own meta are interpolated; the rows are a parameter.
    return (
        f"SELECT {columns} FROM jsonb_array_elements(CAST(%s AS jsonb))"  # noqa: S608
        f" WITH ORDINALITY AS e (value, number){order}"
    )


@cache
def _many_statement(
    model: type[Model],
    shape: tuple[tuple[str, ...], ...],
    guard: tuple[str, ...],
    then: type[Model] | None,
    link: str,
) -> tuple[str, list[list[Any]], list[Any]]:
    """``save_many``'s statement, built once per shape (the sets of names, in order).

    Per set, its rows (primary key, the fields, the ``guard`` values seen) from
    one JSON parameter, which the UPDATE joins on the primary key; the new rows'
    INSERT (one more parameter) takes those linked to a row updated. It returns
    ``(0, key, NULL)`` per row updated and ``(1, key, linked key)`` per new row.
    With it, the fields whose values each set's rows give after their key, and
    the new rows' fields.
    """
    q = connection.ops.quote_name
    meta = model._meta
    table, pk = q(meta.db_table), q(str(meta.pk.column))
    parts, returned, group_fields = [], [], []
    checks = [meta.get_field(name) for name in guard]
    for number, names in enumerate(shape):
        fields = [meta.get_field(name) for name in names]
        group_fields.append(fields)
        columns = [pk, *(q(str(f.column)) for f in fields)]  # type: ignore[union-attr]
        columns += [q(f"seen_{f.column}") for f in checks]  # type: ignore[union-attr]
        types = [str(f.cast_db_type(connection)) for f in (meta.pk, *fields, *checks)]  # type: ignore[union-attr]
        sets = ", ".join(f"{c} = v{number}.{c}" for c in columns[1 : 1 + len(fields)])
        where = "".join(
            f" AND {table}.{q(str(f.column))} IS NOT DISTINCT FROM v{number}.{q(f'seen_{f.column}')}"  # type: ignore[union-attr]
            for f in checks
        )
        # Names from the model's own meta, quoted; every value is a parameter.
        parts.append(
            f"v{number} ({', '.join(columns)}) AS ({_json_select(types)}), "  # noqa: S608
            f"u{number} AS (UPDATE {table} SET {sets} FROM v{number}"
            f" WHERE {table}.{pk} = v{number}.{pk}{where} RETURNING {table}.{pk})"
        )
        key_type = meta.pk.cast_db_type(connection)
        returned.append(f"SELECT 0, {pk}, CAST(NULL AS {key_type}) FROM u{number}")  # noqa: S608
    then_fields: list[Any] = []
    if then is not None:
        then_parts = insert_parts("postgresql", then)
        assert then_parts is not None, "check one_statement() first"
        head, _, returning, then_fields = then_parts
        then_meta = then._meta
        then_columns = [q(str(f.column)) for f in then_fields]
        linked = q(str(then_meta.get_field(link).column))  # type: ignore[union-attr]
        then_types = [str(f.cast_db_type(connection)) for f in then_fields]
        updated = " UNION ALL ".join(f"SELECT {pk} FROM u{n}" for n in range(len(shape)))  # noqa: S608
        parts.append(
            f"n ({', '.join(then_columns)}) AS ({_json_select(then_types)}), "  # noqa: S608
            f"stored AS ({head} SELECT * FROM n WHERE n.{linked} IN ({updated})"
            f" {returning}, {linked})"
        )
        returned.append(f"SELECT 1, {q(str(then_meta.pk.column))}, {linked} FROM stored")  # noqa: S608
    return f"WITH {', '.join(parts)} {' UNION ALL '.join(returned)}", group_fields, then_fields
