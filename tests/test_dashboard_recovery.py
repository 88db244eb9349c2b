"""Recovery figures against hand-computed values (USD, JPY with 0 decimals, KWD with 3), CSV exports, query counts."""

from __future__ import annotations

import csv
import datetime as dt
import io
from itertools import count

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_flexcharge.admin import dashboard, recovery
from django_flexcharge.models import FlexChargeOrder, VaultedCard

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
NOW = timezone.now()
_ids = count(1)
EXPORT = "/admin/django_flexcharge/flexchargeorder/dashboard/export/"


def card(brand: str) -> VaultedCard:
    return VaultedCard.objects.create(
        token=f"tok-{next(_ids)}", last4="4242", brand=brand, exp_month=1, exp_year=2030
    )


def order(status, amount, currency, *, created_days=0, rescue_after=None, **extra):
    created = NOW - dt.timedelta(days=created_days)
    resolved = created + rescue_after if rescue_after is not None else None
    return FlexChargeOrder.objects.create(
        order_id=f"INV-{next(_ids)}",
        status=status,
        amount=amount,
        currency=currency,
        created=created,
        declined_at=extra.pop("declined_at", created),
        resolved_at=resolved,
        **extra,
    )


H = dt.timedelta(hours=1)


@pytest.fixture
def seeded():
    visa, mastercard = card("visa"), card("mastercard")
    stripe = {"decline_code": "05", "processor": "stripe"}
    adyen = {"decline_code": "51", "processor": "adyen"}
    orders = {
        "usd_ok": order(
            Status.APPROVED, 1999, "USD", created_days=2, rescue_after=2 * H, card=visa, **stripe
        ),
        "usd_part": order(
            Status.PARTIALLY_REFUNDED,
            2000,
            "USD",
            created_days=1,
            rescue_after=4 * H,
            refunded_amount=500,
            card=mastercard,
            **stripe,
        ),
        "jpy_ok": order(
            Status.APPROVED, 500000, "JPY", created_days=3, rescue_after=H, card=visa, **adyen
        ),
        "kwd_refunded": order(
            Status.REFUNDED,
            12345,
            "KWD",
            created_days=5,
            rescue_after=H / 2,
            refunded_amount=12345,
            **adyen,
        ),
        "usd_declined": order(
            Status.DECLINED, 1000, "USD", created_days=2, rescue_after=H, card=visa, **stripe
        ),
        "jpy_expired": order(
            Status.EXPIRED, 3000, "JPY", created_days=4, rescue_after=H, card=visa, **adyen
        ),
        "usd_old": order(
            Status.APPROVED, 999, "USD", created_days=40, rescue_after=H, card=visa, **stripe
        ),
        # Under rescue now:
        "usd_soon": order(Status.PENDING, 700, "USD", expiry_date=NOW + 10 * H),
        "usd_later": order(Status.PENDING, 300, "USD", expiry_date=NOW + dt.timedelta(days=10)),
        "jpy_held": order(Status.PENDING, 20000, "JPY", expiry_date=NOW + dt.timedelta(days=3)),
        # Queued, never answered: its window is the same-day limit (24 h after the decline).
        "kwd_queued": order(Status.QUEUED, 1500, "KWD", declined_at=NOW - 20 * H),
    }
    return orders


PERIOD = recovery.Period.last_days(30)


