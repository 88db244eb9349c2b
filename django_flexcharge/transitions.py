"""The order state machine: which status may follow which, and the signals a change sends.

The table (``ALLOWED``) is the rule; ``transition()`` makes one allowed step
and is called only by ``order_state.change_order``, the one entry point
for every change of an order (``/evaluate``, a webhook, a refund, a cancel or
a sync). The row is locked (``select_for_update`` inside
``transaction.atomic``); signals go out after commit, once per real change, so
a rolled-back change signals nothing and a duplicate changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from . import signals, telemetry
from .inserts import insert, save_fields
from .models import FlexChargeOrder, StatusChange

if TYPE_CHECKING:
    from .models import WebhookEvent

Status = FlexChargeOrder.Status

ALLOWED: dict[str, frozenset[str]] = {
    Status.QUEUED: frozenset(
        {
            Status.PENDING,
            Status.APPROVED,
            Status.DECLINED,
            Status.EXPIRED,
            Status.CANCELLED,
            Status.FAILED,
        }
    ),
    Status.PENDING: frozenset({Status.APPROVED, Status.DECLINED, Status.EXPIRED, Status.CANCELLED}),
    Status.APPROVED: frozenset({Status.PARTIALLY_REFUNDED, Status.REFUNDED}),
    Status.PARTIALLY_REFUNDED: frozenset({Status.REFUNDED}),
    # Terminal: never reopen.
    Status.DECLINED: frozenset(),
    Status.EXPIRED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.REFUNDED: frozenset(),
    # We stopped handing it over, but a request may have reached FlexCharge. If
    # FlexCharge says it charged the order (webhook, sync), money moved: the
    # host must hear order_approved rather than charge the customer again.
    Status.FAILED: frozenset({Status.APPROVED}),
}

#: The specific signal sent (besides ``order_status_changed``) on entering a status.
STATUS_SIGNALS: dict[str, Signal] = {
    Status.APPROVED: signals.order_approved,
    Status.EXPIRED: signals.order_expired,
    Status.DECLINED: signals.order_declined,
    Status.CANCELLED: signals.order_cancelled,
    Status.REFUNDED: signals.order_refunded,
    Status.PARTIALLY_REFUNDED: signals.order_refunded,
}

RESOLVED = frozenset(
    {Status.APPROVED, Status.DECLINED, Status.EXPIRED, Status.CANCELLED, Status.FAILED}
)


def can_transition(current: str, new: str) -> bool:
    return new in ALLOWED.get(current, frozenset())


def transition(
    order: FlexChargeOrder,
    new_status: str,
    *,
    event: WebhookEvent | None = None,
    update_fields: tuple[str, ...] = (),
    cause: str = "",
    user: Any = None,
    saved_from: str | None = None,
    recorded: StatusChange | None = None,
) -> bool:
    """Move ``order`` to ``new_status`` if the table allows it; save; signal after commit.

    Returns False (and saves nothing) for a disallowed or no-op change. Fields
    named in ``update_fields`` (already set on ``order`` by the caller) are
    saved with the status in the same UPDATE. Call inside ``transaction.atomic``
    with the row locked. Each change is recorded as a ``StatusChange`` with its
    ``cause`` (a webhook's event name when ``event`` is given) and ``user``.

    ``saved_from``: the row already moved from that status to ``new_status``
    (``order_state.change_held``'s conditional UPDATE, which set the same
    fields as ``stamp_fields``); only the history and the signals are left, or
    only the signals when ``recorded``, the ``history_row`` that statement stored.
    """
    previous = order.status if saved_from is None else saved_from
    if saved_from is None:
        step = prepare(
            order, new_status, event=event, update_fields=update_fields, cause=cause, user=user
        )
        if step is None:
            return False
        save_fields(order, step.fields, then=step.history, link="order")
    elif not can_transition(previous, new_status):
        return False
    elif recorded is None:
        history = history_row(
            previous, new_status, event=event, cause=cause, user=user, at=order.updated
        )
        history.order = order
        insert(history)
    after(order, previous, event)
    return True


@dataclass(frozen=True)
class Step:
    """An allowed step ``prepare`` set on an order, to be saved: the fields, the history row."""

    previous: str
    fields: tuple[str, ...]
    history: StatusChange


def prepare(
    order: FlexChargeOrder,
    new_status: str,
    *,
    event: WebhookEvent | None = None,
    update_fields: tuple[str, ...] = (),
    cause: str = "",
    user: Any = None,
) -> Step | None:
    """Set a step the table allows on ``order`` (status, its dates) without saving; None if refused.

    ``transition`` saves it at once; ``order_state.change_orders`` saves a
    group's steps together (``inserts.save_many``), then calls ``after`` for each.
    """
    previous = order.status
    if not can_transition(previous, new_status):
        return None
    now = timezone.now()
    history = history_row(previous, new_status, event=event, cause=cause, user=user, at=now)
    order.status = new_status
    fields = {"status", "updated", *update_fields, *stamp_fields(order, new_status, now)}
    return Step(previous, tuple(sorted(fields)), history)


def after(order: FlexChargeOrder, previous: str, event: WebhookEvent | None = None) -> None:
    """What follows a saved step, after commit: the recovered-money count, the signals."""
    if order.status == Status.APPROVED:
        amount, currency = order.amount, order.currency
        transaction.on_commit(partial(telemetry.record_recovered, amount, currency, order.account))
    transaction.on_commit(partial(send_status_signals, order, previous, event))


def history_row(
    previous: str,
    new_status: str,
    *,
    event: WebhookEvent | None = None,
    cause: str = "",
    user: Any = None,
    at: Any,
) -> StatusChange:
    """The ``StatusChange`` a step records (unsaved, its order not set): what caused it and who."""
    return StatusChange(
        previous=previous,
        status=new_status,
        cause=(cause or (f"webhook {event.event}" if event is not None else "code"))[:255],
        event=event,
        user=user if getattr(user, "is_authenticated", False) else None,
        at=at,
    )


def stamp_fields(order: FlexChargeOrder, new_status: str, now: Any) -> tuple[str, ...]:
    """Set (and name) the dates entering ``new_status`` records: the first resolution, the first
    submission. ``order_state.change_held`` writes the same in SQL (COALESCE)."""
    if new_status in RESOLVED and order.resolved_at is None:
        order.resolved_at = now
        return ("resolved_at",)
    if new_status == Status.PENDING and order.submitted_at is None:
        order.submitted_at = now
        return ("submitted_at",)
    return ()


def send_status_signals(order: FlexChargeOrder, previous: str, event: Any = None) -> None:
    signals.order_status_changed.send(
        sender=FlexChargeOrder, order=order, previous_status=previous, event=event
    )
    specific = STATUS_SIGNALS.get(order.status)
    if specific is not None:
        specific.send(sender=FlexChargeOrder, order=order, event=event)
