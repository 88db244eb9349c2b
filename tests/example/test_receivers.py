"""What the site does when FlexCharge reports on a declined renewal."""

from __future__ import annotations

import pytest
from django.urls import reverse
from shop.billing import renew
from shop.models import Charge, Subscription, add_interval

from django_flexcharge import signals
from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.testing import post_webhook

from .conftest import stored_subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def declined(customer, plan, django_capture_on_commit_callbacks):
    """A renewal that declined and that FlexCharge now holds (``pending``)."""
    subscription = stored_subscription(customer, plan, "4000002760003184")
    with django_capture_on_commit_callbacks(execute=True):
        renew(subscription)
    charge = Charge.objects.get(subscription=subscription)
    order = FlexChargeOrder.objects.get(order_id=charge.order_id)
    assert order.status == FlexChargeOrder.Status.PENDING
    subscription.refresh_from_db()
    return subscription, charge, order


def fresh(subscription, charge):
    subscription.refresh_from_db()
    charge.refresh_from_db()
    return subscription, charge


def test_order_approved_reactivates_the_subscription_and_pays_the_period(declined):
    subscription, charge, order = declined
    period_end = subscription.current_period_end

    signals.order_approved.send(sender=FlexChargeOrder, order=order, event=None)

    subscription, charge = fresh(subscription, charge)
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.current_period_end == add_interval(period_end, subscription.plan.interval)
    assert subscription.payment_number == 2
    assert charge.status == Charge.Status.APPROVED
    assert charge.rescued_at is not None
    assert charge.response_code == "51"  # our own attempt's answer is kept


def test_a_repeated_approval_pays_the_period_once(declined):
    subscription, charge, order = declined
    signals.order_approved.send(sender=FlexChargeOrder, order=order, event=None)
    first_end = fresh(subscription, charge)[0].current_period_end

    signals.order_approved.send(sender=FlexChargeOrder, order=order, event=None)

    assert fresh(subscription, charge)[0].current_period_end == first_end


def test_a_signed_order_completed_webhook_rescues_the_subscription(
    client, declined, django_capture_on_commit_callbacks
):
    subscription, charge, order = declined

    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(
            client,
            "order.completed",
            order_id=order.order_session_key,
            external_order_id=order.order_id,
        )

    assert response.status_code == 200
    subscription, charge = fresh(subscription, charge)
    assert subscription.status == Subscription.Status.ACTIVE
    assert charge.rescued_at is not None


@pytest.mark.parametrize("signal_name", ["order_expired", "order_declined"])
def test_an_unrescued_order_leaves_the_subscription_past_due(declined, signal_name):
    subscription, charge, order = declined

    getattr(signals, signal_name).send(sender=FlexChargeOrder, order=order, event=None)

    subscription, charge = fresh(subscription, charge)
    assert subscription.status == Subscription.Status.PAST_DUE
    assert charge.status == Charge.Status.DECLINED
    assert "FlexCharge" in charge.note


def test_an_order_that_never_reached_flexcharge_leaves_it_past_due(declined):
    subscription, charge, order = declined
    order.status = FlexChargeOrder.Status.FAILED

    signals.order_status_changed.send(
        sender=FlexChargeOrder, order=order, previous_status="queued", event=None
    )

    assert fresh(subscription, charge)[0].status == Subscription.Status.PAST_DUE


def test_order_cancelled_cancels_the_subscription(declined):
    subscription, charge, order = declined

    signals.order_cancelled.send(sender=FlexChargeOrder, order=order, event=None)

    subscription, _ = fresh(subscription, charge)
    assert subscription.status == Subscription.Status.CANCELLED
    assert subscription.cancelled_at is not None


def test_order_refunded_is_noted_on_the_charge(declined):
    subscription, charge, order = declined
    signals.order_approved.send(sender=FlexChargeOrder, order=order, event=None)
    order.refunded_amount = 999

    signals.order_refunded.send(sender=FlexChargeOrder, order=order, event=None)

    _, charge = fresh(subscription, charge)
    assert charge.note == "Rescued by FlexCharge; 9.99 USD refunded"


def test_an_order_the_site_does_not_know_is_ignored(db):
    stranger = FlexChargeOrder(order_id="SOMEONE-ELSE-1", amount=100, currency="USD")
    signals.order_approved.send(sender=FlexChargeOrder, order=stranger, event=None)
    assert not Charge.objects.exists()


def test_cancelling_during_a_rescue_stops_flexcharge_first(
    client, customer, declined, flexcharge, django_capture_on_commit_callbacks
):
    subscription, charge, order = declined
    client.force_login(customer)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("cancel_subscription", args=[subscription.pk]))

    assert response.status_code == 302
    assert flexcharge.calls_to("cancel") or flexcharge.calls_to("external_cancel")
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.CANCELLED
    assert fresh(subscription, charge)[0].status == Subscription.Status.CANCELLED
