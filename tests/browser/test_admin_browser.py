"""The admin in a real browser: Refund and Cancel actions against the emulator, the dashboard chart.

pytest-django's ``live_server`` serves ``tests.settings`` (admin installed);
orders are handed to the FlexCharge emulator running in this process through
the app's own services, so the admin's refunds and cancels travel over HTTP
to an order FlexCharge really holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from django_flexcharge.models import FlexChargeOrder, Refund
from django_flexcharge.services import evaluate_declined_payment
from django_flexcharge.types import Card, Payer
from flexcharge_emulator import Emulator, EmulatorConfig
from tests.browser.conftest import ARTIFACTS
from tests.conftest import make_billing, make_payment

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

Status = FlexChargeOrder.Status
CHANGELIST = "/admin/django_flexcharge/flexchargeorder/"
DASHBOARD = CHANGELIST + "dashboard/"
PASSWORD = "browser-admin-pw"


class FlexCharge:
    """The emulator, plus the raw bodies of the refund requests it received."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.refund_bodies: list[tuple[str, Any]] = []
        refund = emulator.orders.refund

        def recording_refund(order_id: str, body: Any) -> Any:
            self.refund_bodies.append((order_id, body))
            return refund(order_id, body)

        emulator.orders.refund = recording_refund  # type: ignore[method-assign]

    def order(self, order_session_key: str) -> Any:
        with self.emulator.state.lock:
            return self.emulator.state.orders[order_session_key]


@pytest.fixture
def flexcharge(settings: Any) -> Iterator[FlexCharge]:
    """The app (in the live server's thread too) talks to an emulator holding the test's credentials."""
    emulator = Emulator(
        EmulatorConfig(
            app_key=settings.FLEXCHARGE_APP_KEY,
            app_secret=settings.FLEXCHARGE_APP_SECRET,
            mid=settings.FLEXCHARGE_MID,
            site_id=settings.FLEXCHARGE_SITE_ID,
            tokenization_key=settings.FLEXCHARGE_TOKENIZATION_KEY,
            subscriber_key=settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS[0],
            webhook_url=None,
            rescue_delay=None,  # pending orders stay pending
            expire_delay=None,
        )
    ).start()
    settings.FLEXCHARGE_API_URL = emulator.base_url
    try:
        yield FlexCharge(emulator)
    finally:
        emulator.stop()


def hand_over(order_id: str, *, is_mit: bool, amount: int = 1999) -> FlexChargeOrder:
    """A declined payment through ``services``: a sync CIT comes back approved, a MIT pending."""
    order = evaluate_declined_payment(
        make_payment(order_id, amount=amount),
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
        is_mit=is_mit,
    )
    order.refresh_from_db()
    assert order.order_session_key
    assert order.status == (Status.PENDING if is_mit else Status.APPROVED)
    return order


@pytest.fixture
def admin_page(page: Any, live_server: Any, django_user_model: Any) -> Any:
    """``page`` logged in through the admin's login form as a superuser."""
    django_user_model.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    page.goto(f"{live_server.url}/admin/login/?next={CHANGELIST}")
    page.fill("#id_username", "boss")
    page.fill("#id_password", PASSWORD)
    page.click("#login-form input[type=submit]")
    expect(page).to_have_url(live_server.url + CHANGELIST)
    return page


def run_action(page: Any, live_server: Any, action: str, *orders: FlexChargeOrder) -> None:
    page.goto(live_server.url + CHANGELIST)
    for order in orders:
        page.check(f"input.action-select[value='{order.pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_partial_refund_through_the_admin_form(
    admin_page: Any, live_server: Any, flexcharge: FlexCharge
) -> None:
    page = admin_page
    order = hand_over("INV-BR-1", is_mit=False)
    untouched = hand_over("INV-BR-2", is_mit=False)

    run_action(page, live_server, "refund_orders", order)
    row = page.locator(f"#flexcharge-refund-row-{order.pk}")
    expect(page.locator("#flexcharge-refund-form")).to_be_visible()
    expect(row.locator(".flexcharge-refundable")).to_have_text("19.99 USD")
    expect(page.locator(f"#flexcharge-refund-row-{untouched.pk}")).to_have_count(0)
    page.check(f"input[name='refund-{order.pk}-kind'][value=partial]")
    page.fill(f"[name='refund-{order.pk}-amount']", "5.50")
    page.fill(f"[name='refund-{order.pk}-reason']", "Goodwill: late delivery")
    page.click("#flexcharge-refund-submit")
    # The exact sum, before anything is sent.
    expect(page.locator("#flexcharge-refund-total")).to_have_text(
        "FlexCharge will refund 5.50 USD in total:"
    )
    assert flexcharge.refund_bodies == []
    page.click("#flexcharge-refund-confirm")

    expect(page).to_have_url(live_server.url + CHANGELIST)
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        "INV-BR-1: refunded 5.50 USD; FlexCharge answered SUCCESS - APPROVED."
    )
    # Stored in minor units...
    refund = Refund.objects.get()
    assert (refund.order_id, refund.amount, refund.currency) == (order.pk, 550, "USD")
    assert refund.outcome == Refund.Outcome.SUCCEEDED
    assert refund.reason == "Goodwill: late delivery"
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 550)
    # ...sent to FlexCharge in major units, for that order only.
    assert len(flexcharge.refund_bodies) == 1
    key, body = flexcharge.refund_bodies[0]
    assert key == order.order_session_key
    assert Decimal(str(body["amountToRefund"])) == Decimal("5.50")
    assert body["refundMessage"] == "Goodwill: late delivery"
    assert flexcharge.order(key).refunded == 550
    assert flexcharge.order(untouched.order_session_key).refunded == 0


