"""The "FlexCharge rescue" admin page: recovery figures for a period, SVG charts, CSV exports.

Every figure is one aggregate query (``GROUP BY`` status, currency, day or a
breakdown's value), so the page costs the same ten queries however many
orders there are (``tests/test_dashboard_recovery.py`` counts them at 10^5).
The figures themselves live in ``recovery``; this module turns them into
page context. Charts are plain SVG computed here and drawn by templates, so
they need no JavaScript, no CDN and work under a strict CSP; each carries a
title, a description and axis labels, and its numbers are in a table.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.template.response import TemplateResponse
from django.utils.formats import date_format

from ..accounts import aliases, several_accounts
from ..models import FlexChargeOrder
from . import charts, recovery
from .display import money_text
from .recovery import FINISHED, RESCUED, Period

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.http import HttpRequest

Status = FlexChargeOrder.Status

DAYS = 30

# Chart geometry, in SVG user units (the element scales with its container).
SIZE = {"width": 720, "height": 280, "left": 52, "right": 16, "top": 16, "bottom": 56}


def status_counts(period: Period | None = None) -> dict[str, int]:
    """Orders per status (handed over in ``period``, or ever), every status present."""
    orders = recovery.orders_for("status", period) if period else FlexChargeOrder.objects
    rows = orders.order_by().values("status").annotate(n=Count("pk"))
    counts = dict.fromkeys(Status.values, 0)
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def rescue_rate(counts: dict[str, int]) -> Decimal | None:
    """Rescued / finished orders as a percentage (one decimal); None before any finished."""
    finished = sum(counts.get(status, 0) for status in FINISHED)
    if not finished:
        return None
    rescued = sum(counts.get(status, 0) for status in RESCUED)
    return (Decimal(100 * rescued) / finished).quantize(Decimal("0.1"))


def _per_day(
    field: str, start: dt.datetime, end: dt.datetime, **filters: Any
) -> dict[dt.date, int]:
    rows = (
        FlexChargeOrder.objects.filter(**{f"{field}__gte": start, f"{field}__lt": end}, **filters)
        .annotate(day=TruncDate(field))
        .order_by()
        .values("day")
        .annotate(n=Count("pk"))
    )
    return {row["day"]: row["n"] for row in rows}


@dataclass(frozen=True)
class Day:
    date: dt.date
    submitted: int
    approved: int


def daily_series(
    days: int = DAYS, today: dt.date | None = None, *, period: Period | None = None
) -> list[Day]:
    """Submitted (orders created) and approved (rescued, by approval date) per local day."""
    period = period or Period.last_days(days, today)
    mine = {"account": period.account} if period.account else {}
    submitted = _per_day("created", period.start, period.end, **mine)
    approved = _per_day("resolved_at", period.start, period.end, status__in=RESCUED, **mine)
    return [Day(d, submitted.get(d, 0), approved.get(d, 0)) for d in period.dates()]


def _every(count: int) -> int:
    return 5 if count <= 40 else math.ceil(count / 8)


def chart(series: list[Day]) -> dict[str, Any]:
    """Geometry for ``django_flexcharge/rescue_chart.html``: bars (submitted), a line (approved)."""
    peak = max([max(d.submitted, d.approved) for d in series] or [0])
    frame = charts.Frame.for_peak(peak, len(series), **SIZE)
    bars: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    for i, day in enumerate(series):
        bars.append({"day": day, **frame.bar(i, day.submitted, 0.6)})
        points.append({"day": day, "x": round(frame.centre(i), 1), "y": frame.y(day.approved)})
    return {
        **frame.outline(),
        "bars": bars,
        "points": points,
        "line": " ".join(f"{p['x']},{p['y']}" for p in points),
        "y_ticks": [{"value": v, "y": frame.y(v)} for v in frame.ticks()],
        # At most about eight date labels, so 90 days do not overlap; the last day always.
        "x_labels": [
            {"x": p["x"], "label": date_format(p["day"].date, "j M")}
            for p in points[(len(points) - 1) % _every(len(points)) :: _every(len(points))]
        ],
        "total_submitted": sum(d.submitted for d in series),
        "total_approved": sum(d.approved for d in series),
    }


def _money(rows: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    """``rows`` with each of ``fields`` also formatted in its row's currency (``<field>_text``)."""
    return [
        {**row, **{f"{f}_text": money_text(row[f], row["currency"]) for f in fields}}
        for row in rows
    ]


def _breakdown_rows(period: Period, name: str) -> list[dict[str, Any]]:
    rows = recovery.breakdown(period, name)
    for row in rows:
        row["recovered_text"] = [money_text(amount, cur) for cur, amount in row["recovered"]]
    return rows


BREAKDOWN_TITLES = {
    "decline_code": "By decline code",
    "processor": "By processor",
    "brand": "By card brand",
}


def _accounts(period: Period) -> list[dict[str, Any]]:
    """The account switch: every account's figures, or one account's (none with one account)."""
    if not several_accounts():
        return []
    return [
        {
            "alias": alias,
            "query": replace(period, account=alias).query(),
            "current": alias == period.account,
        }
        for alias in ["", *aliases()]
    ]


def _breakdown_titles(period: Period) -> dict[str, str]:
    # Per account only where there are several, and only when showing them all.
    if several_accounts() and not period.account:
        return {**BREAKDOWN_TITLES, "account": "By account"}
    return BREAKDOWN_TITLES


def context(period: Period) -> dict[str, Any]:
    """Every figure of the page for ``period`` (ten aggregate queries)."""
    counts = status_counts(period)
    series = daily_series(period=period)
    per_day = recovery.recovered_per_day(period)
    median = recovery.median_time_to_rescue(period)
    return {
        "period": period,
        "period_query": period.query(),
        "presets": [
            {"days": d, "current": period.query() == f"period={d}"} for d in recovery.PRESETS
        ],
        "counts": [
            {"status": value, "label": label, "count": counts[value]}
            for value, label in Status.choices
        ],
        "total": sum(counts.values()),
        "rescued": sum(counts[s] for s in RESCUED),
        "finished": sum(counts[s] for s in FINISHED),
        "rate": rescue_rate(counts),
        "totals": _money(recovery.totals(period), "recovered", "refunded", "net"),
        "under_rescue": _money(
            recovery.under_rescue(account=period.account), "held", "ends_24h", "ends_7d"
        ),
        "accounts": _accounts(period),
        "money_charts": [
            {
                "chart": charts.money_chart(currency, days),
                "days": [
                    {"date": d, "amount": money_text(a, currency), "total": money_text(t, currency)}
                    for d, a, t in days
                ],
            }
            for currency, days in per_day.items()
        ],
        "breakdowns": [
            {"name": name, "title": title, "rows": _breakdown_rows(period, name)}
            for name, title in _breakdown_titles(period).items()
        ],
        "median": median,
        "median_text": _duration(median),
        "days": series,
        "chart": chart(series),
    }


def _duration(value: dt.timedelta | None) -> str:
    if value is None:
        return ""
    minutes = int(value.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours or days:
        parts.append(f"{hours} h")
    parts.append(f"{minutes} min")
    return " ".join(parts)


def dashboard_view(model_admin: ModelAdmin[FlexChargeOrder], request: HttpRequest) -> Any:
    """Staff page (wrapped by ``admin_view``); orders' view permission is needed as well."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    period, error = Period.from_query(request.GET)
    page = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "FlexCharge rescue",
        "period_error": error,
        **context(period),
    }
    return TemplateResponse(request, "admin/django_flexcharge/flexchargeorder/dashboard.html", page)
