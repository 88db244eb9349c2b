"""Several orders' changes saved together: ``change_orders`` and ``change_orders_as_read``.

A delivery run applies FlexCharge's answers ten at a time (``sending.APPLY_GROUP``).
Each answer is decided as ``order_state.change_order`` decides any change (``plan``,
then the step ``transitions.prepare`` sets), and the group is saved with one
statement on PostgreSQL (``group_saves.save_many``), history rows included.

``change_orders_as_read`` goes one step further for orders read without a lock
(as a run claimed them): the UPDATE itself checks that what decided each change
is still as read, so no locking read is needed. An order something changed
meanwhile (a webhook, a person) is left out, and its caller locks it and asks
``change_orders``: the state machine decides every change on the row as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .group_saves import save_many
from .inserts import one_statement
from .models import FlexChargeOrder, StatusChange
from .order_state import Change, change_order, fresh, plan
from .transitions import after, prepare

#: What deciding a change of at most one status step reads of an order (``plan``,
#: ``transitions.prepare``): ``change_orders_as_read`` saves only while these are as read.
DECIDED_BY = ("status", "submitted_at", "resolved_at", "refunded_amount", "refunded_amount_unknown")


@dataclass(frozen=True)
class Request:
    """One order's change: as ``change_order``'s arguments."""

    order: FlexChargeOrder
    to: str | None
    values: Mapping[str, Any]
    cause: str = ""


class _Group:
    """Changes set on their orders, to be saved together; then what follows each step."""

    def __init__(self) -> None:
        self.rows: list[tuple[FlexChargeOrder, tuple[str, ...], StatusChange | None]] = []
        self.steps: list[tuple[FlexChargeOrder, str]] = []

    def holds(self, order: FlexChargeOrder) -> bool:
        return any(order.pk == other.pk for other, _, _ in self.rows)

    def stage(self, request: Request, step_to: str | None) -> None:
        order = request.order
        for name, value in request.values.items():
            setattr(order, name, value)
        names = tuple(request.values)
        step = None
        if step_to is not None:
            step = prepare(order, step_to, update_fields=names, cause=request.cause)
        if step is None:
            self.rows.append((order, tuple(sorted({*names, "updated"})), None))
        else:
            self.rows.append((order, step.fields, step.history))
            self.steps.append((order, step.previous))

    def saved(self, pks: set[Any]) -> None:
        for order, previous in self.steps:
            if order.pk in pks:
                after(order, previous)
        self.rows, self.steps = [], []


def change_orders(requests: list[Request]) -> list[Change]:
    """``change_order`` for each of several locked orders (inside ``transaction.atomic``),
    their saves written together (one statement on PostgreSQL).

    A request of at most one status step is set on its order and saved with the
    others; any other (a refund's steps) goes through ``change_order`` itself. The
    history rows, the signals and what they say are those ``change_order`` gives.
    """
    changes: list[Change] = []
    group = _Group()
    for request in requests:
        if group.holds(request.order):
            # The same order twice: the second change reads the first as saved, on an
            # instance of its own (the first's after-commit signals read theirs).
            group.saved(save_many(group.rows, link="order"))
            request = Request(fresh(request.order), request.to, request.values, request.cause)
        decided = plan(request.order, to=request.to)
        if len(decided.steps) > 1:
            order, to, values, cause = request.order, request.to, request.values, request.cause
            changes.append(change_order(order, to=to, values=values, cause=cause))
            continue
        group.stage(request, decided.steps[0] if decided.steps else None)
        changes.append(Change(request.order, decided, saved=True))
    group.saved(save_many(group.rows, link="order"))
    return changes


def saves_as_read() -> bool:
    """Whether ``change_orders_as_read`` works on this database (PostgreSQL)."""
    return one_statement(StatusChange)


def change_orders_as_read(requests: list[Request], *, read: tuple[str, ...]) -> list[Change | None]:
    """``change_orders`` for orders read without a lock, in one statement (its own
    transaction): each change is saved only if the order's ``DECIDED_BY`` fields
    and the caller's ``read`` ones (what it decided ``values`` on) are still as read.

    None for each order left for the caller to lock and ask ``change_orders``: one
    changed or deleted since it was read, a second request for one order, or a
    change of more than one step. Check ``saves_as_read()`` first.
    """
    guard = tuple(dict.fromkeys((*DECIDED_BY, *read)))
    group, seen = _Group(), []
    changes: list[Change | None] = []
    for request in requests:
        decided = plan(request.order, to=request.to)
        if len(decided.steps) > 1 or group.holds(request.order):
            changes.append(None)
            continue
        seen.append(tuple(getattr(request.order, name) for name in guard))
        group.stage(request, decided.steps[0] if decided.steps else None)
        changes.append(Change(request.order, decided, saved=True))
    saved = save_many(group.rows, link="order", guard=guard, seen=seen)
    group.saved(saved)
    return [c if c is not None and c.order.pk in saved else None for c in changes]