def test_cancel_through_the_confirmation_page(
    admin_page: Any, live_server: Any, flexcharge: FlexCharge
) -> None:
    page = admin_page
    order = hand_over("INV-BC-1", is_mit=True)

    run_action(page, live_server, "cancel_orders", order)
    expect(page.locator("#flexcharge-cancel-form")).to_be_visible()
    expect(page.locator(f"#flexcharge-cancel-row-{order.pk}")).to_contain_text(
        order.order_session_key
    )
    assert FlexChargeOrder.objects.get(pk=order.pk).status == Status.PENDING  # not before "yes"
    page.click("#flexcharge-cancel-submit")

    expect(page).to_have_url(live_server.url + CHANGELIST)
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        "INV-BC-1: FlexCharge accepted the cancel; the order is now cancelled."
    )
    order.refresh_from_db()
    assert order.status == Status.CANCELLED
    assert flexcharge.order(order.order_session_key).outcome == "CANCELLED"


def seed_dashboard() -> dict[str, tuple[int, int]]:
    """Orders over the last 30 days (and one older); returns {date: (submitted, approved)}."""
    now = timezone.now()
    today = timezone.localdate()
    plan = {  # days ago: (submitted, approved that day)
        0: (3, 2),
        1: (1, 0),
        6: (5, 1),
        29: (2, 1),
    }
    n = 0
    for days_ago, (submitted, approved) in plan.items():
        when = now - dt.timedelta(days=days_ago)
        for i in range(submitted):
            n += 1
            rescued = i < approved
            FlexChargeOrder.objects.create(
                order_id=f"INV-DB-{n}",
                status=Status.APPROVED if rescued else Status.DECLINED,
                amount=1000,
                currency="USD",
                created=when,
                resolved_at=when,
            )
    # 31 days ago: in the figures, outside the chart.
    old = now - dt.timedelta(days=31)
    FlexChargeOrder.objects.create(
        order_id="INV-DB-old", status=Status.EXPIRED, amount=1000, created=old, resolved_at=old
    )
    return {
        (today - dt.timedelta(days=days_ago)).isoformat(): counts
        for days_ago, counts in plan.items()
    }


def test_dashboard_draws_the_chart(admin_page: Any, live_server: Any) -> None:
    page = admin_page
    expected = seed_dashboard()

    page.goto(live_server.url + DASHBOARD)
    chart = page.locator("#flexcharge-dashboard-chart")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 300
    assert box["height"] > 100
    bars, points = chart.locator("rect.fc-bar"), chart.locator("circle.fc-point")
    expect(bars).to_have_count(30)
    expect(points).to_have_count(30)

    drawn = {
        bar.get_attribute("data-date"): (
            int(bar.get_attribute("data-count")),
            float(bar.get_attribute("height")),
        )
        for bar in bars.all()
    }
    approved = {
        point.get_attribute("data-date"): int(point.get_attribute("data-count"))
        for point in points.all()
    }
    today = timezone.localdate()
    assert max(drawn) == today.isoformat()
    assert min(drawn) == (today - dt.timedelta(days=29)).isoformat()
    for date, (submitted, rescued) in expected.items():
        assert drawn[date][0] == submitted, date
        assert approved[date] == rescued, date
    assert sum(count for count, _ in drawn.values()) == 11
    assert sum(approved.values()) == 4
    # Taller bars for busier days; an empty day has no bar to see.
    heights = {date: height for date, (_, height) in drawn.items()}
    busiest = (today - dt.timedelta(days=6)).isoformat()
    assert heights[busiest] == max(heights.values()) > 0
    assert heights[(today - dt.timedelta(days=2)).isoformat()] == 0
    # 4 rescued of 11 with a final answer (the 31-day-old expired one is outside the 30 days).
    expect(page.locator("#flexcharge-dashboard-rate")).to_have_attribute("data-rate", "36.4")


