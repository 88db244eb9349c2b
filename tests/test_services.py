"""Handing cards, approvals and declines to FlexCharge: vault_card, transmit, evaluate, is_under_rescue."""

from __future__ import annotations

import datetime as dt

import pytest
import responses
from django.apps import apps
from django.contrib.auth.models import AnonymousUser, User
from django.core import serializers
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_flexcharge import signals
from django_flexcharge.exceptions import FlexChargeAPIError, FlexChargeValidationError
from django_flexcharge.models import FlexChargeOrder, Transmission, VaultedCard
from django_flexcharge.services import (
    evaluate_declined_payment,
    is_under_rescue,
    transmit_approved_payment,
    vault_card,
)
from django_flexcharge.types import Card
from tests.conftest import API, TEST_PANS, bodies, calls_to, make_payment
from tests.factories import evaluate_answer, make_vaulted

pytestmark = pytest.mark.django_db

TOKENIZE_OK = {
    "transaction": {"succeeded": True, "payment_method": {"token": "vault-tok-1", "number": None}},
    "success": True,
    "errors": [],
}


# --- vault_card ---


def test_vault_card_stores_the_token_and_display_data_only(mocked, card):
    mocked.add(responses.POST, API + "tokenize", json=TOKENIZE_OK)
    vaulted = vault_card(card, email="jane@example.com", sense_key="sk-9")
    assert (vaulted.token, vaulted.last4, vaulted.bin, vaulted.brand) == (
        "vault-tok-1",
        "3184",
        "400000",
        "VISA",
    )
    assert (vaulted.exp_month, vaulted.exp_year) == (9, card.exp_year)
    assert vaulted.holder_name == "Jane Doe"
    sent = bodies(mocked, "tokenize")[0]["payment_method"]
    assert sent["credit_card"]["number"] == card.number
    assert sent["sense_key"] == "sk-9"
    assert sent["email"] == "jane@example.com"


def test_vault_card_links_a_logged_in_customer_and_ignores_an_anonymous_one(mocked, card):
    mocked.add(responses.POST, API + "tokenize", json=TOKENIZE_OK)
    user = User.objects.create_user("jane")
    assert vault_card(card, customer=user).customer == user
    assert vault_card(card, customer=AnonymousUser()).customer is None


def test_vault_card_without_a_token_in_the_answer_raises(mocked, card):
    mocked.add(responses.POST, API + "tokenize", json={"transaction": {}, "success": True})
    with pytest.raises(FlexChargeAPIError, match="no token"):
        vault_card(card)
    assert not VaultedCard.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"email": "not-an-email"}, "email"), ({"sense_key": 5}, "sense_key")],
)
def test_vault_card_refuses_bad_input_naming_the_field(mocked, card, kwargs, field):
    with pytest.raises(FlexChargeValidationError) as exc:
        vault_card(card, **kwargs)
    assert exc.value.field == field
    assert calls_to(mocked, "tokenize") == 0


def test_vault_card_refuses_anything_but_a_card(mocked):
    with pytest.raises(FlexChargeValidationError) as exc:
        vault_card({"number": "4111111111111111"})  # type: ignore[arg-type]
    assert exc.value.field == "card"


# --- transmit_approved_payment ---


def test_transmit_stores_a_row_and_sends_only_after_commit(
    mocked, card, payer, billing, django_capture_on_commit_callbacks
):
    mocked.add(responses.POST, API + "transmit", json={"transmitId": "tx-1", "success": True})
    with django_capture_on_commit_callbacks(execute=True):
        row = transmit_approved_payment(make_payment(), card=card, payer=payer, billing=billing)
        assert row.status == Transmission.Status.QUEUED
        assert calls_to(mocked, "transmit") == 0
    row.refresh_from_db()
    assert row.status == Transmission.Status.SENT
    assert row.transmit_id == "tx-1"
    assert row.sent_at is not None
    sent = bodies(mocked, "transmit")[0]
    assert sent["isDeclined"] is False
    assert sent["idempotencyKey"] == str(row.idempotency_key)
    assert sent == row.payload


