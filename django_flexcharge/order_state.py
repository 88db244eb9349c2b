"""The one entry point for every change of a ``FlexChargeOrder``: ``change_order``.

The webhook, the delivery tasks, refunds, cancel and sync each translate
FlexCharge's answer into a requested change (a status, a refunded total, other
fields); this module decides, with the table in ``transitions``, what that
change means for the order, and applies it: under the row lock, amounts
first, one save per status step, one ``StatusChange`` and one set of signals
(after commit) per step. The rules that used to live with each caller live
here once:

- approve first, then refund: a refund of an order still waiting for its
  (lost) approval means it was rescued, so the host hears ``order_approved``
  and then ``order_refunded``. Only an order FlexCharge may hold (pending, or
  queued after an attempt went out) is approved this way: a queued order
  never sent was not charged, let alone refunded.
- the refunded total: never lowered, never above the order's amount; a total
  FlexCharge states clears ``refunded_amount_unknown``, a refund reported
  without its total sets it (until the total reaches the amount).
- a requested change the table refuses still saves the caller's other fields
  (the answer is stored), unless the caller asks for nothing to be saved then
  (``only_if_changed``: the webhook stores such an event as ignored).

``change_held`` is the same rule for the commonest request, a webhook moving
an order out of ``pending``, as one conditional UPDATE instead of a locked
read, then a write: the table names the status it may move from, the WHERE
clause checks it under the row lock the UPDATE takes, and ``transition``
records the history and the signals as for any other step.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.utils import timezone

from .inserts import default_connection, insert, insert_after, one_statement
from .models import FlexChargeOrder, StatusChange
from .transitions import RESOLVED, can_transition, history_row, transition

if TYPE_CHECKING:
    from collections.abc import Mapping

    from django.db.models import QuerySet

    from .models import WebhookEvent

Status = FlexChargeOrder.Status

#: The statuses a refund leads to.
REFUNDED_STATUSES = frozenset({Status.REFUNDED, Status.PARTIALLY_REFUNDED})
#: What a webhook's order lock never reads (transition() saves with update_fields).
JSON_FIELDS = ("request_payload", "response_payload", "api_errors")


def rows(*, lock: bool, lean: bool = False) -> QuerySet[FlexChargeOrder]:
    """Orders to look up for a change: locked rows (``select_for_update``; inside
    ``transaction.atomic``), ``lean`` without the JSON columns nothing here reads."""
    orders = FlexChargeOrder.objects.defer(*JSON_FIELDS) if lean else FlexChargeOrder.objects.all()
    return orders.select_for_update() if lock else orders


def lock(order: FlexChargeOrder | int) -> FlexChargeOrder:
    """The order's row, locked, for ``change_order`` (call inside ``transaction.atomic``)."""
    return rows(lock=True).get(pk=order.pk if isinstance(order, FlexChargeOrder) else order)


def lock_many(pks: list[int], *, lean: bool = False) -> dict[int, FlexChargeOrder]:
    """Several orders' rows, locked in primary-key order (so two callers never deadlock),
    by primary key; for ``change_order`` on each (call inside ``transaction.atomic``)."""
    locked = rows(lock=True, lean=lean).filter(pk__in=pks).order_by("pk")
    return {order.pk: order for order in locked}


def never_sent(order: FlexChargeOrder) -> bool:
    """Queued with no attempt: FlexCharge cannot hold, charge or refund this order."""
    return order.status == Status.QUEUED and not order.attempts


def may_approve_first(order: FlexChargeOrder) -> bool:
    """Whether a refund of ``order`` proves FlexCharge approved it (see the module doc)."""
    return order.status == Status.PENDING or (
        order.status == Status.QUEUED and not never_sent(order)
    )


@dataclass(frozen=True)
class Plan:
    """What a requested change does to an order: its status steps and refunded figures."""

    steps: tuple[str, ...]
    #: The status the request means for this order (a refund's follows its total).
    wanted: str | None
    refunded: int
    unknown: bool
    #: Refund news with no status step: a further partial refund, or a total
    #: becoming (or staying) unknown. Saved, but sends no signal (CONTRACT §5).
    refund_news: bool

    @property
    def changes(self) -> bool:
        return bool(self.steps) or self.refund_news


def refunded_figures(order: FlexChargeOrder, refunded: int, known: bool | None) -> tuple[int, bool]:
    """``(refunded total, total unknown?)`` once a refund of ``refunded`` in total is counted.

    The total never goes down (the books keep what an approved answer said)
    nor above the amount. ``known``: True, ``refunded`` is FlexCharge's total;
    False, only a lower bound (a refund reported without its total); None,
    the flag stays as it is (our own approved refund).
    """
    total = min(order.amount, max(order.refunded_amount, refunded))
    unknown = order.refunded_amount_unknown
    if known is not None:
        unknown = not known and total < order.amount
    return total, unknown


