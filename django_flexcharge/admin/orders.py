"""The FlexChargeOrder admin: read-only order pages, Refund and Cancel actions, the dashboard URL.

Money and status change only through ``services`` (which talk to FlexCharge
and keep the state machine) or webhooks, never by hand. Both actions show an
intermediate page first and report one message per order with FlexCharge's
answer, as dj-stripe's actions do. Each needs its custom permission
(``refund_flexchargeorder``, ``cancel_flexchargeorder``): ``get_actions()``
hides it from other staff, Django refuses the POST of an action it does not
list, and the action checks again before calling FlexCharge.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from .. import services
from ..exceptions import FlexChargeAPIError, FlexChargeError
from ..forms import RefundForm
from ..models import FlexChargeOrder, Refund, WebhookEvent
from ..money import format_amount
from ..refunds import REFUNDABLE, open_refunds, refundable_rest, unsettled_message
from . import buttons, columns, dashboard, exports
from .audit import ReadOnlyAdmin, ReadOnlyInline

Status = FlexChargeOrder.Status


#: What the admin says when FlexCharge refused an action, and when it was not sent.
REFUND_FAILED = (
    _("%(order)s: FlexCharge refused the refund: %(error)s"),
    _("%(order)s: not refunded: %(error)s"),
)
CANCEL_FAILED = (
    _("%(order)s: FlexCharge refused the cancel: %(error)s"),
    _("%(order)s: not cancelled: %(error)s"),
)


def flexcharge_answer(response: dict[str, Any] | None) -> str:
    """FlexCharge's own words from a response body (status, message), or "" when it said nothing."""
    parts = [str((response or {}).get(key) or "") for key in ("status", "responseMessage")]
    return " - ".join(part for part in parts if part)


def _totals(forms: list[RefundForm]) -> list[str]:
    """The confirmed sums added up per currency, for the confirmation page's headline."""
    sums: dict[str, int] = {}
    for form in forms:
        currency = form.order.currency
        sums[currency] = sums.get(currency, 0) + form.cleaned_data["amount_minor"]
    return [format_amount(amount, currency) for currency, amount in sorted(sums.items())]


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = (
        "created",
        "amount_display",
        "outcome",
        "response_code",
        "response_message",
        "reason",
        "requested_by",
        "error",
    )
    readonly_fields = fields

    @admin.display(description=_("amount"))
    def amount_display(self, obj: Refund) -> str:
        return format_amount(obj.amount, obj.currency)


class WebhookEventInline(ReadOnlyInline):
    model = WebhookEvent
    fk_name = "order"
    fields = ("event", "status", "timestamp", "received_at", "resent", "error")
    readonly_fields = fields

    @admin.display(description=_("resent"))
    def resent(self, obj: WebhookEvent) -> str:
        return columns.event_resent(obj)


