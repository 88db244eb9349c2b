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

from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db import DatabaseError, connection
from django.db.models import Model

from .inserts import (
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
    shape = tuple((names, len(members)) for names, members in groups.items())
    then_model = type(thens[0]) if thens else None
    sql, fields, then_fields = _many_statement(model, shape, guard, then_model, len(thens), link)
    params: list[Any] = []
    for members, group_fields in zip(groups.values(), fields, strict=True):
        for obj, values in members:
            params.append(obj.pk)
            params += [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in group_fields]
            params += [_prep(model, name, value) for name, value in zip(guard, values, strict=True)]
    for then in thens:
        params += field_values(then, then_fields)
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


def _prep(model: type[Model], name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)  # type: ignore[union-attr]


def insert_many(objs: Sequence[Model]) -> None:
    """``inserts.insert`` for several new rows of one model: one multi-row INSERT, its SQL
    built once per row count; sets their primary keys. Elsewhere: ``bulk_create``."""
    if not objs:
        return
    model = type(objs[0])
    statement = insert_statement(connection.vendor, model, len(objs))
    if statement is None or len(objs) * len(statement[1]) > MAX_PARAMETERS:
        model._default_manager.bulk_create(objs)
        return
    sql, fields = statement
    params: list[Any] = []
    for obj in objs:
        send_pre_save(obj)
        params += field_values(obj, fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pks = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, pks, strict=True):
        mark_saved(obj, pk)


@cache
def _many_statement(
    model: type[Model],
    shape: tuple[tuple[tuple[str, ...], int], ...],
    guard: tuple[str, ...],
    then: type[Model] | None,
    thens: int,
    link: str,
) -> tuple[str, list[list[Any]], list[Any]]:
    """``save_many``'s statement, built once per shape (each set of names, its row count).

    Per set, its rows' values (primary key, the fields, the ``guard`` values seen)
    as a VALUES list the UPDATE joins on the primary key; the new rows' INSERT
    takes those linked to a row updated. It returns ``(0, key, NULL)`` per row
    updated and ``(1, key, linked key)`` per new row. With it, the fields whose
    values each set's rows give after their key, and the new rows' fields.
    """
    q = connection.ops.quote_name
    meta = model._meta
    table, pk = q(meta.db_table), q(str(meta.pk.column))
    parts, returned, group_fields = [], [], []
    checks = [meta.get_field(name) for name in guard]
    for number, (names, count) in enumerate(shape):
        fields = [meta.get_field(name) for name in names]
        group_fields.append(fields)
        columns = [pk, *(q(str(f.column)) for f in fields)]  # type: ignore[union-attr]
        columns += [q(f"seen_{f.column}") for f in checks]  # type: ignore[union-attr]
        types = [f.cast_db_type(connection) for f in (meta.pk, *fields, *checks)]  # type: ignore[union-attr]
        row = f"({', '.join(f'CAST(%s AS {t})' for t in types)})"
        sets = ", ".join(f"{c} = v{number}.{c}" for c in columns[1 : 1 + len(fields)])
        where = "".join(
            f" AND {table}.{q(str(f.column))} IS NOT DISTINCT FROM v{number}.{q(f'seen_{f.column}')}"  # type: ignore[union-attr]
            for f in checks
        )
        # Names from the model's own meta, quoted; every value is a parameter.
        parts.append(
            f"v{number} ({', '.join(columns)}) AS (VALUES {', '.join([row] * count)}), "  # noqa: S608
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
        row = f"({', '.join(f'CAST(%s AS {f.cast_db_type(connection)})' for f in then_fields)})"
        updated = " UNION ALL ".join(f"SELECT {pk} FROM u{n}" for n in range(len(shape)))  # noqa: S608
        parts.append(
            f"n ({', '.join(then_columns)}) AS (VALUES {', '.join([row] * thens)}), "  # noqa: S608
            f"stored AS ({head} SELECT * FROM n WHERE n.{linked} IN ({updated})"
            f" {returning}, {linked})"
        )
        returned.append(f"SELECT 1, {q(str(then_meta.pk.column))}, {linked} FROM stored")  # noqa: S608
    return f"WITH {', '.join(parts)} {' UNION ALL '.join(returned)}", group_fields, then_fields
