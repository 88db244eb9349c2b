"""How the admin shows money and statuses: ``500,000 JPY`` in the reader's locale, badges with text.

Amounts are grouped and given the currency's own number of decimals (JPY 0,
USD 2, KWD 3) by Django's locale-aware ``number_format``; a no-break space
joins number and code, and the HTML form sits in a ``nowrap`` span so a
narrow column never splits ``500,000`` from ``JPY``. A status badge always
carries its label: colour repeats the text, never replaces it.
"""

from __future__ import annotations

from typing import Any

from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..models import FlexChargeOrder
from ..money import exponent, to_major

NBSP = "\u00a0"
#: Badge colour per status (the CSS classes in static/django_flexcharge/admin.css).
STATUS_TONES: dict[str, str] = {
    FlexChargeOrder.Status.QUEUED: "info",
    FlexChargeOrder.Status.PENDING: "info",
    FlexChargeOrder.Status.APPROVED: "ok",
    FlexChargeOrder.Status.PARTIALLY_REFUNDED: "neutral",
    FlexChargeOrder.Status.REFUNDED: "neutral",
    FlexChargeOrder.Status.DECLINED: "error",
    FlexChargeOrder.Status.FAILED: "error",
    FlexChargeOrder.Status.EXPIRED: "warn",
    FlexChargeOrder.Status.CANCELLED: "warn",
}


def money_text(amount: int, currency: str) -> str:
    """``"500,000 JPY"`` (with a no-break space), grouped and localised."""
    try:
        places = exponent(currency)
        value = to_major(int(amount), currency)
    except (TypeError, ValueError):
        return f"{amount}{NBSP}{currency}"
    number = number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)
    return f"{number}{NBSP}{currency.upper()}"


def money(amount: int, currency: str) -> SafeString:
    return format_html('<span class="fc-money">{}</span>', money_text(amount, currency))


def status_badge(status: str) -> SafeString:
    labels: dict[str, Any] = dict(FlexChargeOrder.Status.choices)
    label = labels.get(status, status)
    tone = STATUS_TONES.get(status, "neutral")
    return format_html(
        '<span class="fc-badge fc-tone-{}" data-status="{}">{}</span>', tone, status, label
    )


def yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")
