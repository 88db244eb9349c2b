"""The order page's toolbar: "Sync from FlexCharge" and "Retry now", each a POST to its own admin URL.

Both act on delivery, not on money: they take the order's change permission
(``django_flexcharge.change_flexchargeorder``), which the admin grants to
nobody by default, even though no field of an order is editable by hand.
A button is shown only when it may be used now: Sync needs FlexCharge's order
id; Retry now needs a queued order no worker holds. The views check again,
since a page can be stale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import delivery
from ..exceptions import FlexChargeError
from ..models import FlexChargeOrder
from ..sync import sync_order
from ..tasks import deliver_evaluation

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

Status = FlexChargeOrder.Status
PERMISSION = "django_flexcharge.change_flexchargeorder"


def may_sync(order: FlexChargeOrder) -> bool:
    return bool(order.order_session_key)


def may_retry(order: FlexChargeOrder) -> bool:
    held = order.locked_until is not None and order.locked_until > timezone.now()
    return order.status == Status.QUEUED and not held


#: The order page's buttons: name (and URL name suffix), when shown, label, help.
BUTTONS = (
    (
        "sync",
        may_sync,
        gettext_lazy("Sync from FlexCharge"),
        gettext_lazy("Ask FlexCharge for this order's status and apply it."),
    ),
    (
        "retry",
        may_retry,
        gettext_lazy("Retry now"),
        gettext_lazy("Send the stored /evaluate again now, with the same idempotency key."),
    ),
)


def toolbar(request: HttpRequest, order: FlexChargeOrder | None) -> list[dict[str, str]]:
    """The buttons this user may press on this order now: name, label, url, help."""
    if order is None or order.pk is None or not request.user.has_perm(PERMISSION):
        return []
    return [
        {
            "name": name,
            "label": str(label),
            "url": reverse(f"admin:django_flexcharge_flexchargeorder_{name}", args=[order.pk]),
            "help": str(help_text),
        }
        for name, shown, label, help_text in BUTTONS
        if shown(order)
    ]


def urls(model_admin: ModelAdmin[FlexChargeOrder]) -> list[URLPattern]:
    def wrap(view: Any) -> Any:
        return model_admin.admin_site.admin_view(view)

    return [
        path(
            "<path:object_id>/sync/",
            wrap(lambda request, object_id: sync_view(model_admin, request, object_id)),
            name="django_flexcharge_flexchargeorder_sync",
        ),
        path(
            "<path:object_id>/retry/",
            wrap(lambda request, object_id: retry_view(model_admin, request, object_id)),
            name="django_flexcharge_flexchargeorder_retry",
        ),
    ]


def _order(request: HttpRequest, object_id: str) -> FlexChargeOrder:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    return get_object_or_404(FlexChargeOrder, pk=object_id)


def _back(order: FlexChargeOrder) -> HttpResponseRedirect:
    return HttpResponseRedirect(
        reverse("admin:django_flexcharge_flexchargeorder_change", args=[order.pk])
    )


def sync_view(model_admin: Any, request: HttpRequest, object_id: str) -> Any:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    order = _order(request, object_id)
    if not may_sync(order):
        model_admin.message_user(
            request, _("%(order)s has no FlexCharge order id yet.") % {"order": order.order_id}
        )
        return _back(order)
    before = order.status
    try:
        order = sync_order(order, user=request.user)
    except FlexChargeError as exc:
        text = _("%(order)s: could not sync: %(error)s")
        model_admin.message_user(
            request, text % {"order": order.order_id, "error": exc}, messages.ERROR
        )
        return _back(order)
    values = {"order": order.order_id, "status": order.get_status_display()}
    if order.status == before:
        text = _("%(order)s: FlexCharge agrees; the order is still %(status)s.")
    else:
        text = _("%(order)s: synced from FlexCharge; the order is now %(status)s.")
    model_admin.message_user(request, text % values, messages.SUCCESS)
    return _back(order)


def retry_view(model_admin: Any, request: HttpRequest, object_id: str) -> Any:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    order = _order(request, object_id)
    if delivery.retry_now(FlexChargeOrder, deliver_evaluation, order.pk):
        text = _("%(order)s: /evaluate will be sent again now (same idempotency key).")
        level = messages.SUCCESS
    else:
        text = _("%(order)s: not retried: it is not queued, or a worker is sending it right now.")
        level = messages.WARNING
    model_admin.message_user(request, text % {"order": order.order_id}, level)
    return _back(order)
