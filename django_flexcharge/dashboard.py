"""The "FlexCharge rescue" admin page: aggregate figures and a server-rendered SVG chart.

Every figure is one aggregate query (``GROUP BY`` status, currency or day):
the page costs four queries however many orders there are. The chart is plain
SVG computed here and drawn by a template, so it needs no JavaScript, no CDN
and works under a strict CSP; it carries a title, a description and axis
labels, and the same numbers are in a table for screen readers.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.formats import date_format

from .models import FlexChargeOrder
from .money import format_amount
from .transitions import RESOLVED

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.http import HttpRequest

Status = FlexChargeOrder.Status

#: Money FlexCharge brought in, whatever happened to it later.
RESCUED = frozenset({Status.APPROVED, Status.PARTIALLY_REFUNDED, Status.REFUNDED})
#: Orders with a final answer; refunds only happen to approved orders.
FINISHED = RESOLVED | RESCUED
DAYS = 30

# Chart geometry, in SVG user units (the element scales with its container).
WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 16, 56


def status_counts() -> dict[str, int]:
    """Orders per status, every status present (zero when none)."""
    rows = FlexChargeOrder.objects.order_by().values("status").annotate(n=Count("pk"))
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


def recovered_by_currency() -> list[dict[str, Any]]:
    """Per currency: rescued orders, recovered amount, refunded amount and what remains."""
    rows = (
        FlexChargeOrder.objects.filter(status__in=RESCUED)
        .order_by()
        .values("currency")
        .annotate(orders=Count("pk"), recovered=Sum("amount"), refunded=Sum("refunded_amount"))
        .order_by("currency")
    )
    return [
        {
            "currency": row["currency"],
            "orders": row["orders"],
            "recovered": format_amount(row["recovered"], row["currency"]),
            "refunded": format_amount(row["refunded"], row["currency"]),
            "net": format_amount(row["recovered"] - row["refunded"], row["currency"]),
        }
        for row in rows
    ]


def _per_day(field: str, start: dt.datetime, **filters: Any) -> dict[dt.date, int]:
    rows = (
        FlexChargeOrder.objects.filter(**{f"{field}__gte": start}, **filters)
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


def daily_series(days: int = DAYS, today: dt.date | None = None) -> list[Day]:
    """Submitted (orders created) and approved (rescued, by approval date) per local day."""
    today = today or timezone.localdate()
    first = today - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min))
    submitted = _per_day("created", start)
    approved = _per_day("resolved_at", start, status__in=RESCUED)
    dates = [first + dt.timedelta(days=i) for i in range(days)]
    return [Day(d, submitted.get(d, 0), approved.get(d, 0)) for d in dates]


def _nice_step(peak: int, ticks: int = 4) -> int:
    """A whole step so that ``ticks`` steps cover ``peak``: 1-5, then 1/2/2.5/5 x 10^n."""
    raw = max(peak, 1) / ticks
    if raw <= 5:
        return math.ceil(raw)
    magnitude = 10 ** max(0, math.floor(math.log10(raw)))
    for factor in (1, 2, 2.5, 5):
        value = factor * magnitude
        if value >= raw and value == int(value):
            return int(value)
    return int(10 * magnitude)


def chart(series: list[Day]) -> dict[str, Any]:
    """Geometry for ``django_flexcharge/rescue_chart.html``: bars (submitted), a line (approved)."""
    step = _nice_step(max([max(d.submitted, d.approved) for d in series] or [0]))
    top_value = step * 4
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(series), 1)
    base = TOP + plot_h

    def y(value: int) -> float:
        return round(base - plot_h * value / top_value, 1)

    bars: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    for i, day in enumerate(series):
        centre = LEFT + slot * (i + 0.5)
        bars.append(
            {
                "day": day,
                "x": round(centre - slot * 0.3, 1),
                "y": y(day.submitted),
                "width": round(slot * 0.6, 1),
                "height": round(base - y(day.submitted), 1),
            }
        )
        points.append({"day": day, "x": round(centre, 1), "y": y(day.approved)})
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "base": base,
        "mid_x": LEFT + plot_w / 2,
        "mid_y": TOP + plot_h / 2,
        "bars": bars,
        "points": points,
        "line": " ".join(f"{p['x']},{p['y']}" for p in points),
        "y_ticks": [{"value": v, "y": y(v)} for v in range(0, top_value + 1, step)],
        # A date label every fifth day keeps 30 labels from overlapping.
        "x_labels": [
            {"x": p["x"], "label": date_format(p["day"].date, "j M")}
            for p in points[(len(points) - 1) % 5 :: 5]
        ],
        "total_submitted": sum(d.submitted for d in series),
        "total_approved": sum(d.approved for d in series),
    }


def dashboard_view(model_admin: ModelAdmin[FlexChargeOrder], request: HttpRequest) -> Any:
    """Staff page (wrapped by ``admin_view``); orders' view permission is needed as well."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    counts = status_counts()
    series = daily_series()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "FlexCharge rescue",
        "counts": [
            {"status": value, "label": label, "count": counts[value]}
            for value, label in Status.choices
        ],
        "total": sum(counts.values()),
        "rescued": sum(counts[s] for s in RESCUED),
        "finished": sum(counts[s] for s in FINISHED),
        "rate": rescue_rate(counts),
        "recovered": recovered_by_currency(),
        "days": series,
        "chart": chart(series),
    }
    return TemplateResponse(
        request, "admin/django_flexcharge/flexchargeorder/dashboard.html", context
    )
