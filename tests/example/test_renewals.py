"""Renewals: an MIT decline goes to FlexCharge at once; an invoice it holds is not retried."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from shop.billing import Renewal, renew
from shop.models import Charge, Subscription, add_interval

from django_flexcharge.models import FlexChargeOrder, Transmission
from django_flexcharge.services import is_under_rescue

from .conftest import stored_subscription

pytestmark = pytest.mark.django_db

RESCUE_CARD = "4000002760003184"
EXPIRE_CARD = "4000300011112220"


def test_a_declined_renewal_is_handed_to_flexcharge(
    customer, plan, flexcharge, django_capture_on_commit_callbacks
):
    subscription = stored_subscription(customer, plan, RESCUE_CARD)
    period_end = subscription.current_period_end

    with django_capture_on_commit_callbacks(execute=True):
        assert renew(subscription) == Renewal.RESCUE_PENDING

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.RESCUE_PENDING
    assert subscription.current_period_end == period_end  # not paid yet
    charge = Charge.objects.get(subscription=subscription)
    assert (charge.status, charge.response_code, charge.is_mit) == ("declined", "51", True)
    order = FlexChargeOrder.objects.get(order_id=charge.order_id)
    assert order.card == subscription.card
    assert order.is_mit
    assert (order.amount, order.currency) == (999, "USD")
    assert order.subscription_id == subscription.reference
    # The task ran after commit: /evaluate was sent with our order id.
    [evaluate] = flexcharge.calls_to("evaluate")
    assert evaluate["body"]["orderId"] == charge.order_id
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.PENDING
    assert is_under_rescue(charge.order_id)


def test_a_declined_renewal_queues_the_evaluation_in_the_same_transaction(customer, plan):
    subscription = stored_subscription(customer, plan, EXPIRE_CARD)
    renew(subscription)  # no commit in this test: the row exists, nothing was sent
    charge = Charge.objects.get(subscription=subscription)
    assert FlexChargeOrder.objects.get(order_id=charge.order_id).status == "queued"
    assert is_under_rescue(charge.order_id)


def test_an_invoice_flexcharge_holds_is_not_charged_again(customer, plan):
    subscription = stored_subscription(customer, plan, RESCUE_CARD)
    renew(subscription)

    assert renew(subscription) == Renewal.SKIPPED
    assert Charge.objects.filter(subscription=subscription).count() == 1


def test_an_approved_renewal_extends_the_period_and_is_copied_to_flexcharge(customer, plan):
    subscription = stored_subscription(customer, plan)
    period_end = subscription.current_period_end

    assert renew(subscription) == Renewal.APPROVED

    subscription.refresh_from_db()
    assert subscription.current_period_end == add_interval(period_end, plan.interval)
    assert subscription.payment_number == 2
    charge = Charge.objects.get(subscription=subscription)
    copy = Transmission.objects.get(order_id=charge.order_id)
    assert copy.payload["isMIT"] is True  # a renewal is merchant-initiated
    assert not FlexChargeOrder.objects.exists()


def test_a_decline_without_a_vaulted_card_goes_past_due(customer, plan):
    subscription = stored_subscription(customer, plan, RESCUE_CARD)
    subscription.card = None
    subscription.save()

    assert renew(subscription) == Renewal.PAST_DUE

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.PAST_DUE
    assert "no card vaulted" in Charge.objects.get().note
    assert not FlexChargeOrder.objects.exists()


def test_renew_subscriptions_prints_a_progress_bar_and_a_summary(customer, plan):
    for number in ("4111111111111111", RESCUE_CARD, EXPIRE_CARD):
        stored_subscription(customer, plan, number)
    out = io.StringIO()

    call_command("renew_subscriptions", "--all", stdout=out)

    text = out.getvalue()
    assert "[" + "#" * 30 + "] 3/3" in text
    assert re.search(r"\b1\s+approved", text)
    assert re.search(r"\b2\s+declined, handed to FlexCharge", text)

    out = io.StringIO()
    call_command("renew_subscriptions", "--all", stdout=out)
    assert re.search(r"\b2\s+skipped", out.getvalue())


def test_renew_subscriptions_without_all_charges_only_due_ones(customer, plan):
    due = stored_subscription(customer, plan)
    later = stored_subscription(customer, plan)
    later.current_period_end = timezone.now() + dt.timedelta(days=3)
    later.save()
    out = io.StringIO()

    call_command("renew_subscriptions", stdout=out)

    assert "1/1" in out.getvalue()
    assert Charge.objects.filter(subscription=due).count() == 1
    assert not Charge.objects.filter(subscription=later).exists()


def test_the_account_page_shows_a_rescue_in_progress(client, customer, plan):
    subscription = stored_subscription(customer, plan, RESCUE_CARD)
    renew(subscription)
    client.force_login(customer)

    html = client.get(reverse("account")).content.decode()

    assert "rescue pending" in html
    assert "we will not charge you again meanwhile" in html
    assert "51 Insufficient funds" in html