def plan(
    order: FlexChargeOrder,
    *,
    to: str | None = None,
    refunded: int | None = None,
    refunded_known: bool | None = None,
) -> Plan:
    """Decide what asking for ``to`` and a refunded total ``refunded`` does to ``order``.

    ``to`` a refund status means FlexCharge says the order was refunded: its
    status then follows the total (even one still unknown), and an order it
    may hold unapproved is approved first. A total alone (our own refund, a
    settled one) moves the status only once it is above zero.
    """
    asked = to in REFUNDED_STATUSES
    total, unknown = order.refunded_amount, order.refunded_amount_unknown
    if refunded is not None or asked:
        total, unknown = refunded_figures(order, refunded or 0, refunded_known)
    steps: list[str] = []
    current = order.status
    if to is not None and not asked and can_transition(current, to):
        steps.append(to)
        current = to
    refund_to: str | None = None
    if asked or (refunded is not None and total > 0):
        refund_to = Status.REFUNDED if total >= order.amount else Status.PARTIALLY_REFUNDED
        if asked and may_approve_first(order):
            steps.append(Status.APPROVED)
            current = Status.APPROVED
        if can_transition(current, refund_to):
            steps.append(refund_to)
            current = refund_to
    news = refund_to == current == Status.PARTIALLY_REFUNDED and (
        total > order.refunded_amount or unknown or order.refunded_amount_unknown
    )
    return Plan(tuple(steps), refund_to or to, total, unknown, news)


@dataclass(frozen=True)
class Change:
    """What ``change_order`` did: the order as saved, and whether it changed."""

    order: FlexChargeOrder
    plan: Plan
    saved: bool

    @property
    def moved(self) -> bool:
        return bool(self.plan.steps)


def change_order(
    order: FlexChargeOrder | int,
    *,
    to: str | None = None,
    refunded: int | None = None,
    refunded_known: bool | None = None,
    values: Mapping[str, Any] | None = None,
    event: WebhookEvent | None = None,
    cause: str = "",
    user: Any = None,
    only_if_changed: bool = False,
) -> Change:
    """Apply a requested change to an order; the one way an order's state changes.

    ``order``: a primary key (the row is locked here, in its own transaction)
    or an instance from ``lock()`` (the caller's transaction holds the lock).
    ``to``: the status asked for; ``refunded``/``refunded_known``: a refunded
    total (see ``refunded_figures``); ``values``: other fields to save with it;
    ``event``/``cause``/``user``: recorded on each ``StatusChange`` and passed
    to the signals, sent after commit, once per status step.

    A change the table refuses saves ``values`` anyway, unless
    ``only_if_changed``. ``Change.order`` is the instance last saved (a fresh
    one per status step, so each after-commit signal reads its own status).
    """
    if not isinstance(order, FlexChargeOrder):
        with transaction.atomic():
            return change_order(
                lock(order),
                to=to,
                refunded=refunded,
                refunded_known=refunded_known,
                values=values,
                event=event,
                cause=cause,
                user=user,
                only_if_changed=only_if_changed,
            )
    decided = plan(order, to=to, refunded=refunded, refunded_known=refunded_known)
    if only_if_changed and not decided.changes:
        return Change(order, decided, saved=False)
    fields = dict(values or {})
    if (decided.refunded, decided.unknown) != (
        order.refunded_amount,
        order.refunded_amount_unknown,
    ):
        fields.update(refunded_amount=decided.refunded, refunded_amount_unknown=decided.unknown)
    for number, status in enumerate(decided.steps, start=1):
        if number > 1:
            # A fresh instance: the previous step's after-commit signals read theirs.
            order = fresh(order)
        last = number == len(decided.steps)
        for name, value in fields.items() if last else ():
            setattr(order, name, value)
        names = tuple(fields) if last else ()
        transition(order, status, event=event, update_fields=names, cause=cause, user=user)
    if not decided.steps:
        for name, value in fields.items():
            setattr(order, name, value)
        order.save(update_fields=[*fields, "updated"])
    return Change(order, decided, saved=True)


def fresh(order: FlexChargeOrder) -> FlexChargeOrder:
    """A new instance of ``order``'s row, locked (as lean as ``order``)."""
    return rows(lock=True, lean=bool(order.get_deferred_fields())).get(pk=order.pk)


#: The status FlexCharge holds an order in while it decides: the one ``change_held``
#: moves from (a queued or failed order is rare news; ``change_order`` handles it).
HELD = Status.PENDING


