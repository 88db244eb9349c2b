"""inserts: the rows ``save(force_insert=True)`` and ``save(update_fields=...)`` would write,
the model's signals, and the one-statement forms on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection
from django.db.models import signals
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from django_flexcharge.inserts import (
    insert,
    insert_after,
    one_statement,
    save_fields,
)
from django_flexcharge.models import FlexChargeOrder, StatusChange, WebhookEvent
from tests.factories import make_order

pytestmark = pytest.mark.django_db


def test_the_row_is_the_one_the_orm_writes_and_gets_its_primary_key():
    order = make_order()
    ours = StatusChange(order=order, previous="pending", status="approved", cause="webhook x")
    orms = StatusChange(order=order, previous="pending", status="approved", cause="webhook x")

    insert(ours)
    orms.save(force_insert=True)

    assert ours.pk is not None
    assert not ours._state.adding
    stored = model_to_dict(StatusChange.objects.get(pk=ours.pk))
    expected = model_to_dict(StatusChange.objects.get(pk=orms.pk))
    assert {**stored, "id": None, "at": None} == {**expected, "id": None, "at": None}
    assert StatusChange.objects.get(pk=ours.pk).at == ours.at


def test_defaults_and_nullable_fields_are_stored_as_the_orm_stores_them():
    event = WebhookEvent(nonce="n-1", body="{}", event="order.completed")

    insert(event)

    stored = WebhookEvent.objects.get(pk=event.pk)
    assert (stored.account, stored.status, stored.order, stored.timestamp) == (
        "default",
        "received",
        None,
        None,
    )
    assert stored.received_at == event.received_at


def test_the_models_save_signals_are_sent():
    seen = []

    def pre(sender, instance, **kwargs):
        seen.append(("pre", instance.pk, kwargs["raw"], kwargs["update_fields"]))

    def post(sender, instance, created, **kwargs):
        seen.append(("post", instance.pk, created))

    signals.pre_save.connect(pre, sender=WebhookEvent)
    signals.post_save.connect(post, sender=WebhookEvent)
    try:
        event = WebhookEvent(nonce="n-2", body="{}")
        insert(event)
    finally:
        signals.pre_save.disconnect(pre, sender=WebhookEvent)
        signals.post_save.disconnect(post, sender=WebhookEvent)

    assert seen == [("pre", None, False, None), ("post", event.pk, True)]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a data-modifying WITH: PostgreSQL")
def test_insert_after_links_the_row_the_update_returned_or_inserts_nothing():
    order = make_order()
    update = (
        'UPDATE "django_flexcharge_flexchargeorder" SET "email" = %s'
        ' WHERE "id" = %s RETURNING "id", "email"'
    )
    assert one_statement(WebhookEvent)

    event = WebhookEvent(nonce="n-3", body="{}")
    row = insert_after(event, update, ["a@example.com", order.pk], link="order")

    assert row == (order.pk, "a@example.com")
    assert WebhookEvent.objects.get(pk=event.pk).order == order
    assert event.order_id == order.pk

    none = WebhookEvent(nonce="n-4", body="{}")
    assert insert_after(none, update, ["b@example.com", order.pk + 1000], link="order") is None
    assert none.pk is None
    assert WebhookEvent.objects.count() == 1


def test_save_fields_writes_what_save_with_update_fields_writes_and_sends_its_signals():
    ours, orms = make_order("INV-A", session_key="fc-a"), make_order("INV-B", session_key="fc-b")
    seen = []

    def pre(sender, instance, **kwargs):
        seen.append(("pre", instance.order_id, kwargs["update_fields"]))

    def post(sender, instance, created, **kwargs):
        seen.append(("post", instance.order_id, created, kwargs["update_fields"]))

    for order in (ours, orms):
        order.status, order.last_error, order.email = "approved", "", "new@example.com"
    before = ours.updated
    signals.pre_save.connect(pre, sender=FlexChargeOrder)
    signals.post_save.connect(post, sender=FlexChargeOrder)
    try:
        save_fields(ours, ["status", "email", "updated"])
    finally:
        signals.pre_save.disconnect(pre, sender=FlexChargeOrder)
        signals.post_save.disconnect(post, sender=FlexChargeOrder)
    orms.save(update_fields=["status", "email", "updated"])

    names = frozenset({"status", "email", "updated"})
    assert seen == [("pre", "INV-A", names), ("post", "INV-A", False, names)]
    stored, expected = (
        model_to_dict(
            FlexChargeOrder.objects.get(pk=o.pk),
            exclude=[
                "id",
                "order_id",
                "idempotency_key",
                "request_payload",
                "order_session_key",
                "declined_at",
            ],
        )
        for o in (ours, orms)
    )
    assert stored == expected
    assert ours.updated > before  # auto_now, as save() stamps it
    assert FlexChargeOrder.objects.get(pk=ours.pk).updated == ours.updated


def test_save_fields_of_a_row_that_is_gone_is_an_error_as_save_makes_it():
    order = make_order()
    FlexChargeOrder.objects.filter(pk=order.pk).delete()
    order.status = "approved"
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        save_fields(order, ["status"])


def test_save_fields_then_inserts_the_linked_row_in_the_same_step():
    order = make_order()
    order.status = "approved"
    history = StatusChange(previous="pending", status="approved", cause="code")

    save_fields(order, ["status"], then=history, link="order")

    assert FlexChargeOrder.objects.get(pk=order.pk).status == "approved"
    assert StatusChange.objects.get(pk=history.pk).order == order


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a data-modifying WITH: PostgreSQL")
def test_insert_after_then_inserts_a_row_linked_to_both_in_the_same_statement():
    order = make_order()
    update = (
        'UPDATE "django_flexcharge_flexchargeorder" SET "email" = %s WHERE "id" = %s RETURNING "id"'
    )
    event = WebhookEvent(nonce="n-5", body="{}", event="order.completed")
    history = StatusChange(previous="pending", status="approved", cause="webhook order.completed")

    with CaptureQueriesContext(connection) as queries:
        row = insert_after(
            event,
            update,
            ["c@example.com", order.pk],
            link="order",
            then=history,
            then_links=("order", "event"),
        )

    assert len(queries) == 1
    assert row == (order.pk,)
    stored = StatusChange.objects.get(pk=history.pk)
    assert (stored.order_id, stored.event_id, stored.cause) == (
        order.pk,
        event.pk,
        "webhook order.completed",
    )
    assert WebhookEvent.objects.get(pk=event.pk).order_id == order.pk
