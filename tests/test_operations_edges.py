"""Edges of the operator's console: refused periods and exports, buttons that cannot act, caches that fail."""

from __future__ import annotations

import datetime as dt

import pytest
import responses
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from django_flexcharge import health, telemetry
from django_flexcharge.admin.display import money_text
from django_flexcharge.admin.recovery import Period, orders_for, rate
from django_flexcharge.admin.timeline import order_timeline
from django_flexcharge.models import CallAttempt, FlexChargeOrder, Refund, Transmission
from tests.conftest import API
from tests.factories import make_order

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
TODAY = dt.date(2026, 3, 10)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"from": "2026-03-01", "to": "soon"}, "must be dates"),
        ({"from": "2026-03-05", "to": "2026-03-01"}, "to is before from"),
        ({"from": "2024-01-01", "to": "2026-03-01"}, "at most 366 days"),
        ({"period": "abc"}, "period must be 7, 30 or 90"),
    ],
)
def test_a_bad_period_falls_back_to_30_days_with_a_reason(query, error):
    period, message = Period.from_query(query)
    assert error in message
    assert period.days == 30


def test_a_custom_period_keeps_its_dates_in_links():
    period, message = Period.from_query({"from": "2026-03-01", "to": "2026-03-07"})
    assert message == ""
    assert (period.days, period.query()) == (7, "from=2026-03-01&to=2026-03-07")


def test_unknown_figures_and_empty_rates():
    with pytest.raises(ValueError, match="unknown figure"):
        orders_for("secrets", Period.last_days(7))
    assert rate(0, 0) is None


def test_money_of_an_unknown_currency_is_shown_as_stored():
    assert money_text(12, "XXX") == "12\u00a0XXX"


def test_export_refuses_a_bad_period_and_staff_without_view_permission(admin_client, client):
    url = reverse("admin:django_flexcharge_dashboard_export")
    assert admin_client.get(url + "?figure=recovered&period=12").status_code == 400
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(url + "?figure=recovered").status_code == 403


def test_a_blank_breakdown_value_exports_orders_without_one(admin_client):
    make_order("INV-B1", Status.DECLINED, session_key="fc-b1", processor="")
    make_order("INV-B2", Status.DECLINED, session_key="fc-b2", processor="stripe")
    url = reverse("admin:django_flexcharge_dashboard_export") + "?figure=processor&key="
    text = b"".join(admin_client.get(url).streaming_content).decode()
    assert "INV-B1" in text
    assert "INV-B2" not in text


def operator(client) -> None:
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    for codename in ("view_flexchargeorder", "change_flexchargeorder"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)


def test_sync_of_an_order_flexcharge_has_not_named_says_so(client):
    operator(client)
    order = make_order("INV-N", Status.QUEUED, session_key=None)
    url = reverse("admin:django_flexcharge_flexchargeorder_sync", args=[order.pk])
    assert client.get(url).status_code == 405
    page = client.post(url, follow=True).content.decode()
    assert "INV-N has no FlexCharge order id yet." in page


def test_sync_reports_flexcharges_refusal(client, mocked):
    operator(client)
    order = make_order("INV-E", Status.PENDING, session_key="fc-e")
    mocked.add(responses.GET, API + "orders/fc-e", status=404, json={"title": "Not Found"})
    url = reverse("admin:django_flexcharge_flexchargeorder_sync", args=[order.pk])
    page = client.post(url, follow=True).content.decode()
    assert "INV-E: could not sync: Not Found" in page
    assert CallAttempt.objects.get(order=order).http_status == 404


def test_retry_of_an_order_no_longer_queued_does_nothing(client):
    operator(client)
    order = make_order("INV-P", Status.PENDING)
    url = reverse("admin:django_flexcharge_flexchargeorder_retry", args=[order.pk])
    page = client.post(url, follow=True).content.decode()
    assert "INV-P: not retried" in page


def test_timeline_entries_for_redirects_and_refunds_by_a_person(admin_user):
    order = make_order("INV-T", Status.APPROVED)
    CallAttempt.objects.create(order=order, endpoint="GET orders/{id}", http_status=302)
    Refund.objects.create(
        order=order, amount=100, currency="USD", requested_by=admin_user, error="HTTP 500"
    )
    call, refund = sorted(order_timeline(order), key=lambda e: e.kind)
    assert (call.badge, call.tone) == ("HTTP 302", "warn")
    assert ("requested by", admin_user.get_username()) in refund.details
    assert ("error", "HTTP 500") in refund.details


def test_transmission_list_shows_money_and_status(admin_client):
    Transmission.objects.create(
        order_id="INV-X", transaction_id="t", amount=500000, currency="JPY", payload={}
    )
    html = admin_client.get(reverse("admin:django_flexcharge_transmission_changelist")).content
    assert "500,000\u00a0JPY" in html.decode()
    assert 'data-status="queued">queued</span>' in html.decode()


class BrokenCache:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("cache down")

        return fail


def test_a_broken_cache_never_breaks_a_call_or_the_report(monkeypatch):
    monkeypatch.setattr(health, "cache", BrokenCache())
    monkeypatch.setattr(telemetry, "cache", BrokenCache())
    health.note_signature_refusal()
    telemetry._note_token_answer(200, None)
    assert health.signature_refusals_last_hour() == 0
    assert telemetry.last_token_answer() is None
    assert health.collect()["healthy"] is True