def test_transmitting_the_same_payment_twice_changes_nothing(
    mocked, payer, django_capture_on_commit_callbacks
):
    mocked.add(responses.POST, API + "transmit", json={"transmitId": "tx-1", "success": True})
    with django_capture_on_commit_callbacks(execute=True):
        first = transmit_approved_payment(make_payment(), payer=payer)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = transmit_approved_payment(make_payment(), payer=payer)
    assert second.pk == first.pk
    assert callbacks == []
    assert Transmission.objects.count() == 1
    assert calls_to(mocked, "transmit") == 1


def test_transmit_accepts_a_vaulted_card(mocked, django_capture_on_commit_callbacks):
    vaulted = make_vaulted()
    with django_capture_on_commit_callbacks(execute=False):
        row = transmit_approved_payment(make_payment(), card=vaulted)
    assert row.payload["paymentMethod"]["cardLast4Digits"] == "3184"
    assert vaulted.token not in str(row.payload)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"card": "4111111111111111"}, "card"),
        ({"payer": "x"}, "payer"),
        ({"billing": {}}, "billing"),
    ],
)
def test_transmit_refuses_bad_input_naming_the_field(kwargs, field):
    with pytest.raises(FlexChargeValidationError) as exc:
        transmit_approved_payment(make_payment(), **kwargs)
    assert exc.value.field == field
    assert not Transmission.objects.exists()


def test_payment_approved_signal_queues_a_transmission(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        signals.payment_approved.send(sender=None, payment=make_payment())
    assert Transmission.objects.count() == 1
    assert len(callbacks) == 1


# --- evaluate_declined_payment ---


def test_a_decline_is_queued_with_its_payload_then_pending_after_submitted(
    mocked, payer, billing, subscription, django_capture_on_commit_callbacks, signal_log
):
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED"))
    vaulted = make_vaulted()
    with django_capture_on_commit_callbacks(execute=True):
        order = evaluate_declined_payment(
            make_payment(), card=vaulted, payer=payer, billing=billing, subscription=subscription
        )
        assert order.status == FlexChargeOrder.Status.QUEUED
        assert calls_to(mocked, "evaluate") == 0
    assert order.request_payload["idempotencyKey"] == str(order.idempotency_key)
    assert order.request_payload["paymentMethod"]["cardNumber"] == vaulted.token
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.PENDING
    assert order.order_session_key == "fc-order-1"
    assert order.expiry_date is not None
    assert order.submitted_at is not None
    assert (order.card, order.subscription_id, order.email) == (vaulted, "sub_123", payer.email)
    assert (order.decline_code, order.processor, order.amount) == ("51", "stripe", 1999)
    assert bodies(mocked, "evaluate") == [order.request_payload]
    assert signal_log.names() == ["order_status_changed"]


def test_an_order_under_rescue_is_reported_until_it_resolves(
    mocked, payer, billing, django_capture_on_commit_callbacks
):
    vaulted = make_vaulted()
    with django_capture_on_commit_callbacks(execute=False):
        evaluate_declined_payment(make_payment(), card=vaulted, payer=payer, billing=billing)
    assert is_under_rescue("INV-100045") is True
    FlexChargeOrder.objects.update(status=FlexChargeOrder.Status.PENDING)
    assert is_under_rescue("INV-100045") is True
    FlexChargeOrder.objects.update(status=FlexChargeOrder.Status.APPROVED)
    assert is_under_rescue("INV-100045") is False
    assert is_under_rescue("unknown") is False


def test_the_card_may_be_given_as_a_vault_token(payer, billing, django_capture_on_commit_callbacks):
    vaulted = make_vaulted(token="tok-by-string")
    with django_capture_on_commit_callbacks(execute=False):
        order = evaluate_declined_payment(
            make_payment(), card="tok-by-string", payer=payer, billing=billing
        )
    assert order.card == vaulted


def test_a_raw_card_is_vaulted_first_and_its_pan_is_not_stored(
    mocked, card, payer, billing, django_capture_on_commit_callbacks
):
    mocked.add(responses.POST, API + "tokenize", json=TOKENIZE_OK)
    with django_capture_on_commit_callbacks(execute=False):
        order = evaluate_declined_payment(make_payment(), card=card, payer=payer, billing=billing)
    assert order.card.token == "vault-tok-1"
    assert order.request_payload["paymentMethod"]["cardNumber"] == "vault-tok-1"
    assert card.number not in str(order.request_payload)


def test_a_decline_older_than_the_window_is_refused_and_nothing_stored(
    mocked, payer, billing, django_capture_on_commit_callbacks
):
    vaulted = make_vaulted()
    old = make_payment(occurred_at=timezone.now() - dt.timedelta(hours=24, minutes=1))
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(FlexChargeValidationError) as exc,
    ):
        evaluate_declined_payment(old, card=vaulted, payer=payer, billing=billing)
    assert exc.value.field == "payment.occurred_at"
    assert "same-day" in str(exc.value)
    assert not FlexChargeOrder.objects.exists()
    assert callbacks == []
    assert calls_to(mocked, "evaluate") == 0


