"""The order state machine's shape, which the webhook's short cut relies on."""

from __future__ import annotations

from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.transitions import ALLOWED, RESOLVED, can_transition

Status = FlexChargeOrder.Status


def reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(ALLOWED[start])
    while todo:
        status = todo.pop()
        if status not in seen:
            seen.add(status)
            todo.extend(ALLOWED[status])
    return seen


def test_every_status_has_a_row():
    assert set(ALLOWED) == set(Status.values)


def test_no_status_can_come_back_once_left():
    # webhooks._apply_locked skips the duplicate lookup for a first delivery
    # whose transition is allowed: sound only while an order that entered a
    # status can never move to it again (no self-loops, no cycles).
    for status in ALLOWED:
        assert status not in reachable(status), f"{status} can be re-entered"


def test_terminal_statuses_never_reopen():
    for status in (Status.DECLINED, Status.EXPIRED, Status.CANCELLED, Status.REFUNDED):
        assert not any(can_transition(status, other) for other in Status.values)


def test_resolved_orders_are_out_of_flexcharges_hands():
    assert Status.QUEUED not in RESOLVED
    assert Status.PENDING not in RESOLVED
    assert not any(Status.PENDING in reachable(status) for status in RESOLVED)
