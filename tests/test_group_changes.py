"""group_changes: several orders' changes saved together, as ``change_order`` makes each,
and saved only while as read when read without a lock."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_flexcharge.group_changes import (
    Request,
    change_orders,
    change_orders_as_read,
    saves_as_read,
)
from django_flexcharge.models import FlexChargeOrder, StatusChange
from django_flexcharge.order_state import lock_many
from django_flexcharge.transitions import ALLOWED
from tests.factories import make_order

Status = FlexChargeOrder.Status
REFUNDS = (Status.REFUNDED, Status.PARTIALLY_REFUNDED)
STATUS_CHANGED = "order_status_changed"

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("target", [s for s in Status.values if s not in REFUNDS])
def test_changes_saved_together_follow_the_table_as_one_change_each(
    target, signal_log, django_capture_on_commit_callbacks
):
    before = {f"INV-{n}": current for n, current in enumerate(Status.values)}
    orders = [
        make_order(order_id, session_key=f"fc-{order_id}", status=current, attempts=1)
        for order_id, current in before.items()
    ]

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        locked = lock_many([o.pk for o in orders])
        requests = [Request(locked[o.pk], target, {"last_error": "seen"}, "why") for o in orders]
        changes = change_orders(requests)

    for order, change in zip(orders, changes, strict=True):
        order.refresh_from_db()
        allowed = target in ALLOWED[before[order.order_id]]
        assert change.moved is allowed
        assert order.status == (target if allowed else before[order.order_id])
        # A refused change still stores the caller's fields, as change_order does.
        assert order.last_error == "seen"
        history = list(StatusChange.objects.filter(order=order).values_list("status", "cause"))
        assert history == ([(target, "why")] if allowed else [])
    moved = [o.order_id for o in orders if target in ALLOWED[before[o.order_id]]]
    told = [order_id for name, order_id, _ in signal_log.calls if name == STATUS_CHANGED]
    assert told == moved


def test_the_same_order_twice_in_one_group_takes_both_changes_in_turn(
    signal_log, django_capture_on_commit_callbacks
):
    order = make_order(status=Status.QUEUED, attempts=1)

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        locked = lock_many([order.pk])[order.pk]
        change_orders(
            [
                Request(locked, Status.PENDING, {"last_error": "first"}),
                Request(locked, Status.APPROVED, {"last_error": "second"}),
            ]
        )

    order.refresh_from_db()
    assert (order.status, order.last_error) == (Status.APPROVED, "second")
    steps = list(StatusChange.objects.filter(order=order).order_by("pk").values_list("status"))
    assert steps == [(Status.PENDING,), (Status.APPROVED,)]
    assert signal_log.names() == [STATUS_CHANGED, STATUS_CHANGED, "order_approved"]


def test_a_refund_in_a_group_takes_its_steps_as_change_order_does(signal_log):
    held = make_order("INV-H", session_key="fc-h", status=Status.PENDING, attempts=1)
    other = make_order("INV-O", session_key="fc-o", status=Status.QUEUED, attempts=1)

    with transaction.atomic():
        locked = lock_many([held.pk, other.pk])
        changes = change_orders(
            [
                Request(locked[held.pk], Status.REFUNDED, {}),
                Request(locked[other.pk], Status.PENDING, {}),
            ]
        )

    # No total given: the status follows the total still counted (none), as change_order's.
    assert [c.plan.steps for c in changes] == [
        (Status.APPROVED, Status.PARTIALLY_REFUNDED),
        (Status.PENDING,),
    ]
    held.refresh_from_db()
    assert held.status == Status.PARTIALLY_REFUNDED
    assert signal_log.names() == []  # not committed yet


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement: PostgreSQL")
def test_a_groups_saves_and_history_rows_are_one_statement():
    orders = [make_order(f"INV-S{n}", session_key=f"fc-s{n}", attempts=1) for n in range(5)]
    with transaction.atomic():
        locked = lock_many([o.pk for o in orders])
        with CaptureQueriesContext(connection) as queries:
            change_orders(
                [Request(locked[o.pk], Status.APPROVED, {"last_error": ""}) for o in orders]
            )
    assert len(queries) == 1
    assert StatusChange.objects.filter(order__in=orders, status=Status.APPROVED).count() == 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="saves as read: PostgreSQL")
def test_changes_decided_as_read_are_saved_only_where_the_order_is_still_as_read(
    signal_log, django_capture_on_commit_callbacks
):
    assert saves_as_read()
    kept, moved, renamed, gone = (
        make_order(f"INV-R{n}", session_key=None, status=Status.QUEUED, attempts=1)
        for n in range(4)
    )
    # Read as a delivery run claims them; then a webhook, a sync and a person act.
    copies = list(FlexChargeOrder.objects.filter(pk__in=[kept.pk, moved.pk, renamed.pk, gone.pk]))
    copies.sort(key=lambda o: o.order_id)
    FlexChargeOrder.objects.filter(pk=moved.pk).update(status=Status.APPROVED)
    FlexChargeOrder.objects.filter(pk=renamed.pk).update(order_session_key="fc-known")
    FlexChargeOrder.objects.filter(pk=gone.pk).delete()

    with django_capture_on_commit_callbacks(execute=True):
        changes = change_orders_as_read(
            [Request(o, Status.PENDING, {"last_error": "answered"}, "why") for o in copies],
            read=("order_session_key",),
        )

    assert [c is not None for c in changes] == [True, False, False, False]
    stored = {o.order_id: o for o in FlexChargeOrder.objects.all()}
    assert (stored["INV-R0"].status, stored["INV-R0"].last_error) == (Status.PENDING, "answered")
    assert stored["INV-R0"].submitted_at is not None
    assert (stored["INV-R1"].status, stored["INV-R1"].last_error) == (Status.APPROVED, "")
    assert (stored["INV-R2"].status, stored["INV-R2"].order_session_key) == (
        Status.QUEUED,
        "fc-known",
    )
    history = StatusChange.objects.values_list("order__order_id", "previous", "status", "cause")
    assert list(history) == [("INV-R0", Status.QUEUED, Status.PENDING, "why")]
    told = [order_id for name, order_id, _ in signal_log.calls if name == STATUS_CHANGED]
    assert told == ["INV-R0"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="saves as read: PostgreSQL")
def test_a_second_change_of_one_order_or_a_refund_is_left_to_the_locked_path():
    order = make_order(status=Status.PENDING, attempts=1)
    copy = FlexChargeOrder.objects.get(pk=order.pk)

    changes = change_orders_as_read(
        [
            Request(copy, Status.APPROVED, {}),
            Request(copy, Status.DECLINED, {}),
            Request(FlexChargeOrder.objects.get(pk=order.pk), Status.REFUNDED, {}),
        ],
        read=(),
    )

    assert [c is not None for c in changes] == [True, False, False]
    order.refresh_from_db()
    assert order.status == Status.APPROVED
