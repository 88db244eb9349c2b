"""Changelist columns that read as words: status badges with text, money per currency, yes/no.

Each is a plain function, usable directly in ``list_display``; colour always
repeats the text of a badge (a colour-blind reader and a screen reader get
the same information), and amounts never wrap between number and currency.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ..models import FlexChargeOrder, Refund, Transmission, WebhookEvent
from .display import money, money_text, status_badge, yes_no
from .timeline import EVENT_TONES, REFUND_TONES


def _badge(tone: str, value: str, label: object) -> SafeString:
    return format_html(
        '<span class="fc-badge fc-tone-{}" data-status="{}">{}</span>', tone, value, label
    )


@admin.display(description=_("status"), ordering="status")
def order_status(obj: FlexChargeOrder) -> SafeString:
    return status_badge(obj.status)


@admin.display(description=_("amount"), ordering="amount")
def order_amount(obj: FlexChargeOrder) -> SafeString:
    return money(obj.amount, obj.currency)


@admin.display(description=_("refunded"), ordering="refunded_amount")
def order_refunded(obj: FlexChargeOrder) -> SafeString | str:
    if obj.refunded_amount_unknown:
        # FlexCharge reported a refund without its amount; flexcharge_sync asks for it.
        return _("unknown, at least %(amount)s (waiting for flexcharge_sync)") % {
            "amount": money_text(obj.refunded_amount, obj.currency)
        }
    return money(obj.refunded_amount, obj.currency) if obj.refunded_amount else "-"


@admin.display(description=_("mode"), ordering="is_test_mode")
def order_mode(obj: FlexChargeOrder) -> str:
    return str(_("Test mode") if obj.is_test_mode else _("Live"))


@admin.display(description=_("initiated by"), ordering="is_mit")
def order_initiator(obj: FlexChargeOrder) -> str:
    return str(_("Merchant-initiated") if obj.is_mit else _("Customer-initiated"))


@admin.display(description=_("verdict"), ordering="status")
def event_status(obj: WebhookEvent) -> SafeString:
    return _badge(EVENT_TONES.get(obj.status, "neutral"), obj.status, obj.get_status_display())


@admin.display(description=_("why ignored / failed"))
def event_reason(obj: WebhookEvent) -> str:
    return obj.error or "-"


@admin.display(description=_("resent"), ordering="is_resent")
def event_resent(obj: WebhookEvent) -> str:
    return str(_(yes_no(obj.is_resent)))


@admin.display(description=_("amount"), ordering="amount")
def refund_amount(obj: Refund) -> SafeString:
    return money(obj.amount, obj.currency)


@admin.display(description=_("outcome"), ordering="outcome")
def refund_outcome(obj: Refund) -> SafeString:
    return _badge(REFUND_TONES.get(obj.outcome, "neutral"), obj.outcome, obj.get_outcome_display())


@admin.display(description=_("amount"), ordering="amount")
def transmission_amount(obj: Transmission) -> SafeString:
    return money(obj.amount, obj.currency)


TRANSMISSION_TONES = {"queued": "info", "sent": "ok", "failed": "error"}


@admin.display(description=_("status"), ordering="status")
def transmission_status(obj: Transmission) -> SafeString:
    tone = TRANSMISSION_TONES.get(obj.status, "neutral")
    return _badge(tone, obj.status, obj.get_status_display())