@admin.register(FlexChargeOrder)
class FlexChargeOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "order_id",
        columns.order_status,
        columns.order_amount,
        columns.order_refunded,
        "email",
        columns.order_mode,
        columns.order_initiator,
        "created",
    )
    list_filter = ("status", "created", "is_test_mode")
    search_fields = ("order_id", "=order_session_key", "email")
    date_hierarchy = "created"
    actions = ["refund_orders", "cancel_orders"]
    inlines = [RefundInline, WebhookEventInline]
    fieldsets = [
        (
            None,
            {
                "fields": (
                    "order_id",
                    "status_display",
                    "amount_display",
                    "refunded_display",
                    "email",
                )
            },
        ),
        (
            _("Payment"),
            {"fields": ("subscription_id", "transaction_id", "processor", "card", "is_mit")},
        ),
        (_("Decline"), {"fields": ("declined_at", "decline_code", "decline_message")}),
        (
            _("FlexCharge"),
            {
                "fields": (
                    "order_session_key",
                    "confirmation_id",
                    "idempotency_key",
                    "is_test_mode",
                    "expiry_date",
                    "submitted_at",
                    "resolved_at",
                    "last_event_at",
                    "last_synced_at",
                )
            },
        ),
        (
            _("Delivery"),
            {"fields": ("attempts", "next_attempt_at", "locked_until", "last_error", "api_errors")},
        ),
        (
            _("Payloads"),
            {"classes": ["collapse"], "fields": ("request_payload", "response_payload")},
        ),
        (_("Timestamps"), {"fields": ("created", "updated")}),
    ]
    readonly_fields = ("status_display", "amount_display", "refunded_display")

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: FlexChargeOrder) -> SafeString:
        return columns.order_status(obj)  # the list's badge, with its text

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj: FlexChargeOrder) -> str:
        return obj.display_amount

    @admin.display(description=_("refunded"), ordering="refunded_amount")
    def refunded_display(self, obj: FlexChargeOrder) -> str:
        if obj.refunded_amount_unknown:
            # FlexCharge reported a refund without its amount; flexcharge_sync asks for it.
            return _("unknown, at least %(amount)s (waiting for flexcharge_sync)") % {
                "amount": format_amount(obj.refunded_amount, obj.currency)
            }
        return format_amount(obj.refunded_amount, obj.currency) if obj.refunded_amount else "-"

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_flexcharge.refund_flexchargeorder")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_flexcharge.cancel_flexchargeorder")

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.dashboard_view)
        order_view = self.admin_site.admin_view(self.order_action_view)
        return [
            path("dashboard/", view, name="django_flexcharge_dashboard"),
            path(
                "dashboard/export/",
                self.admin_site.admin_view(lambda request: exports.export_view(self, request)),
                name="django_flexcharge_dashboard_export",
            ),
            *buttons.urls(self),
            # The order page's own Refund and Cancel buttons: the actions, for one order.
            path(
                "<path:object_id>/refund/",
                order_view,
                {"action": "refund"},
                name="django_flexcharge_flexchargeorder_refund",
            ),
            path(
                "<path:object_id>/cancel/",
                order_view,
                {"action": "cancel"},
                name="django_flexcharge_flexchargeorder_cancel",
            ),
            *super().get_urls(),
        ]

    def order_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """Refund or cancel one order from its page: the same permission and pages as the action."""
        allowed = self.has_refund_permission if action == "refund" else self.has_cancel_permission
        if not allowed(request):
            raise PermissionDenied
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404(f"No FlexCharge order with primary key {object_id!r}")
        run = self.refund_orders if action == "refund" else self.cancel_orders
        response = run(request, FlexChargeOrder.objects.filter(pk=order.pk))
        if response is not None:
            return response
        return HttpResponseRedirect(
            reverse("admin:django_flexcharge_flexchargeorder_change", args=[order.pk])
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        order = self.get_object(request, unquote(object_id))
        buttons = []
        if order is not None:
            if order.status in REFUNDABLE and self.has_refund_permission(request):
                buttons.append(("refund", _("Refund")))
            if order.status == Status.PENDING and self.has_cancel_permission(request):
                buttons.append(("cancel", _("Cancel at FlexCharge")))
        context = {**(extra_context or {}), "flexcharge_buttons": buttons}
        return super().change_view(request, object_id, form_url, context)

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = dashboard.dashboard_view(self, request)
        return response

    def _page(self, request: HttpRequest, template: str, **context: Any) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            **context,
        }
        return TemplateResponse(
            request, f"admin/django_flexcharge/flexchargeorder/{template}", context
        )

    @admin.action(description=_("Refund selected orders"), permissions=["refund"])
    def refund_orders(
        self, request: HttpRequest, queryset: QuerySet[FlexChargeOrder]
    ) -> TemplateResponse | None:
        """Form -> confirmation page stating each exact sum -> refunds (three POSTs, no JavaScript)."""
        if not self.has_refund_permission(request):
            raise PermissionDenied
        refundable = []
        # One query for every selected order's unsettled refunds, not one per order.
        selected = queryset.annotate(open_refunds=open_refunds()).order_by("pk")
        for order in selected:
            rest = refundable_rest(order, open_count=order.open_refunds)
            if rest > 0:
                refundable.append((order, rest))
            elif order.open_refunds:
                text = _("%(order)s skipped: %(why)s")
                values = {"order": order.order_id, "why": unsettled_message(order)}
                self.message_user(request, text % values, messages.WARNING)
            else:
                self.message_user(
                    request,
                    _("%(order)s skipped: it is %(status)s; only approved orders can be refunded.")
                    % {"order": order.order_id, "status": order.get_status_display()},
                    messages.WARNING,
                )
        if not refundable:
            return None
        confirming = "confirm" in request.POST
        data = request.POST if confirming or "apply" in request.POST else None
        forms = [
            RefundForm(data, order=order, rest=rest, confirming=confirming)
            for order, rest in refundable
        ]
        # Validate every row before refunding any: one page, one decision.
        if data is not None and all([form.is_valid() for form in forms]):
            if not confirming:
                return self._page(
                    request,
                    "refund_confirm.html",
                    title=_("Confirm the refunds"),
                    forms=forms,
                    totals=_totals(forms),
                )
            for form in forms:
                self._refund_one(request, form)
            return None
        has_errors = any(form.errors for form in forms)
        return self._page(
            request, "refund.html", title=_("Refund orders"), forms=forms, has_errors=has_errors
        )

    def _refund_one(self, request: HttpRequest, form: RefundForm) -> None:
        order = form.order
        try:
            refund = services.refund_order(
                order,
                form.cleaned_data["amount_minor"],
                reason=form.cleaned_data["reason"],
                user=request.user,
            )
        except FlexChargeError as exc:
            self._failed(request, order, exc, REFUND_FAILED)
            return
        values = {
            "order": order.order_id,
            "amount": format_amount(refund.amount, refund.currency),
            "answer": flexcharge_answer(refund.response),
        }
        if values["answer"]:
            text = _("%(order)s: refunded %(amount)s; FlexCharge answered %(answer)s.")
            self.message_user(request, text % values, messages.SUCCESS)
        else:
            self.message_user(request, _("%(order)s: refunded %(amount)s.") % values)

    def _failed(
        self, request: HttpRequest, order: FlexChargeOrder, exc: FlexChargeError, texts: Any
    ) -> None:
        """Report a failed action by the error's policy (``texts``: refused, not done)."""
        if exc.outcome_unknown:
            # FlexCharge may have acted: a warning to check, not an error to retry.
            text = _("%(order)s: no confirmed answer from FlexCharge. %(error)s")
            values = {"order": order.order_id, "error": exc}
            self.message_user(request, text % values, messages.WARNING)
        else:
            refused, not_done = texts
            self._error(
                request, refused if isinstance(exc, FlexChargeAPIError) else not_done, order, exc
            )

    def _error(
        self, request: HttpRequest, text: Any, order: FlexChargeOrder, exc: Exception
    ) -> None:
        self.message_user(request, text % {"order": order.order_id, "error": exc}, messages.ERROR)

    @admin.action(description=_("Cancel selected pending orders"), permissions=["cancel"])
    def cancel_orders(
        self, request: HttpRequest, queryset: QuerySet[FlexChargeOrder]
    ) -> TemplateResponse | None:
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        pending = []
        for order in queryset.order_by("pk"):
            if order.status == Status.PENDING:
                pending.append(order)
            else:
                self.message_user(
                    request,
                    _("%(order)s skipped: it is %(status)s; only pending orders can be cancelled.")
                    % {"order": order.order_id, "status": order.get_status_display()},
                    messages.WARNING,
                )
        if not pending:
            return None
        if "apply" not in request.POST:
            return self._page(request, "cancel.html", title=_("Cancel orders"), orders=pending)
        for order in pending:
            try:
                order = services.cancel_order(order, user=request.user)
            except FlexChargeError as exc:
                self._failed(request, order, exc, CANCEL_FAILED)
            else:
                text = _("%(order)s: FlexCharge accepted the cancel; the order is now %(status)s.")
                values = {"order": order.order_id, "status": order.get_status_display()}
                self.message_user(request, text % values, messages.SUCCESS)
        return None
