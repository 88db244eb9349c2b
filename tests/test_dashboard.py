"""The FlexCharge rescue dashboard: aggregate figures, the SVG chart, access."""

from __future__ import annotations

import datetime as dt
import re
from itertools import count

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from django_flexcharge.admin import dashboard, recovery
from django_flexcharge.models import FlexChargeOrder
from tests.factories import numbered_order

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
URL = "/admin/django_flexcharge/flexchargeorder/dashboard/"
_ids = count(1)


def ago(days: int) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


@pytest.fixture
def seeded() -> None:
    # Today: 3 submitted, 2 of them rescued today.
    numbered_order(Status.APPROVED, amount=1999, resolved_at=ago(0))
    numbered_order(Status.PARTIALLY_REFUNDED, amount=2000, refunded_amount=500, resolved_at=ago(0))
    numbered_order(Status.PENDING, amount=1000)
    # Five days ago: 2 submitted; one rescued two days later.
    numbered_order(
        Status.REFUNDED,
        amount=5000,
        currency="JPY",
        refunded_amount=5000,
        created=ago(5),
        resolved_at=ago(3),
    )
    numbered_order(Status.DECLINED, amount=1000, created=ago(5), resolved_at=ago(5))
    # Older: counted in the totals, not in the 30-day chart.
    numbered_order(Status.EXPIRED, amount=1000, created=ago(40), resolved_at=ago(19))
    numbered_order(Status.CANCELLED, amount=1000, created=ago(40), resolved_at=ago(39))
    numbered_order(Status.FAILED, amount=1000, created=ago(40), resolved_at=ago(40))
    numbered_order(Status.QUEUED, amount=1000, created=ago(1))


def test_status_counts_lists_every_status(seeded: None, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        counts = dashboard.status_counts()
    assert set(counts) == set(Status.values)
    assert counts[Status.APPROVED] == 1
    assert counts[Status.PENDING] == 1
    assert counts[Status.QUEUED] == 1
    assert sum(counts.values()) == 9


def test_rescue_rate_is_rescued_over_finished(seeded: None) -> None:
    # Rescued 3 (approved, partially refunded, refunded) of 7 finished;
    # queued and pending are still open.
    rate = dashboard.rescue_rate(dashboard.status_counts())
    assert str(rate) == "42.9"


def test_rescue_rate_without_finished_orders_is_none() -> None:
    numbered_order(Status.PENDING, amount=1000)
    assert dashboard.rescue_rate(dashboard.status_counts()) is None


def test_recovered_per_currency_in_the_period(seeded: None, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        rows = recovery.totals(recovery.Period.last_days(30))
    assert rows == [
        {"currency": "JPY", "orders": 1, "recovered": 5000, "refunded": 5000, "net": 0},
        {"currency": "USD", "orders": 2, "recovered": 3999, "refunded": 500, "net": 3499},
    ]


def test_daily_series_covers_thirty_days(seeded: None, django_assert_num_queries) -> None:
    today = timezone.localdate()
    with django_assert_num_queries(2):
        series = dashboard.daily_series()
    assert len(series) == 30
    assert series[0].date == today - dt.timedelta(days=29)
    assert series[-1].date == today
    by_day = {day.date: (day.submitted, day.approved) for day in series}
    assert by_day[today] == (3, 2)
    assert by_day[today - dt.timedelta(days=1)] == (1, 0)
    assert by_day[today - dt.timedelta(days=3)] == (0, 1)
    assert by_day[today - dt.timedelta(days=5)] == (2, 0)
    # The expiry 19 days ago is not a rescue; the 40-day-old orders are out of range.
    assert sum(s for s, _ in by_day.values()) == 6
    assert sum(a for _, a in by_day.values()) == 3


@pytest.mark.parametrize(
    ("peak", "top"), [(0, 4), (1, 4), (4, 4), (7, 8), (9, 12), (30, 40), (100, 100), (101, 200)]
)
def test_chart_axis_tops_are_round(peak: int, top: int) -> None:
    today = timezone.localdate()
    series = [dashboard.Day(today, peak, 0)]
    ticks = dashboard.chart(series)["y_ticks"]
    assert ticks[-1]["value"] == top
    assert len(ticks) == 5


def test_chart_bar_heights_are_proportional() -> None:
    today = timezone.localdate()
    series = [dashboard.Day(today, 4, 2), dashboard.Day(today, 2, 0), dashboard.Day(today, 0, 0)]
    geometry = dashboard.chart(series)
    heights = [bar["height"] for bar in geometry["bars"]]
    assert heights[0] == pytest.approx(2 * heights[1], abs=0.2)
    assert heights[2] == 0
    points = geometry["points"]
    assert points[0]["y"] < points[1]["y"] == points[2]["y"] == geometry["base"]


def test_page_shows_counts_rate_amounts_and_chart(seeded: None, admin_client) -> None:
    assert reverse("admin:django_flexcharge_dashboard") == URL
    html = admin_client.get(URL).content.decode()
    assert re.search(
        r'data-status="approved">.*?<td class="flexcharge-count fc-num">1</td>', html, re.S
    )
    assert re.search(
        r'data-status="pending">.*?<td class="flexcharge-count fc-num">1</td>', html, re.S
    )
    # The period (30 days) holds 4 finished orders, 3 of them rescued.
    assert 'data-rate="75.0"' in html
    assert "39.99\u00a0USD" in html
    assert "5,000\u00a0JPY" in html
    assert '<svg id="flexcharge-dashboard-chart"' in html
    assert '<title id="flexcharge-chart-title">' in html
    assert '<desc id="flexcharge-chart-desc">' in html
    assert html.count('class="fc-bar"') == 30
    assert html.count('class="fc-point"') == 30
    today = timezone.localdate().isoformat()
    assert f'class="fc-bar" data-date="{today}" data-count="3"' in html
    assert f'class="fc-point" data-date="{today}" data-count="2"' in html
    nonzero_bars = re.findall(r'class="fc-bar" data-date="[^"]+" data-count="([1-9]\d*)"', html)
    assert sorted(nonzero_bars) == ["1", "2", "3"]


def test_page_with_no_orders(admin_client) -> None:
    html = admin_client.get(URL).content.decode()
    assert "No order has a final answer yet." in html
    assert "Nothing recovered yet." in html
    assert html.count('class="fc-bar"') == 30


def test_changelist_links_to_the_dashboard(admin_client) -> None:
    html = admin_client.get(reverse("admin:django_flexcharge_flexchargeorder_changelist")).content
    assert f'href="{URL}" id="flexcharge-dashboard-link"'.encode() in html


def test_anonymous_and_non_staff_go_to_login(client, django_user_model) -> None:
    assert client.get(URL).status_code == 302
    user = django_user_model.objects.create_user("plain", password="pw")
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_staff_needs_view_permission_on_orders(client, django_user_model) -> None:
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(URL).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_flexchargeorder"))
    assert client.get(URL).status_code == 200
