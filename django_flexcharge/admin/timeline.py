"""An order's whole story for its admin page: calls, webhooks, status changes and refunds in time order.

Four queries whatever the order went through (one per kind of row). Each entry
says what happened in words, with a tone (``ok``, ``warn``, ``error``,
``info``) that the template shows as a badge with text, never colour alone.
Nothing here reads a request or response body: call errors are stored already
scrubbed, and webhook bodies stay on the event's own page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from ..models import CallAttempt, FlexChargeOrder, Refund, StatusChange, WebhookEvent
from .display import money_text

EVENT_TONES: dict[str, str] = {
    WebhookEvent.Status.APPLIED: "ok",
    WebhookEvent.Status.DUPLICATE: "info",
    WebhookEvent.Status.IGNORED: "warn",
    WebhookEvent.Status.FAILED: "error",
    WebhookEvent.Status.RECEIVED: "warn",
}
REFUND_TONES: dict[str, str] = {
    Refund.Outcome.SUCCEEDED: "ok",
    Refund.Outcome.PENDING: "warn",
    Refund.Outcome.FAILED: "error",
}
STATUS_TONES: dict[str, str] = {
    FlexChargeOrder.Status.APPROVED: "ok",
    FlexChargeOrder.Status.PARTIALLY_REFUNDED: "info",
    FlexChargeOrder.Status.REFUNDED: "info",
    FlexChargeOrder.Status.QUEUED: "info",
    FlexChargeOrder.Status.PENDING: "info",
    FlexChargeOrder.Status.DECLINED: "error",
    FlexChargeOrder.Status.FAILED: "error",
    FlexChargeOrder.Status.EXPIRED: "warn",
    FlexChargeOrder.Status.CANCELLED: "warn",
}


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    kind: str  # call, webhook, status, refund
    title: str
    badge: str
    tone: str
    details: list[tuple[str, str]] = field(default_factory=list)
    link: str = ""
    #: Orders the entries of one instant: a call before the change it caused.
    rank: int = 0


def _call(call: CallAttempt) -> Entry:
    if call.http_status is None:
        badge, tone = _("no answer"), "error"
    else:
        badge = f"HTTP {call.http_status}"
        tone = "ok" if call.succeeded else "error" if call.http_status >= 400 else "warn"
    details = [(_("attempt"), str(call.attempt)), (_("latency"), f"{call.latency_ms} ms")]
    if call.trace_id:
        details.append((_("FlexCharge trace id"), call.trace_id))
    if call.error:
        details.append((_("error"), call.error))
    return Entry(call.started_at, "call", call.endpoint, badge, tone, details, rank=0)


def _event(event: WebhookEvent) -> Entry:
    details = [(_("resent"), _("yes") if event.is_resent else _("no"))]
    if event.timestamp:
        details.append((_("FlexCharge timestamp"), event.timestamp.isoformat(timespec="seconds")))
    if event.error:
        label = _("why ignored") if event.status == WebhookEvent.Status.IGNORED else _("reason")
        details.append((label, event.error))
    link = reverse("admin:django_flexcharge_webhookevent_change", args=[event.pk])
    title = _("Webhook %(event)s") % {"event": event.event}
    tone = EVENT_TONES.get(event.status, "info")
    return Entry(
        event.received_at, "webhook", title, event.get_status_display(), tone, details, link, 1
    )


def _change(change: StatusChange) -> Entry:
    labels: dict[str, Any] = dict(FlexChargeOrder.Status.choices)
    title = _("%(previous)s → %(status)s") % {
        "previous": labels.get(change.previous, change.previous),
        "status": labels.get(change.status, change.status),
    }
    details = [(_("caused by"), change.cause or "-")]
    if change.user is not None:
        details.append((_("by"), change.user.get_username()))
    badge = str(labels.get(change.status, change.status))
    return Entry(
        change.at, "status", title, badge, STATUS_TONES.get(change.status, "info"), details, rank=2
    )


def _refund(refund: Refund) -> Entry:
    title = _("Refund of %(amount)s") % {"amount": money_text(refund.amount, refund.currency)}
    details = []
    if refund.reason:
        details.append((_("reason"), refund.reason))
    if refund.requested_by is not None:
        details.append((_("requested by"), refund.requested_by.get_username()))
    if refund.error:
        details.append((_("error"), refund.error))
    link = reverse("admin:django_flexcharge_refund_change", args=[refund.pk])
    tone = REFUND_TONES.get(refund.outcome, "info")
    return Entry(
        refund.created, "refund", title, refund.get_outcome_display(), tone, details, link, -1
    )


def order_timeline(order: FlexChargeOrder) -> list[Entry]:
    """Everything that happened to ``order``, oldest first (four queries)."""
    entries: list[Entry] = [
        *(_call(c) for c in CallAttempt.objects.filter(order=order)),
        *(_event(e) for e in WebhookEvent.objects.filter(order=order)),
        *(_change(c) for c in StatusChange.objects.filter(order=order).select_related("user")),
        *(_refund(r) for r in Refund.objects.filter(order=order).select_related("requested_by")),
    ]
    entries.sort(key=lambda entry: (entry.at, entry.rank))
    return entries
