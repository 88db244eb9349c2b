"""inserts.insert: the row ``save(force_insert=True)`` would write, and the model's signals."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import signals
from django.forms.models import model_to_dict

from django_flexcharge.inserts import insert, insert_after, one_statement
from django_flexcharge.models import StatusChange, WebhookEvent
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
