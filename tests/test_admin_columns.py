"""Readable lists: status badges with text, money per currency without wrapping, words not flags."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from django_flexcharge.admin.display import money_text
from django_flexcharge.models import FlexChargeOrder, Refund, WebhookEvent

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (500000, "JPY", "500,000 JPY"),
        (199, "USD", "1.99 USD"),
        (123456789, "USD", "1,234,567.89 USD"),
        (12345, "KWD", "12.345 KWD"),
        (5, "KWD", "0.005 KWD"),
    ],
)
def test_money_is_grouped_with_the_currencys_decimals(amount, currency, text):
    assert money_text(amount, currency) == text.replace(" ", NBSP)


def test_money_follows_the_locale():
    with translation.override("de"):
        assert money_text(123456789, "USD") == f"1.234.567,89{NBSP}USD"


def test_order_list_shows_badges_money_and_words(admin_client):
    FlexChargeOrder.objects.create(
        order_id="INV-J", amount=500000, currency="JPY", status=Status.APPROVED, is_mit=True
    )
    FlexChargeOrder.objects.create(
        order_id="INV-K",
        amount=12345,
        currency="KWD",
        status=Status.DECLINED,
        is_mit=False,
        is_test_mode=False,
    )
    html = admin_client.get(reverse("admin:django_flexcharge_flexchargeorder_changelist")).content
    html = html.decode()
    assert f'<span class="fc-money">500,000{NBSP}JPY</span>' in html
    assert f"12.345{NBSP}KWD" in html
    assert '<span class="fc-badge fc-tone-ok" data-status="approved">approved</span>' in html
    assert '<span class="fc-badge fc-tone-error" data-status="declined">declined</span>' in html
    assert "Test mode" in html
    assert "Live" in html
    assert "Merchant-initiated" in html
    assert "Customer-initiated" in html
    assert "django_flexcharge/admin.css" in html


def test_the_order_page_shows_its_status_as_the_lists_badge(admin_client):
    order = FlexChargeOrder.objects.create(
        order_id="INV-B", amount=2999, currency="USD", status=Status.PARTIALLY_REFUNDED
    )
    url = reverse("admin:django_flexcharge_flexchargeorder_change", args=[order.pk])
    html = admin_client.get(url).content.decode()
    assert 'data-status="partially_refunded">partially refunded</span>' in html
    assert "django_flexcharge/admin.css" in html


def test_event_list_says_why_an_event_was_ignored_and_resent_as_words(admin_client):
    WebhookEvent.objects.create(
        event="order.expired",
        nonce="n-1",
        body="{}",
        status=WebhookEvent.Status.IGNORED,
        error="order is approved; an expiry changes nothing",
        is_resent=True,
    )
    html = admin_client.get(reverse("admin:django_flexcharge_webhookevent_changelist")).content
    html = html.decode()
    assert "order is approved; an expiry changes nothing" in html
    assert '<td class="field-event_resent">yes</td>' in html
    assert 'data-status="ignored">ignored</span>' in html


def test_refund_list_formats_the_amount(admin_client):
    order = FlexChargeOrder.objects.create(
        order_id="INV-R", amount=500000, currency="JPY", status=Status.PARTIALLY_REFUNDED
    )
    Refund.objects.create(
        order=order, amount=200000, currency="JPY", outcome=Refund.Outcome.SUCCEEDED
    )
    html = admin_client.get(reverse("admin:django_flexcharge_refund_changelist")).content.decode()
    assert f"200,000{NBSP}JPY" in html
    assert 'data-status="succeeded">succeeded</span>' in html