def test_totals_per_currency_never_mix_currencies(seeded, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = recovery.totals(PERIOD)
    assert rows == [
        {"currency": "JPY", "orders": 1, "recovered": 500000, "refunded": 0, "net": 500000},
        {"currency": "KWD", "orders": 1, "recovered": 12345, "refunded": 12345, "net": 0},
        {"currency": "USD", "orders": 2, "recovered": 3999, "refunded": 500, "net": 3499},
    ]
    # 90 days reach the 40-day-old rescue as well.
    usd = recovery.totals(recovery.Period.last_days(90))[-1]
    assert (usd["orders"], usd["recovered"]) == (3, 4998)


def test_under_rescue_now_and_the_windows_ending_soon(seeded, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = recovery.under_rescue(now=NOW)
    assert rows == [
        {"currency": "JPY", "orders": 1, "held": 20000, "ends_24h": 0, "ends_7d": 20000},
        {"currency": "KWD", "orders": 1, "held": 1500, "ends_24h": 1500, "ends_7d": 1500},
        {"currency": "USD", "orders": 2, "held": 1000, "ends_24h": 700, "ends_7d": 700},
    ]


def test_breakdowns_by_decline_code_processor_and_brand(seeded, django_assert_num_queries):
    with django_assert_num_queries(1):
        codes = recovery.breakdown(PERIOD, "decline_code")
    assert [
        (r["key"], r["finished"], r["rescued"], str(r["rate"]), r["recovered"]) for r in codes
    ] == [
        ("05", 3, 2, "66.7", [("USD", 3999)]),
        ("51", 3, 2, "66.7", [("JPY", 500000), ("KWD", 12345)]),
    ]
    processors = {r["key"]: r["recovered"] for r in recovery.breakdown(PERIOD, "processor")}
    assert processors == {"stripe": [("USD", 3999)], "adyen": [("JPY", 500000), ("KWD", 12345)]}
    with django_assert_num_queries(1):
        brands = recovery.breakdown(PERIOD, "brand")
    assert [
        (r["key"], r["finished"], r["rescued"], str(r["rate"]), r["recovered"]) for r in brands
    ] == [
        ("visa", 4, 2, "50.0", [("JPY", 500000), ("USD", 1999)]),
        ("", 1, 1, "100.0", [("KWD", 12345)]),
        ("mastercard", 1, 1, "100.0", [("USD", 2000)]),
    ]


def test_median_time_to_rescue(seeded, django_assert_num_queries):
    # Rescued in the period after 2 h, 4 h, 1 h and 30 min: the median is 1 h 30 min.
    with django_assert_num_queries(1):
        median = recovery.median_time_to_rescue(PERIOD)
    assert median == dt.timedelta(minutes=90)
    assert dashboard._duration(median) == "1 h 30 min"
    assert (
        recovery.median_time_to_rescue(
            recovery.Period.last_days(1, NOW.date() - dt.timedelta(days=60))
        )
        is None
    )


def test_recovered_per_day_and_cumulative(seeded, django_assert_num_queries):
    with django_assert_num_queries(1):
        series = recovery.recovered_per_day(PERIOD)
    assert sorted(series) == ["JPY", "KWD", "USD"]
    usd = series["USD"]
    assert len(usd) == 30
    assert usd[-1][2] == 3999
    by_day = {day: amount for day, amount, _ in usd}
    ok_day = timezone.localdate(seeded["usd_ok"].resolved_at)
    part_day = timezone.localdate(seeded["usd_part"].resolved_at)
    assert by_day[ok_day] + (by_day[part_day] if part_day != ok_day else 0) == 3999
    assert sum(by_day.values()) == 3999
    assert series["JPY"][-1][2] == 500000


def test_page_formats_money_per_currency(seeded, admin_client):
    html = admin_client.get(reverse("admin:django_flexcharge_dashboard")).content.decode()
    assert "500,000\u00a0JPY" in html
    assert "12.345\u00a0KWD" in html
    assert "34.99\u00a0USD" in html
    assert 'id="flexcharge-money-chart-JPY"' in html
    assert "1 h 30 min" in html
    # No inline script or style attribute: a strict CSP can serve the page.
    assert "<script>" not in html.split('id="content-main"')[1]
    assert "style=" not in html.split('id="content-main"')[1]


def test_the_period_applies_to_every_figure(seeded, admin_client):
    url = reverse("admin:django_flexcharge_dashboard")
    html = admin_client.get(url + "?period=7").content.decode()
    assert 'data-rate="66.7"' in html  # 4 rescued of 6 finished in 7 days
    html = admin_client.get(url + "?period=90").content.decode()
    assert 'data-rate="71.4"' in html  # the 40-day-old rescue as well: 5 of 7
    today = timezone.localdate()
    first = today - dt.timedelta(days=1)
    html = admin_client.get(url + f"?from={first}&to={today}").content.decode()
    assert 'data-rate="100.0"' in html  # only usd_part was handed over in those 2 days
    assert "period must be 7, 30 or 90" in admin_client.get(url + "?period=12").content.decode()


def rows(response) -> list[dict[str, str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_of_the_orders_behind_a_breakdown_value(seeded, admin_client):
    response = admin_client.get(EXPORT + "?figure=decline_code&key=51&period=30")
    assert response["Content-Type"].startswith("text/csv")
    found = {row["order_id"]: row for row in rows(response)}
    assert set(found) == {seeded[k].order_id for k in ("jpy_ok", "kwd_refunded", "jpy_expired")}
    assert found[seeded["jpy_ok"].order_id]["amount"] == "500000"
    assert found[seeded["kwd_refunded"].order_id]["amount"] == "12.345"


def test_csv_of_windows_ending_in_24_hours(seeded, admin_client):
    found = {
        row["order_id"] for row in rows(admin_client.get(EXPORT + "?figure=under_rescue&key=24h"))
    }
    assert found == {seeded["usd_soon"].order_id, seeded["kwd_queued"].order_id}


def test_csv_cells_cannot_run_as_formulas(admin_client):
    # Rescued yesterday: a rescue an hour from now would fall outside today after 23:00.
    order(Status.APPROVED, 100, "USD", created_days=1, rescue_after=H, decline_code="=HYPERLINK(1)")
    (row,) = rows(admin_client.get(EXPORT + "?figure=recovered"))
    assert row["decline_code"] == "'=HYPERLINK(1)"


def test_csv_refuses_an_unknown_figure(admin_client):
    assert admin_client.get(EXPORT + "?figure=secrets").status_code == 400


@pytest.mark.scale
@override_settings(FLEXCHARGE_ACCOUNTS={})  # several accounts add the by-account breakdown
def test_every_figure_is_one_query_at_a_hundred_thousand_orders(django_assert_num_queries):
    visa = card("visa")
    codes, processors = ("05", "51", "54", "61"), ("stripe", "adyen", "braintree")
    statuses = (Status.APPROVED, Status.DECLINED, Status.EXPIRED, Status.PENDING, Status.REFUNDED)
    currencies = ("USD", "JPY", "KWD")
    batch = [
        FlexChargeOrder(
            order_id=f"BULK-{i}",
            status=statuses[i % 5],
            amount=100 + i % 997,
            refunded_amount=100 + i % 997 if statuses[i % 5] == Status.REFUNDED else 0,
            currency=currencies[i % 3],
            decline_code=codes[i % 4],
            processor=processors[i % 3],
            card=visa if i % 2 else None,
            created=NOW - dt.timedelta(minutes=i),
            resolved_at=NOW - dt.timedelta(minutes=i) + H
            if statuses[i % 5] != Status.PENDING
            else None,
            expiry_date=NOW + H if statuses[i % 5] == Status.PENDING else None,
        )
        for i in range(100_000)
    ]
    FlexChargeOrder.objects.bulk_create(batch, batch_size=5000)
    del batch
    # status counts 1, submitted/approved per day 2, money per day 1, totals 1,
    # under rescue 1, three breakdowns 3, median 1: ten, whatever the table size.
    with django_assert_num_queries(10):
        page = dashboard.context(recovery.Period.last_days(90))
    assert page["total"] == 100_000
    assert sum(row["orders"] for row in page["under_rescue"]) == 20_000
