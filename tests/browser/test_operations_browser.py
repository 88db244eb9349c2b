"""The operator's console in chromium: the recovery dashboard, an order's timeline and its toolbar.

Each test saves a full-page screenshot under ``test-artifacts/`` (git-ignored)
for people to look at. Pages are served with a strict Content-Security-Policy
(no 'unsafe-inline') added by the browser's router, and any violation the
page reports fails the test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from django_flexcharge import webhooks
from django_flexcharge.models import CallAttempt, FlexChargeOrder, VaultedCard
from django_flexcharge.refunds import refund_order
from django_flexcharge.services import evaluate_declined_payment
from django_flexcharge.testing import signed_webhook
from django_flexcharge.types import Card, Payer
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_admin_browser import CHANGELIST, DASHBOARD, admin_page, flexcharge
from tests.conftest import make_billing, make_payment

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["admin_page", "flexcharge"]  # fixtures shared with the admin browser tests

Status = FlexChargeOrder.Status
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"


def strict_csp(page: Any) -> list[str]:
    """Serve every page of the site with ``CSP``; returns the violations the page reports."""
    violations: list[str] = []

    def add_header(route: Any) -> None:
        response = route.fetch()
        headers = {**response.headers, "content-security-policy": CSP}
        route.fulfill(response=response, headers=headers)

    page.route("**/admin/**", add_header)
    page.on(
        "console",
        lambda msg: "Content Security Policy" in msg.text and violations.append(msg.text),
    )
    return violations


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def seed_recovery() -> None:
    now = timezone.now()
    visa = VaultedCard.objects.create(
        token="t-v", last4="4242", brand="visa", exp_month=1, exp_year=2030
    )
    mc = VaultedCard.objects.create(
        token="t-m", last4="5100", brand="mastercard", exp_month=1, exp_year=2030
    )
    plan = [
        # days ago, status, amount, currency, code, processor, card, refunded
        (1, Status.APPROVED, 1999, "USD", "05", "stripe", visa, 0),
        (2, Status.PARTIALLY_REFUNDED, 4999, "USD", "51", "stripe", mc, 1000),
        (3, Status.APPROVED, 500000, "JPY", "51", "adyen", visa, 0),
        (5, Status.APPROVED, 1200000, "JPY", "05", "adyen", mc, 0),
        (6, Status.REFUNDED, 12345, "KWD", "51", "checkout", None, 12345),
        (9, Status.APPROVED, 2500, "USD", "61", "stripe", visa, 0),
        (2, Status.DECLINED, 1500, "USD", "05", "stripe", visa, 0),
        (4, Status.EXPIRED, 3000, "JPY", "51", "adyen", visa, 0),
        (12, Status.APPROVED, 7500, "KWD", "05", "checkout", mc, 0),
    ]
    # Noon of the day ``days`` ago: each order falls on the same calendar day, so
    # in or out of a period, at any hour the test runs (now - 6 days 3 hours is
    # 7 days ago before 03:00).
    noon = timezone.make_aware(dt.datetime.combine(timezone.localdate(), dt.time(12)))
    for i, (days, status, amount, currency, code, processor, card, refunded) in enumerate(plan):
        created = noon - dt.timedelta(days=days)
        FlexChargeOrder.objects.create(
            order_id=f"INV-D-{i}",
            status=status,
            amount=amount,
            currency=currency,
            decline_code=code,
            processor=processor,
            card=card,
            refunded_amount=refunded,
            created=created,
            declined_at=created,
            resolved_at=created + dt.timedelta(hours=2 + i),
        )
    for i, (hours, amount, currency) in enumerate(
        [(8, 2999, "USD"), (70, 99000, "JPY"), (200, 5000, "USD")]
    ):
        FlexChargeOrder.objects.create(
            order_id=f"INV-P-{i}",
            status=Status.PENDING,
            amount=amount,
            currency=currency,
            expiry_date=now + dt.timedelta(hours=hours),
        )


def test_the_recovery_dashboard(admin_page: Any, live_server: Any) -> None:
    page = admin_page
    seed_recovery()
    violations = strict_csp(page)
    page.goto(live_server.url + DASHBOARD)

    for currency in ("JPY", "KWD", "USD"):
        chart = page.locator(f"#flexcharge-money-chart-{currency}")
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] > 300
    usd_bars = page.locator("#flexcharge-money-chart-USD rect.fc-money-bar")
    expect(usd_bars).to_have_count(30)
    under = page.locator("#flexcharge-dashboard-under-rescue tr[data-currency=USD]")
    expect(under).to_contain_text("79.99\u00a0USD")  # 29.99 + 50.00 held
    expect(under.locator("td").nth(2)).to_have_text("29.99\u00a0USD")  # ends within 24 h
    jpy = page.locator("#flexcharge-dashboard-recovered tr[data-currency=JPY]")
    expect(jpy).to_contain_text("1,700,000\u00a0JPY")
    expect(page.locator("#flexcharge-dashboard-recovered tr[data-currency=KWD]")).to_contain_text(
        "19.845\u00a0KWD"
    )
    expect(page.locator("#flexcharge-dashboard-decline_code tr[data-key='51']")).to_be_visible()
    screenshot(page, "ops-dashboard-30-days")

    page.click("#flexcharge-period-7")
    expect(page).to_have_url(live_server.url + DASHBOARD + "?period=7")
    expect(page.locator("#flexcharge-money-chart-USD rect.fc-money-bar")).to_have_count(7)
    # The 9- and 12-day-old rescues fall outside 7 days.
    expect(page.locator("#flexcharge-dashboard-recovered tr[data-currency=KWD]")).to_contain_text(
        "12.345\u00a0KWD"
    )
    screenshot(page, "ops-dashboard-7-days")

    with page.expect_download() as download:
        page.click("#flexcharge-dashboard-decline_code tr[data-key='51'] th a")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("order_id,")
    ids = sorted(line.split(",")[0] for line in text.splitlines()[1:])
    assert ids == ["INV-D-1", "INV-D-2", "INV-D-4", "INV-D-7"]  # code 51, finished in 7 days
    assert violations == []


def test_an_orders_timeline_and_toolbar(admin_page: Any, live_server: Any, flexcharge: Any) -> None:
    page = admin_page
    emulator = flexcharge.emulator
    emulator.set_faults(error_rate=1.0, error_codes=[503], paths=["evaluate"], times=1)
    order = evaluate_declined_payment(
        make_payment("INV-TL-1", amount=4999),
        card=Card(
            number="4000002760003184",
            cvv="999",
            exp_month=9,
            exp_year=timezone.now().year + 3,
            first_name="Jane",
            last_name="Doe",
        ),
        payer=Payer(email="jane@example.com", id="cust_42"),
        billing=make_billing(),
        is_mit=True,
    )
    order.refresh_from_db()
    assert order.status == Status.QUEUED  # the 503 left it waiting for a retry
    violations = strict_csp(page)
    change = f"{live_server.url}{CHANGELIST}{order.pk}/change/"
    page.goto(change)
    expect(page.locator("#flexcharge-retry-button")).to_be_visible()
    expect(page.locator("#flexcharge-sync-button")).to_have_count(0)
    page.click("#flexcharge-retry-button")
    expect(page.locator("ul.messagelist li.success")).to_contain_text("sent again now")
    order.refresh_from_db()
    assert order.status == Status.PENDING
    assert order.attempts == 2

    # FlexCharge rescues it and says so; then a partial refund.
    emulator.approve(order.order_session_key)
    body, headers = signed_webhook(
        "order.completed", order_id=order.order_session_key, external_order_id=order.order_id
    )
    webhooks.receive(body, headers, "testserver")
    order.refresh_from_db()
    refund_order(order, 1500, reason="Goodwill")

    page.goto(change)
    timeline = page.locator("#flexcharge-timeline")
    expect(timeline).to_be_visible()
    entries = timeline.locator("li.fc-entry")
    kinds = [e.get_attribute("data-kind") for e in entries.all()]
    assert kinds.count("call") == 3  # 503, retry, refund
    assert kinds.count("webhook") == 1
    assert kinds.count("refund") == 1
    assert kinds.count("status") == 3  # queued -> pending -> approved -> partially refunded
    expect(entries.first).to_contain_text("HTTP 503")
    expect(entries.first.locator(".fc-badge")).to_have_class("fc-badge fc-tone-error")
    expect(timeline).to_contain_text("webhook order.completed")
    expect(timeline).to_contain_text("Refund of 15.00\u00a0USD")
    expect(page.locator("#flexcharge-retry-button")).to_have_count(0)
    screenshot(page, "ops-order-timeline")

    page.click("#flexcharge-sync-button")
    expect(page.locator("ul.messagelist li.success")).to_contain_text("INV-TL-1")
    assert CallAttempt.objects.filter(order=order, endpoint="GET orders/{id}").count() == 1
    screenshot(page, "ops-order-after-sync")
    assert violations == []
