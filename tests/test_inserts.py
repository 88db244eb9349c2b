"""inserts.insert: the row ``save(force_insert=True)`` would write, and the model's signals."""

from __future__ import annotations

import pytest
from django.db.models import signals
from django.forms.models import model_to_dict

from django_flexcharge.inserts import insert
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