@override_settings(FLEXCHARGE_DECLINE_MAX_AGE=2)
def test_the_window_follows_the_setting(payer, billing):
    old = make_payment(occurred_at=timezone.now() - dt.timedelta(hours=3))
    with pytest.raises(FlexChargeValidationError, match="2 h"):
        evaluate_declined_payment(old, card=make_vaulted(), payer=payer, billing=billing)


def test_a_decline_in_the_future_is_refused(payer, billing):
    future = make_payment(occurred_at=timezone.now() + dt.timedelta(hours=1))
    with pytest.raises(FlexChargeValidationError) as exc:
        evaluate_declined_payment(future, card=make_vaulted(), payer=payer, billing=billing)
    assert exc.value.field == "payment.occurred_at"
    assert not FlexChargeOrder.objects.exists()


def test_an_order_id_already_handed_over_is_refused(
    payer, billing, django_capture_on_commit_callbacks
):
    vaulted = make_vaulted()
    with django_capture_on_commit_callbacks(execute=False):
        evaluate_declined_payment(make_payment(), card=vaulted, payer=payer, billing=billing)
    again = make_payment(transaction_id="ch_retry")
    with pytest.raises(FlexChargeValidationError) as exc:
        evaluate_declined_payment(again, card=vaulted, payer=payer, billing=billing)
    assert exc.value.field == "payment.order_id"
    assert FlexChargeOrder.objects.count() == 1


def test_an_integrity_error_that_is_not_a_repeat_is_not_reported_as_one(
    payer, billing, monkeypatch
):
    from django.db import IntegrityError

    def broken(*args, **values):
        raise IntegrityError("CHECK constraint failed: some_other_constraint")

    # Every way the new row is written (the task backend decides which is taken).
    for model in (FlexChargeOrder, Transmission):
        monkeypatch.setattr(model, "save", broken)
    monkeypatch.setattr("django_flexcharge.wakeups.insert", broken)
    monkeypatch.setattr("django_flexcharge.new_rows.insert", broken)
    monkeypatch.setattr("django_flexcharge.wakeups.insert_finding", broken)
    with pytest.raises(IntegrityError):
        evaluate_declined_payment(make_payment(), card=make_vaulted(), payer=payer, billing=billing)
    with pytest.raises(IntegrityError):
        transmit_approved_payment(make_payment(), payer=payer)


def test_a_repeated_order_id_with_a_raw_card_is_refused_before_vaulting(
    mocked, card, payer, billing, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        evaluate_declined_payment(make_payment(), card=make_vaulted(), payer=payer, billing=billing)
    with pytest.raises(FlexChargeValidationError) as exc:
        evaluate_declined_payment(make_payment(), card=card, payer=payer, billing=billing)
    assert exc.value.field == "payment.order_id"
    assert calls_to(mocked, "tokenize") == 0


def test_a_repeated_order_id_inside_a_host_transaction_leaves_it_usable(
    payer, billing, django_capture_on_commit_callbacks
):
    # The repeat is found by the unique constraint, in a savepoint: the host's
    # transaction goes on (PostgreSQL would otherwise refuse every later query).
    vaulted = make_vaulted()
    with django_capture_on_commit_callbacks(execute=False), transaction.atomic():
        evaluate_declined_payment(make_payment(), card=vaulted, payer=payer, billing=billing)
        with pytest.raises(FlexChargeValidationError):
            evaluate_declined_payment(make_payment(), card=vaulted, payer=payer, billing=billing)
        assert FlexChargeOrder.objects.count() == 1
    assert FlexChargeOrder.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"payer": {"email": "jane@example.com"}}, "payer"),
        ({"billing": "123 Main St."}, "billing"),
        ({"subscription": {"id": "sub"}}, "subscription"),
        ({"is_mit": "yes"}, "is_mit"),
        ({"card": 42}, "card"),
        ({"card": "no-such-token"}, "card"),
        ({"payment": {"order_id": "x"}}, "payment"),
    ],
)
def test_bad_input_is_refused_naming_the_field(mocked, payer, billing, change, field):
    kwargs = {"payment": make_payment(), "card": make_vaulted(), "payer": payer, "billing": billing}
    kwargs.update(change)
    payment = kwargs.pop("payment")
    with pytest.raises(FlexChargeValidationError) as exc:
        evaluate_declined_payment(payment, **kwargs)
    assert exc.value.field == field
    assert not FlexChargeOrder.objects.exists()
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("field", ["response_code", "processor"])
def test_fields_flexcharge_requires_are_refused_when_blank(payer, billing, field):
    with pytest.raises(FlexChargeValidationError) as exc:
        evaluate_declined_payment(
            make_payment(**{field: ""}), card=make_vaulted(), payer=payer, billing=billing
        )
    assert exc.value.field == f"payment.{field}"