def change_held(
    account: str,
    key: tuple[str, str],
    *,
    to: str,
    values: Mapping[str, Any],
    not_after: dt.datetime | None,
    horizon: dt.datetime,
    event: WebhookEvent,
) -> Change | None:
    """``change_order(to=to, values=values, event=event)`` for an order still in ``HELD``, in
    one statement; None, with nothing changed, for any other case (``change_order``'s then).

    ``key``: (``"order_session_key"`` or ``"order_id"``, value) in ``account``.
    On PostgreSQL the event's INSERT is part of the UPDATE's statement.
    The order moves only if it is in ``HELD``, the table allows ``to`` from there
    (a refund's figures need the order: never here), and its ``last_event_at`` is
    unset or at most ``not_after`` (or, without one, ``horizon``: a later one is
    not trusted, and ``change_order``'s caller decides about it). ``event``, not
    saved yet, is inserted once the order is known (the history row names it); its
    IntegrityError (a nonce stored before) leaves the caller's transaction to roll back.
    Call inside ``transaction.atomic``; the signals go out after commit, as ever.
    """
    # Every target out of HELD is a resolution (RESOLVED): the UPDATE stamps resolved_at.
    if to not in RESOLVED or not can_transition(HELD, to):
        return None
    statement = _held_update(connection.vendor, key[0], tuple(values))
    if statement is None:
        return None
    sql, returned = statement
    meta = FlexChargeOrder._meta
    now = timezone.now()
    sets = (("status", to), ("updated", now), *values.items(), ("resolved_at", now))
    where = (("account", account), (key[0], key[1]), ("status", HELD))
    conn = default_connection()
    params = [_prep(meta.get_field(name), value, conn) for name, value in (*sets, *where)]
    params.append(_prep(meta.get_field("last_event_at"), not_after or horizon, conn))
    recorded = None
    if one_statement(type(event)) and one_statement(StatusChange):
        # PostgreSQL: the event's INSERT and the history row ride on the UPDATE (one round trip).
        recorded = history_row(HELD, to, event=event, at=now)
        links = ("order", "event")
        row = insert_after(event, sql, params, link="order", then=recorded, then_links=links)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    if row is None:
        return None
    order = _instance(returned, row)
    event.order = order
    if event._state.adding:
        insert(event)
    if recorded is not None:
        recorded.order, recorded.event = order, event
    transition(order, to, event=event, saved_from=HELD, recorded=recorded)
    unchanged = Plan((to,), to, order.refunded_amount, order.refunded_amount_unknown, False)
    return Change(order, unchanged, saved=True)


def _prep(field: Any, value: Any, conn: Any) -> Any:
    return field.get_db_prep_save(value, conn)


def _instance(returned: Returned, row: tuple[Any, ...]) -> FlexChargeOrder:
    """The order as the ORM would load it from ``row`` (the JSON columns deferred)."""
    values = list(row)
    conn = default_connection()
    for index, col, own in returned.converted:
        # As the ORM's compiler does: the backend's converters (this thread's
        # connection), then the field's own.
        value = values[index]
        for convert in (*conn.ops.get_db_converters(col), *own):
            value = convert(value, col, conn)
        values[index] = value
    return FlexChargeOrder.from_db(conn.alias, returned.names, values)


@dataclass(frozen=True)
class Returned:
    """The columns ``change_held``'s UPDATE returns: attribute names, and the columns
    whose values the backend converts (with the field's own converters)."""

    names: list[str]
    converted: list[tuple[int, Any, tuple[Any, ...]]]


@cache
def _held_update(vendor: str, key: str, names: tuple[str, ...]) -> tuple[str, Returned] | None:
    """``change_held``'s UPDATE ... RETURNING and the fields it returns; None where the
    database cannot return rows from an UPDATE (MySQL, SQLite before 3.35)."""
    returns = vendor == "postgresql" or (
        vendor == "sqlite" and connection.features.can_return_columns_from_insert
    )
    if not returns:
        return None
    meta = FlexChargeOrder._meta
    fields = [f for f in meta.concrete_fields if f.name not in JSON_FIELDS]
    columns = {f.name: connection.ops.quote_name(str(f.column)) for f in fields}
    sets = [f"{columns[name]} = %s" for name in ("status", "updated", *names)]
    resolved, last = columns["resolved_at"], columns["last_event_at"]
    sets.append(f"{resolved} = COALESCE({resolved}, %s)")
    where = [f"{columns[name]} = %s" for name in ("account", key, "status")]
    converters = []
    for index, field in enumerate(fields):
        col = field.get_col(meta.db_table)
        own = tuple(col.get_db_converters(connection))
        if own or connection.ops.get_db_converters(col):
            converters.append((index, col, own))
    # Names from the model's own meta, quoted; every value is a parameter.
    sql = (
        f"UPDATE {connection.ops.quote_name(meta.db_table)} SET {', '.join(sets)}"  # noqa: S608
        f" WHERE {' AND '.join(where)} AND ({last} IS NULL OR {last} <= %s)"
        f" RETURNING {', '.join(columns.values())}"
    )
    return sql, Returned([f.attname for f in fields], converters)
