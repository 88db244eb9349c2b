"""CSV export of the orders behind a dashboard figure: the same rows, from ``recovery.orders_for``.

Streamed (``iterator()``), so a 90-day export of a large site neither loads
every order at once nor holds the request's memory. Amounts are exact major
units next to their currency. A cell a spreadsheet would run as a formula
(``=``, ``+``, ``-``, ``@`` first) is prefixed with ``'``: order ids and
decline messages come from outside.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, StreamingHttpResponse

from ..money import to_major
from .recovery import BREAKDOWNS, Period, orders_for

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.http import HttpRequest

    from ..models import FlexChargeOrder

FIGURES = frozenset(
    {"recovered", "refunds", "time_to_rescue", "under_rescue", "status", *BREAKDOWNS}
)
COLUMNS = [
    "order_id",
    "flexcharge_order_id",
    "status",
    "amount",
    "refunded",
    "currency",
    "decline_code",
    "processor",
    "card_brand",
    "declined_at",
    "handed_over_at",
    "resolved_at",
    "expiry_date",
    "account",
]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _rows(orders: Any) -> Iterator[list[str]]:
    yield COLUMNS
    fields = (
        "order_id",
        "order_session_key",
        "status",
        "amount",
        "refunded_amount",
        "currency",
        "decline_code",
        "processor",
        "card__brand",
        "declined_at",
        "created",
        "resolved_at",
        "expiry_date",
        "account",
    )
    for row in orders.order_by("created", "pk").values_list(*fields).iterator(chunk_size=2000):
        values = dict(zip(fields, row, strict=True))
        currency = values["currency"]
        values["amount"] = to_major(values["amount"], currency)
        values["refunded_amount"] = to_major(values["refunded_amount"], currency)
        for key in ("declined_at", "created", "resolved_at", "expiry_date"):
            if values[key] is not None:
                values[key] = values[key].isoformat()
        yield [_cell(values[f]) for f in fields]


def export_view(model_admin: ModelAdmin[FlexChargeOrder], request: HttpRequest) -> Any:
    """``dashboard/export/?figure=…&key=…&period=…``: the orders behind one figure, as CSV."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    figure = request.GET.get("figure", "")
    if figure not in FIGURES:
        return HttpResponseBadRequest(f"figure must be one of {', '.join(sorted(FIGURES))}")
    period, error = Period.from_query(request.GET)
    if error:
        return HttpResponseBadRequest(error)
    key = request.GET.get("key")
    orders = orders_for(figure, period, key)
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in _rows(orders)), content_type="text/csv; charset=utf-8"
    )
    name = f"flexcharge-{figure}{'-' + key if key else ''}-{period.first}-{period.last}.csv"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    response["Content-Disposition"] = f'attachment; filename="{safe}"'
    return response