def test_invalid_types_are_refused_before_anything_else():
    with pytest.raises(FlexChargeValidationError) as exc:
        make_payment(amount=0)
    assert exc.value.field == "payment.amount"


def test_payment_declined_in_a_rolled_back_transaction_sends_nothing_and_stores_nothing(
    mocked, payer, billing, django_capture_on_commit_callbacks
):
    vaulted = make_vaulted()
    seen_inside = []

    def host_checkout() -> None:
        with transaction.atomic():
            signals.payment_declined.send(
                sender=None, payment=make_payment(), card=vaulted, payer=payer, billing=billing
            )
            seen_inside.append(FlexChargeOrder.objects.count())
            raise RuntimeError("the host's own failure after the signal")

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
    ):
        host_checkout()
    assert seen_inside == [1]
    assert callbacks == []
    assert not FlexChargeOrder.objects.exists()
    assert len(mocked.calls) == 0


def test_payment_declined_signal_with_subscription_marks_a_recurring_mit(
    payer, billing, subscription, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        signals.payment_declined.send(
            sender=None,
            payment=make_payment(),
            card=make_vaulted(),
            payer=payer,
            billing=billing,
            subscription=subscription,
        )
    payload = FlexChargeOrder.objects.get().request_payload
    assert (payload["isMIT"], payload["isRecurring"]) == (True, True)


def test_no_pan_reaches_the_database(
    mocked, payer, billing, subscription, django_capture_on_commit_callbacks
):
    mocked.add(responses.POST, API + "tokenize", json=TOKENIZE_OK)
    mocked.add(
        responses.POST,
        API + "tokenize",
        json={**TOKENIZE_OK, "transaction": {"payment_method": {"token": "vault-tok-2"}}},
    )
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED"))
    mocked.add(responses.POST, API + "transmit", json={"transmitId": "t-1"})
    year = timezone.now().year + 2
    cards = [
        Card(number=pan, cvv="737", exp_month=1, exp_year=year, first_name="A", last_name="B")
        for pan in TEST_PANS
    ]
    with django_capture_on_commit_callbacks(execute=True):
        evaluate_declined_payment(
            make_payment(), card=cards[0], payer=payer, billing=billing, subscription=subscription
        )
        vault_card(cards[1], email="a@example.com")
        transmit_approved_payment(
            make_payment("INV-2"), card=cards[2], payer=payer, billing=billing
        )
        transmit_approved_payment(make_payment("INV-3"), card=cards[3])
    assert FlexChargeOrder.objects.get().status == FlexChargeOrder.Status.PENDING
    models = apps.get_app_config("django_flexcharge").get_models()
    dump = "".join(serializers.serialize("json", model.objects.all()) for model in models)
    assert "3184" in dump  # the rows are there
    for pan in TEST_PANS:
        assert pan not in dump
    assert "verification_value" not in dump


@pytest.mark.parametrize("missing", ["card", "payer", "billing"])
def test_payment_declined_without_an_input_is_refused_naming_it(payer, billing, missing):
    kwargs = {"card": make_vaulted(), "payer": payer, "billing": billing}
    del kwargs[missing]
    with pytest.raises(FlexChargeValidationError) as exc:
        signals.payment_declined.send(sender=None, payment=make_payment(), **kwargs)
    assert exc.value.field == missing
    assert not FlexChargeOrder.objects.exists()
