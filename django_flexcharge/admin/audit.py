"""Read-only admins for the audit trail: webhook events (with "re-apply"), refunds, transmissions, cards.

These rows record what FlexCharge was sent and what it answered; nobody edits
or deletes them from the admin, superusers included. Re-applying a stored
webhook event is the one action: it changes orders, so it takes the event's
change permission even though no field of an event is editable.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .. import webhooks
from ..accounts import several_accounts
from ..exceptions import FlexChargeError
from ..models import CallAttempt, FlexChargeOrder, Refund, Transmission, VaultedCard, WebhookEvent
from ..money import format_amount
from ..refunds import settle_by_hand
from . import columns

#: Message level per outcome of a re-apply; duplicate and ignored are information.
REAPPLY_LEVELS: dict[str, int] = {
    WebhookEvent.Status.APPLIED: messages.SUCCESS,
    WebhookEvent.Status.FAILED: messages.ERROR,
}


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic only in the stubs
    """View-only for everyone, superusers included: these rows are an audit trail."""

    class Media:
        # Badges and amounts of the list columns (admin/columns.py): a file, for strict CSPs.
        css = {"all": ("django_flexcharge/admin.css",)}

    #: A field shown, on the row's page, by a method of the admin in its place
    #: (an amount in minor units as the person reads it, with its currency).
    shown_as: dict[str, str] = {}

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Every model field, so the page also shows the non-editable ones
        # (created, idempotency_key) that a model form would leave out.
        fields = [field.name for field in self.opts.fields if not field.primary_key]
        shown = [*fields, *self.shown_as.values(), *super().get_readonly_fields(request, obj)]
        return list(dict.fromkeys(shown))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        shown: list[Any] = []
        for name in super().get_fields(request, obj):
            name = self.shown_as.get(name, name) if isinstance(name, str) else name
            if name not in shown:
                shown.append(name)
        return shown

    # With several FlexCharge accounts every list gets an account column and filter
    # (added here, not in each list_display, so a one-account site sees no change).

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = list(super().get_list_display(request))
        if several_accounts() and "account" not in shown:
            shown.insert(1, "account")
        return shown

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))
        if several_accounts() and "account" not in filters:
            filters.insert(0, "account")
        return filters

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def order_link(order: FlexChargeOrder | None) -> str:
    if order is None:
        return "-"
    url = reverse("admin:django_flexcharge_flexchargeorder_change", args=[order.pk])
    return format_html('<a href="{}">{}</a>', url, order.order_id)


class ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]  # generic only in the stubs
    """Rows shown on another row's page (an order's refunds, a transmission's calls); read-only."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CallAttemptInline(ReadOnlyInline):
    """Each attempt of a transmission's ``/transmit``: when, HTTP status, latency, error."""

    model = CallAttempt
    fk_name = "transmission"
    fields = ("started_at", "endpoint", "attempt", "http_status", "latency_ms", "trace_id", "error")
    readonly_fields = fields
    show_change_link = False


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = (
        "event",
        "order_display",
        columns.event_status,
        columns.event_reason,
        "timestamp",
        "received_at",
        columns.event_resent,
    )
    list_filter = ("status", "event", "is_test_mode", "received_at")
    search_fields = ("=order_session_key", "external_order_id", "=nonce", "confirmation_id")
    list_select_related = ("order",)
    date_hierarchy = "received_at"
    actions = ["reapply_events"]

    @admin.display(description=_("order"), ordering="external_order_id")
    def order_display(self, obj: WebhookEvent) -> str:
        return (
            order_link(obj.order) if obj.order else obj.external_order_id or obj.order_session_key
        )

    def has_reapply_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_flexcharge.change_webhookevent")

    @admin.action(description=_("Re-apply selected events"), permissions=["reapply"])
    def reapply_events(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        if not self.has_reapply_permission(request):
            raise PermissionDenied
        for event in queryset.order_by("received_at", "pk"):
            label = f"{event.event} {event.external_order_id or event.order_session_key} ({event.nonce})"
            # reapply_event never raises: the outcome is on the returned event.
            result = webhooks.reapply_event(event, request.user)
            level = REAPPLY_LEVELS.get(result.status, messages.INFO)
            detail = f": {result.error}" if result.error else ""
            self.message_user(request, f"{label}: {result.get_status_display()}{detail}", level)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = (
        columns.refund_amount,
        "order_display",
        columns.refund_outcome,
        "reason",
        "requested_by",
        "created",
    )
    list_filter = ("outcome", "created")
    search_fields = ("order__order_id", "=order__order_session_key", "reason")
    list_select_related = ("order", "requested_by")
    actions = ["settle_made", "settle_not_made"]
    shown_as = {"amount": "amount_display"}

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return format_amount(obj.amount, obj.currency)

    @admin.display(description=_("order"), ordering="order__order_id")
    def order_display(self, obj: Refund) -> str:
        return order_link(obj.order)

    def has_settle_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_flexcharge.refund_flexchargeorder")

    @admin.action(
        description=_("Unconfirmed refunds: FlexCharge made them (checked in the portal)"),
        permissions=["settle"],
    )
    def settle_made(self, request: HttpRequest, queryset: QuerySet[Refund]) -> None:
        self._settle(request, queryset, made=True)

    @admin.action(
        description=_("Unconfirmed refunds: FlexCharge did not make them (checked in the portal)"),
        permissions=["settle"],
    )
    def settle_not_made(self, request: HttpRequest, queryset: QuerySet[Refund]) -> None:
        self._settle(request, queryset, made=False)

    def _settle(self, request: HttpRequest, queryset: QuerySet[Refund], *, made: bool) -> None:
        """For accounts whose order answer has no refunded total, so sync cannot settle them."""
        if not self.has_settle_permission(request):
            raise PermissionDenied
        for refund in queryset.select_related("order").order_by("pk"):
            try:
                settled = settle_by_hand(refund, made=made, user=request.user)
            except FlexChargeError as exc:
                self.message_user(request, f"{refund}: {exc}", messages.WARNING)
            else:
                self.message_user(request, f"{settled}: {settled.outcome}.", messages.SUCCESS)


@admin.register(Transmission)
class TransmissionAdmin(ReadOnlyAdmin):
    inlines = [CallAttemptInline]
    list_display = (
        "order_id",
        "transaction_id",
        columns.transmission_amount,
        columns.transmission_status,
        "attempts",
        "created",
    )
    list_filter = ("status", "created")
    search_fields = ("order_id", "transaction_id", "=transmit_id")
    shown_as = {"amount": "amount_display"}

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj: Transmission) -> str:
        return format_amount(obj.amount, obj.currency)


@admin.register(VaultedCard)
class VaultedCardAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "holder_name", "email", "customer", "created")
    list_filter = ("brand", "created")
    search_fields = ("=token", "last4", "email", "holder_name")
    list_select_related = ("customer",)
