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
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from .. import dashboard, exports, services
from ..exceptions import FlexChargeAPIError, FlexChargeError
from ..forms import RefundForm
from ..models import FlexChargeOrder, Refund, WebhookEvent
from ..money import format_amount
from ..order_actions import UNKNOWN_OUTCOME, pending_refunds, refundable_rest
from . import buttons, columns
from .audit import ReadOnlyAdmin

Status = FlexChargeOrder.Status


def flexcharge_answer(response: dict[str, Any] | None) -> str:
    """FlexCharge's own words from a response body (status, message), or "" when it said nothing."""
    parts = [str((response or {}).get(key) or "") for key in ("status", "responseMessage")]
    return " - ".join(part for part in parts if part)


class ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]  # generic only in the stubs
    """The order's refunds and webhook events, shown on its page; each links to its own."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ("created", "amount_display", "outcome", "reason", "requested_by", "error")
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
        (None, {"fields": ("order_id", "status", "amount_display", "refunded_display", "email")}),
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
    readonly_fields = ("amount_display", "refunded_display")

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj: FlexChargeOrder) -> str:
        return obj.display_amount

    @admin.display(description=_("refunded"), ordering="refunded_amount")
    def refunded_display(self, obj: FlexChargeOrder) -> str:
        return format_amount(obj.refunded_amount, obj.currency) if obj.refunded_amount else "-"

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_flexcharge.refund_flexchargeorder")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_flexcharge.cancel_flexchargeorder")

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.dashboard_view)
        return [
            path("dashboard/", view, name="django_flexcharge_dashboard"),
            path(
                "dashboard/export/",
                self.admin_site.admin_view(lambda request: exports.export_view(self, request)),
                name="django_flexcharge_dashboard_export",
            ),
            *buttons.urls(self),
            *super().get_urls(),
        ]

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
        if not self.has_refund_permission(request):
            raise PermissionDenied
        refundable = []
        # One query for every selected order's unanswered refunds, not one per order.
        selected = queryset.annotate(pending_refunds=pending_refunds()).order_by("pk")
        for order in selected:
            rest = refundable_rest(order, pending=order.pending_refunds)
            if rest > 0:
                refundable.append((order, rest))
            elif order.status in (Status.APPROVED, Status.PARTIALLY_REFUNDED):
                text = _(
                    "%(order)s skipped: nothing left to refund while earlier refunds await "
                    "FlexCharge's answer."
                )
                self.message_user(request, text % {"order": order.order_id}, messages.WARNING)
            else:
                self.message_user(
                    request,
                    _("%(order)s skipped: it is %(status)s; only approved orders can be refunded.")
                    % {"order": order.order_id, "status": order.get_status_display()},
                    messages.WARNING,
                )
        if not refundable:
            return None
        data = request.POST if "apply" in request.POST else None
        forms = [RefundForm(data, order=order, rest=rest) for order, rest in refundable]
        # Validate every row before refunding any: one page, one decision.
        if data is not None and all([form.is_valid() for form in forms]):
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
        except UNKNOWN_OUTCOME as exc:
            self.message_user(
                request,
                _(
                    "%(order)s: no answer from FlexCharge (%(error)s); the refund may have "
                    "gone through. Check the order before trying again."
                )
                % {"order": order.order_id, "error": exc},
                messages.WARNING,
            )
            return
        except FlexChargeAPIError as exc:
            text = _("%(order)s: FlexCharge refused the refund: %(error)s")
            self._error(request, text, order, exc)
            return
        except FlexChargeError as exc:
            self._error(request, _("%(order)s: not refunded: %(error)s"), order, exc)
            return
        values = {
            "order": order.order_id,
            "amount": format_amount(refund.amount, refund.currency),
            "answer": flexcharge_answer(refund.response),
        }
        if refund.outcome == Refund.Outcome.FAILED:
            values["answer"] = values["answer"] or refund.error
            text = _("%(order)s: FlexCharge refused the refund: %(answer)s")
            self.message_user(request, text % values, messages.ERROR)
        elif refund.outcome != Refund.Outcome.SUCCEEDED:
            # Sent, but not confirmed: a second refund now could pay out twice.
            text = _(
                "%(order)s: refund of %(amount)s sent but not confirmed by FlexCharge; "
                "check the order before trying again."
            )
            self.message_user(request, text % values, messages.WARNING)
        elif values["answer"]:
            text = _("%(order)s: refunded %(amount)s; FlexCharge answered %(answer)s.")
            self.message_user(request, text % values, messages.SUCCESS)
        else:
            self.message_user(request, _("%(order)s: refunded %(amount)s.") % values)

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
            except FlexChargeAPIError as exc:
                self._error(
                    request, _("%(order)s: FlexCharge refused the cancel: %(error)s"), order, exc
                )
            except FlexChargeError as exc:
                self._error(request, _("%(order)s: not cancelled: %(error)s"), order, exc)
            else:
                text = _("%(order)s: FlexCharge accepted the cancel; the order is now %(status)s.")
                values = {"order": order.order_id, "status": order.get_status_display()}
                self.message_user(request, text % values, messages.SUCCESS)
        return None
