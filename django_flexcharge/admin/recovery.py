"""Recovery figures for the dashboard: each one aggregate query, money always per currency.

A ``Period`` (7, 30, 90 days or custom dates, in the site's time zone) is
applied to every figure through the one function that owns its rows,
``orders_for()``, which the CSV export uses too, so the file holds exactly
the orders behind the figure. Amounts are summed per currency and never
across currencies. "Under rescue now" is a figure about the present: it
counts the orders FlexCharge holds now, whatever the period.

Which time places an order in the period: its rescue (``resolved_at``) for
money recovered, refunds and time to rescue; its hand-over (``created``) for
rates and counts, which ask what became of the orders sent.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from django.db import connections, router
from django.db.models import Aggregate, Count, ExpressionWrapper, F, FloatField, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from ..accounts import check_alias
from ..conf import conf
from ..exceptions import FlexChargeConfigurationError
from ..models import FlexChargeOrder

Status = FlexChargeOrder.Status

#: Money FlexCharge brought in, whatever happened to it later.
RESCUED = frozenset({Status.APPROVED, Status.PARTIALLY_REFUNDED, Status.REFUNDED})
#: Orders with a final answer; refunds only happen to approved orders.
FINISHED = RESCUED | {Status.DECLINED, Status.EXPIRED, Status.CANCELLED, Status.FAILED}
PRESETS = (7, 30, 90)
#: The breakdowns of rate and money: URL name -> order field.
BREAKDOWNS = {
    "decline_code": "decline_code",
    "processor": "processor",
    "brand": "card__brand",
    "account": "account",
}
MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date
    #: One FlexCharge account's orders; "" for every account's.
    account: str = ""

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> dt.datetime:
        return timezone.make_aware(dt.datetime.combine(self.first, dt.time.min))

    @property
    def end(self) -> dt.datetime:
        """Exclusive: midnight after ``last``."""
        return timezone.make_aware(
            dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time.min)
        )

    def dates(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=i) for i in range(self.days)]

    def query(self) -> str:
        """The query string that selects this period again (for links and exports)."""
        if self.last == timezone.localdate() and self.days in PRESETS:
            dates = f"period={self.days}"
        else:
            dates = f"from={self.first.isoformat()}&to={self.last.isoformat()}"
        return dates + (f"&account={quote(self.account, safe='')}" if self.account else "")

    @classmethod
    def last_days(cls, days: int, today: dt.date | None = None, account: str = "") -> Period:
        today = today or timezone.localdate()
        return cls(today - dt.timedelta(days=days - 1), today, account)

    @classmethod
    def from_query(cls, params: Any) -> tuple[Period, str]:
        """The period (and account) a request asks for, and an error to show when it asked for a bad one."""
        period, error = cls._dates_from_query(params)
        account = str(params.get("account") or "")
        if account:
            try:
                check_alias(account)
            except FlexChargeConfigurationError:
                unknown = f"there is no FlexCharge account {account!r}; showing all accounts."
                return period, f"{error} {unknown}".strip()
        return replace(period, account=account), error

    @classmethod
    def _dates_from_query(cls, params: Any) -> tuple[Period, str]:
        start, end = params.get("from"), params.get("to")
        if start or end:
            try:
                first = dt.date.fromisoformat(str(start))
                last = dt.date.fromisoformat(str(end))
            except ValueError:
                return cls.last_days(30), "from and to must be dates (YYYY-MM-DD); showing 30 days."
            if last < first:
                return cls.last_days(30), "to is before from; showing 30 days."
            if (last - first).days >= MAX_DAYS:
                return cls.last_days(30), f"a period is at most {MAX_DAYS} days; showing 30 days."
            return cls(first, last), ""
        try:
            days = int(params.get("period") or 30)
        except ValueError:
            days = 0
        if days not in PRESETS:
            return cls.last_days(30), "period must be 7, 30 or 90; showing 30 days."
        return cls.last_days(days), ""


def window_end() -> Coalesce:
    """When an order's rescue window ends: FlexCharge's expiry, else the same-day hand-over limit."""
    limit = dt.timedelta(hours=conf.DECLINE_MAX_AGE)
    return Coalesce(
        "expiry_date",
        ExpressionWrapper(
            F("declined_at") + limit, output_field=FlexChargeOrder._meta.get_field("declined_at")
        ),
    )


# --- the rows behind each figure (one owner, shared with the CSV export) ---


def orders_for(
    figure: str, period: Period, key: str | None = None, now: dt.datetime | None = None
) -> QuerySet[FlexChargeOrder]:
    """The orders a figure counts; ``key`` narrows it to one value, status or window ("" = blank)."""
    orders = FlexChargeOrder.objects.order_by()
    if period.account:
        orders = orders.filter(account=period.account)
    in_period_rescued = orders.filter(
        status__in=RESCUED, resolved_at__gte=period.start, resolved_at__lt=period.end
    )
    if figure in ("recovered", "refunds", "time_to_rescue"):
        return in_period_rescued
    if figure == "under_rescue":
        now = now or timezone.now()
        held = orders.filter(status__in=FlexChargeOrder.UNDER_RESCUE)
        if key in ("24h", "7d"):
            horizon = now + (dt.timedelta(hours=24) if key == "24h" else dt.timedelta(days=7))
            held = held.alias(window_end=window_end()).filter(window_end__lte=horizon)
        return held
    if figure == "status":
        created = orders.filter(created__gte=period.start, created__lt=period.end)
        return created.filter(status=key) if key else created
    if figure in BREAKDOWNS:
        finished = orders.filter(
            status__in=FINISHED, created__gte=period.start, created__lt=period.end
        )
        if key is None:
            return finished
        field = BREAKDOWNS[figure]
        # A blank value groups "" and NULL (an order without a card has no brand).
        return finished.filter(
            Q(**{field: ""}) | Q(**{f"{field}__isnull": True}) if not key else Q(**{field: key})
        )
    raise ValueError(f"unknown figure {figure!r}")


# --- the figures ---


def recovered_per_day(period: Period) -> dict[str, list[tuple[dt.date, int, int]]]:
    """Per currency: (day, recovered that day, cumulative since the period began), every day present."""
    rows = (
        orders_for("recovered", period)
        .annotate(day=TruncDate("resolved_at"))
        .values("day", "currency")
        .annotate(amount=Sum("amount"))
    )
    amounts: dict[str, dict[dt.date, int]] = defaultdict(dict)
    for row in rows:
        amounts[row["currency"]][row["day"]] = row["amount"]
    series: dict[str, list[tuple[dt.date, int, int]]] = {}
    for currency in sorted(amounts):
        total = 0
        days = []
        for day in period.dates():
            amount = amounts[currency].get(day, 0)
            total += amount
            days.append((day, amount, total))
        series[currency] = days
    return series


def totals(period: Period) -> list[dict[str, Any]]:
    """Per currency: orders rescued in the period, money recovered, refunded, and net of refunds."""
    rows = (
        orders_for("refunds", period)
        .values("currency")
        .annotate(orders=Count("pk"), recovered=Sum("amount"), refunded=Sum("refunded_amount"))
        .order_by("currency")
    )
    return [{**row, "net": row["recovered"] - row["refunded"]} for row in rows]


def under_rescue(now: dt.datetime | None = None, account: str = "") -> list[dict[str, Any]]:
    """Per currency: orders FlexCharge holds now, their money, and what of it ends in 24 h and 7 days."""
    now = now or timezone.now()
    soon, week = now + dt.timedelta(hours=24), now + dt.timedelta(days=7)
    rows = (
        orders_for("under_rescue", Period.last_days(1, account=account), now=now)
        .alias(window_end=window_end())
        .values("currency")
        .annotate(
            orders=Count("pk"),
            held=Sum("amount"),
            ends_24h=Sum("amount", filter=Q(window_end__lte=soon), default=0),
            ends_7d=Sum("amount", filter=Q(window_end__lte=week), default=0),
        )
        .order_by("currency")
    )
    return [dict(row) for row in rows]


def breakdown(period: Period, name: str) -> list[dict[str, Any]]:
    """Per value of ``name`` (decline code, processor, brand): finished, rescued, rate, money per currency."""
    field = BREAKDOWNS[name]
    rows = (
        orders_for(name, period)
        .values(field, "currency")
        .annotate(
            finished=Count("pk"),
            rescued=Count("pk", filter=Q(status__in=RESCUED)),
            recovered=Sum("amount", filter=Q(status__in=RESCUED), default=0),
        )
    )
    grouped: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row[field] or ""
        entry = grouped.setdefault(key, {"key": key, "finished": 0, "rescued": 0, "recovered": {}})
        entry["finished"] += row["finished"]
        entry["rescued"] += row["rescued"]
        if row["recovered"]:
            entry["recovered"][row["currency"]] = row["recovered"]
    result = []
    for entry in grouped.values():
        entry["rate"] = rate(entry["rescued"], entry["finished"])
        entry["recovered"] = sorted(entry["recovered"].items())
        result.append(entry)
    result.sort(key=lambda e: (-e["rescued"], -e["finished"], e["key"]))
    return result


def rate(rescued: int, finished: int) -> Decimal | None:
    if not finished:
        return None
    return (Decimal(100 * rescued) / finished).quantize(Decimal("0.1"))


class MedianSeconds(Aggregate):
    """The median of ``end - start`` in seconds, in the database (PostgreSQL and SQLite)."""

    function = "PERCENTILE_CONT"
    output_field = FloatField()

    def __init__(self, start: str, end: str, **extra: Any) -> None:
        super().__init__(F(start), F(end), **extra)

    def as_sql(
        self, compiler: Any, connection: Any, *args: Any, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        # An Aggregate lists its filter (None here) after its arguments.
        start, end = (compiler.compile(expr) for expr in self.get_source_expressions()[:2])
        params = [*start[1], *end[1]]
        if connection.vendor == "postgresql":
            sql = f"PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM ({end[0]} - {start[0]})))"
        elif connection.vendor == "sqlite":
            sql = f"FLEXCHARGE_MEDIAN((julianday({end[0]}) - julianday({start[0]})) * 86400.0)"
        else:  # pragma: no cover - the app supports PostgreSQL and SQLite
            raise NotImplementedError(
                f"median time to rescue needs PostgreSQL or SQLite, not {connection.vendor}"
            )
        return sql, tuple(params)


class _SqliteMedian:
    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def _sqlite_median(alias: str) -> None:
    """Give a SQLite connection the median aggregate PostgreSQL has built in (idempotent)."""
    db = connections[alias]
    if db.vendor == "sqlite":
        db.ensure_connection()
        db.connection.create_aggregate("FLEXCHARGE_MEDIAN", 1, _SqliteMedian)


def median_time_to_rescue(period: Period) -> dt.timedelta | None:
    """Median time from hand-over (``created``) to rescue (``resolved_at``) of orders rescued in the period."""
    _sqlite_median(router.db_for_read(FlexChargeOrder))
    found = orders_for("time_to_rescue", period).aggregate(
        median=MedianSeconds("created", "resolved_at")
    )
    seconds = found["median"]
    return None if seconds is None else dt.timedelta(seconds=round(seconds))
