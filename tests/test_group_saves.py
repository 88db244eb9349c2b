"""group_saves: a group of rows saved, or inserted, with one statement, as the ORM saves each."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import signals
from django.test.utils import CaptureQueriesContext

from django_flexcharge.group_saves import insert_many, save_many
from django_flexcharge.models import FlexChargeOrder, StatusChange
from tests.factories import make_order

pytestmark = pytest.mark.django_db


def test_save_many_writes_each_rows_own_fields_and_links_the_new_rows():
    orders = [make_order(f"INV-M{n}", session_key=f"fc-m{n}") for n in range(3)]
    orders[0].status, orders[1].status, orders[2].email = "approved", "declined", "m@example.com"
    histories = [
        StatusChange(previous="pending", status=o.status, cause="code") for o in orders[:2]
    ]
    seen = []

    def post(sender, instance, created, **kwargs):
        seen.append((instance.order_id, created, kwargs["update_fields"]))

    signals.post_save.connect(post, sender=FlexChargeOrder)
    try:
        with CaptureQueriesContext(connection) as queries:
            save_many(
                [
                    (orders[0], ("status", "updated"), histories[0]),
                    (orders[1], ("status", "updated"), histories[1]),
                    (orders[2], ("email", "updated"), None),
                ],
                link="order",
            )
    finally:
        signals.post_save.disconnect(post, sender=FlexChargeOrder)

    # PostgreSQL: both field sets' UPDATEs and the two history rows in one statement.
    assert len(queries) == (1 if connection.vendor == "postgresql" else 5)
    stored = {o.order_id: o for o in FlexChargeOrder.objects.filter(pk__in=[o.pk for o in orders])}
    assert [stored[f"INV-M{n}"].status for n in range(3)] == ["approved", "declined", "pending"]
    assert stored["INV-M2"].email == "m@example.com"
    assert [stored[o.order_id].updated for o in orders] == [o.updated for o in orders]
    for order, history in zip(orders, histories, strict=False):
        assert StatusChange.objects.get(pk=history.pk).order_id == order.pk
        assert StatusChange.objects.get(pk=history.pk).status == order.status
    assert [name for name, *_ in seen] == ["INV-M0", "INV-M1", "INV-M2"]
    assert seen[2][1:] == (False, frozenset({"email", "updated"}))


def test_save_many_of_a_row_that_is_gone_is_an_error_and_saves_nothing():
    kept, gone = make_order("INV-K", session_key="fc-k"), make_order("INV-G", session_key="fc-g")
    FlexChargeOrder.objects.filter(pk=gone.pk).delete()
    kept.status = gone.status = "approved"
    history = StatusChange(previous="pending", status="approved", cause="code")

    with pytest.raises(DatabaseError, match="did not affect any rows"), transaction.atomic():
        save_many([(kept, ["status"], history), (gone, ["status"], None)], link="order")

    assert FlexChargeOrder.objects.get(pk=kept.pk).status == "pending"
    assert not StatusChange.objects.filter(order=kept).exists()


def test_insert_many_stores_each_row_as_the_orm_would_in_one_statement():
    order = make_order()
    ours = [
        StatusChange(order=order, previous="queued", status=status, cause=f"step {n}")
        for n, status in enumerate(["pending", "approved"])
    ]

    with CaptureQueriesContext(connection) as queries:
        insert_many(ours)

    assert len(queries) == 1
    stored = StatusChange.objects.filter(order=order).order_by("pk")
    assert [(s.pk, s.status, s.cause) for s in stored] == [(o.pk, o.status, o.cause) for o in ours]
    assert all(not o._state.adding for o in ours)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a guarded save: PostgreSQL")
def test_a_guarded_save_leaves_a_row_whose_guard_changed_and_its_new_row():
    same, changed = (make_order(f"INV-G{n}", session_key=f"fc-g{n}") for n in range(2))
    FlexChargeOrder.objects.filter(pk=changed.pk).update(status="approved")
    histories = []
    for order in (same, changed):
        order.last_error = "answered"
        histories.append(StatusChange(previous="pending", status="declined", cause="code"))

    saved = save_many(
        [(o, ("last_error",), h) for o, h in zip((same, changed), histories, strict=True)],
        link="order",
        guard=("status",),
        seen=[("pending",), ("pending",)],
    )

    assert saved == {same.pk}
    assert FlexChargeOrder.objects.get(pk=same.pk).last_error == "answered"
    assert FlexChargeOrder.objects.get(pk=changed.pk).last_error == ""
    assert histories[0].pk is not None
    assert histories[1].pk is None
    assert list(StatusChange.objects.values_list("order_id", flat=True)) == [same.pk]


def test_save_many_carries_every_kind_of_value_as_the_orm_stores_it():
    import datetime as dt
    import uuid

    orders = [make_order(f"INV-T{n}", session_key=f"fc-t{n}") for n in range(2)]
    names = (
        "is_mit", "amount", "refunded_amount_unknown", "resolved_at", "next_attempt_at",
        "response_payload", "last_error", "idempotency_key", "decline_message",
    )  # fmt: skip
    values = [
        (False, 9_007_199_254_740_993, True, dt.datetime(2026, 12, 5, 16, 1, 2, 345678, tzinfo=dt.UTC),
         None, {"nested": [1, 2.5, None, True], "text": 'q"uote\\ \u00e9\n', "null": None},
         "line one\nline 'two' \\ %s %(x)s", uuid.uuid4(), ""),
        (True, 1, False, None, dt.datetime(2030, 1, 1, tzinfo=dt.UTC), ["a", {"b": "c"}],
         "", uuid.uuid4(), "\u2603 snow"),
    ]  # fmt: skip
    for order, row in zip(orders, values, strict=True):
        for name, value in zip(names, row, strict=True):
            setattr(order, name, value)

    save_many([(order, names, None) for order in orders], link="order")

    for order, row in zip(orders, values, strict=True):
        stored = FlexChargeOrder.objects.get(pk=order.pk)
        assert tuple(getattr(stored, name) for name in names) == row


def test_insert_many_gives_each_row_its_own_key_in_order():
    order = make_order()
    ours = [
        StatusChange(order=order, previous="queued", status="pending", cause=f"step {n} \u00e9'\"")
        for n in range(25)
    ]

    insert_many(ours)

    stored = {s.pk: s.cause for s in StatusChange.objects.filter(order=order)}
    assert [stored[o.pk] for o in ours] == [f"step {n} \u00e9'\"" for n in range(25)]


def test_a_value_goes_into_the_json_parameter_as_its_column_reads_it():
    import datetime as dt
    from decimal import Decimal

    from django.db import models

    from django_flexcharge.group_saves import _json_value

    assert _json_value(
        models.DecimalField(max_digits=6, decimal_places=2), Decimal("12.50"), connection
    ) in (
        "12.50",
        Decimal("12.50"),
    )
    assert _json_value(models.DateField(), dt.date(2026, 12, 5), connection) == "2026-12-05"
    assert _json_value(models.TimeField(), dt.time(16, 1, 2), connection) == "16:01:02"
    assert _json_value(models.JSONField(null=True), None, connection) is None
    with pytest.raises(TypeError, match="no JSON form"):
        _json_value(models.BinaryField(), b"\x00\x01", connection)