# ---- the refund form never refunds more than the person saw -------------------------


def screenshot(page: Any, name: str) -> None:
    """Keep what the person saw (test-artifacts/ is git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_typing_a_partial_amount_with_full_selected_refunds_only_that_amount(
    admin_page: Any, live_server: Any, flexcharge: FlexCharge
) -> None:
    # The reported bug: "Full" selected, 1.00 typed, the whole 29.99 refunded.
    page = admin_page
    order = hand_over("INV-BR-FULL", is_mit=False, amount=2999)
    run_action(page, live_server, "refund_orders", order)
    full = page.locator(f"input[name='refund-{order.pk}-kind'][value=full]")
    partial = page.locator(f"input[name='refund-{order.pk}-kind'][value=partial]")
    expect(page.locator(f"#flexcharge-refund-row-{order.pk}")).to_contain_text("Full: 29.99 USD")
    expect(full).not_to_be_checked()  # nothing preselected
    full.check()
    page.fill(f"[name='refund-{order.pk}-amount']", "1.00")
    expect(partial).to_be_checked()  # typing an amount chooses "Partial"
    page.click("#flexcharge-refund-submit")

    expect(page.locator("#flexcharge-refund-total")).to_have_text(
        "FlexCharge will refund 1.00 USD in total:"
    )
    expect(page.locator("#flexcharge-refund-confirm")).to_have_value("Yes, refund 1.00 USD")
    screenshot(page, "refund-confirm-1.00-of-29.99")
    page.click("#flexcharge-refund-confirm")

    expect(page.locator("ul.messagelist li.success")).to_have_text(
        "INV-BR-FULL: refunded 1.00 USD; FlexCharge answered SUCCESS - APPROVED."
    )
    [(_, body)] = flexcharge.refund_bodies
    assert Decimal(str(body["amountToRefund"])) == Decimal("1.00")
    assert flexcharge.order(order.order_session_key).refunded == 100
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 100)


def test_without_javascript_full_with_an_amount_is_refused_on_the_amount_field(
    browser: Any, live_server: Any, flexcharge: FlexCharge, django_user_model: Any
) -> None:
    django_user_model.objects.create_superuser("nojs", "nojs@example.com", PASSWORD)
    context = browser.new_context(java_script_enabled=False, locale="en-US")
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/admin/login/?next={CHANGELIST}")
        page.fill("#id_username", "nojs")
        page.fill("#id_password", PASSWORD)
        page.click("#login-form input[type=submit]")
        order = hand_over("INV-BR-NOJS", is_mit=False, amount=2999)
        run_action(page, live_server, "refund_orders", order)
        page.check(f"input[name='refund-{order.pk}-kind'][value=full]")
        page.fill(f"[name='refund-{order.pk}-amount']", "1.00")
        page.click("#flexcharge-refund-submit")

        expect(page.locator("#flexcharge-refund-errors")).to_be_visible()
        row = page.locator(f"#flexcharge-refund-row-{order.pk}")
        expect(row.locator(".errorlist")).to_have_text(
            "You chose a full refund (29.99 USD) but typed 1.00 USD. Choose “Partial” to "
            "refund 1.00 USD, or clear the amount."
        )
        screenshot(page, "refund-full-with-amount-refused-no-js")
    finally:
        context.close()
    assert flexcharge.refund_bodies == []
    assert not Refund.objects.exists()


def test_refund_from_the_order_page(
    admin_page: Any, live_server: Any, flexcharge: FlexCharge
) -> None:
    page = admin_page
    order = hand_over("INV-BR-PAGE", is_mit=False)
    page.goto(f"{live_server.url}{CHANGELIST}{order.pk}/change/")
    page.click("#flexcharge-refund-button")
    page.check(f"input[name='refund-{order.pk}-kind'][value=full]")
    page.click("#flexcharge-refund-submit")
    expect(page.locator("#flexcharge-refund-total")).to_have_text(
        "FlexCharge will refund 19.99 USD in total:"
    )
    page.click("#flexcharge-refund-confirm")

    expect(page).to_have_url(f"{live_server.url}{CHANGELIST}{order.pk}/change/")
    expect(page.locator("ul.messagelist li.success")).to_contain_text("refunded 19.99 USD")
    expect(page.locator("#flexcharge-refund-button")).to_have_count(0)  # nothing left
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.REFUNDED, 1999)
