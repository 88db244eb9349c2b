"""What the site does when FlexCharge reports back on a declined renewal.

django-flexcharge sends these signals after its transaction commits, once per
real status change, whether the news came by webhook, from ``/evaluate``'s
answer or from ``flexcharge_sync``. ``order.order_id`` is the ``Charge.order_id``
the site handed over, which is how each receiver finds its charge. Orders the
site does not know (none here, but a shared FlexCharge account could have
some) are ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.money import format_amount
from django_flexcharge.signals import (
    order_approved,
    order_cancelled,
    order_declined,
    order_expired,
    order_refunded,
    order_status_changed,
)

from .models import Charge, Subscription

logger = logging.getLogger(__name__)


def _locked_charge(order: FlexChargeOrder) -> Charge | None:
    """The charge for ``order`` and its subscription, locked against a concurrent webhook."""
    charge = Charge.objects.select_for_update().filter(order_id=order.order_id).first()
    if charge is None:
        logger.info("FlexCharge order %s is not one of our charges; ignored", order.order_id)
    elif charge.subscription_id is not None:
        # Lock the subscription row too, so a renewal run cannot interleave;
        # of=("self",) leaves the joined plan row unlocked.
        charge.subscription = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("plan")
            .get(pk=charge.subscription_id)
        )
    return charge


@receiver(order_approved, dispatch_uid="shop.rescued")
def renewal_rescued(sender: Any, order: FlexChargeOrder, **kwargs: Any) -> None:
    """FlexCharge collected the payment: the period is paid, the subscription active again."""
    with transaction.atomic():
        charge = _locked_charge(order)
        if charge is None or charge.rescued_at is not None:
            return
        charge.status = Charge.Status.APPROVED
        charge.rescued_at = timezone.now()
        charge.note = "Rescued by FlexCharge"
        charge.save(update_fields=["status", "rescued_at", "note"])
        sub = charge.subscription
        if sub is None:
            return
        sub.extend_period()
        if sub.status != Subscription.Status.CANCELLED:
            sub.status = Subscription.Status.ACTIVE
        sub.save(update_fields=["current_period_end", "payment_number", "status"])
        logger.info("%s rescued by FlexCharge: %s active", charge.order_id, sub.reference)


def _mark_past_due(order: FlexChargeOrder, note: str) -> None:
    with transaction.atomic():
        charge = _locked_charge(order)
        if charge is None:
            return
        charge.note = note
        charge.save(update_fields=["note"])
        sub = charge.subscription
        if sub is not None and sub.status == Subscription.Status.RESCUE_PENDING:
            # Our own dunning (emails, a retry with a new order id) takes over.
            sub.status = Subscription.Status.PAST_DUE
            sub.save(update_fields=["status"])


@receiver(order_expired, dispatch_uid="shop.rescue_expired")
def rescue_expired(sender: Any, order: FlexChargeOrder, **kwargs: Any) -> None:
    _mark_past_due(order, "FlexCharge could not rescue it before the window closed")


@receiver(order_declined, dispatch_uid="shop.rescue_declined")
def rescue_declined(sender: Any, order: FlexChargeOrder, **kwargs: Any) -> None:
    _mark_past_due(order, "FlexCharge declined to rescue it")


@receiver(order_status_changed, dispatch_uid="shop.rescue_failed")
def rescue_failed(sender: Any, order: FlexChargeOrder, **kwargs: Any) -> None:
    # "failed" has no signal of its own: the decline never reached FlexCharge
    # (refused input, or the same-day window passed while it was retried).
    if order.status == FlexChargeOrder.Status.FAILED:
        _mark_past_due(order, "Could not be handed to FlexCharge")


@receiver(order_cancelled, dispatch_uid="shop.rescue_cancelled")
def rescue_cancelled(sender: Any, order: FlexChargeOrder, **kwargs: Any) -> None:
    """Cancelled by us (the customer left) or by FlexCharge: either way, the subscription ends."""
    with transaction.atomic():
        charge = _locked_charge(order)
        if charge is None:
            return
        charge.note = "Rescue cancelled"
        charge.save(update_fields=["note"])
        sub = charge.subscription
        if sub is not None and sub.status != Subscription.Status.CANCELLED:
            sub.status = Subscription.Status.CANCELLED
            sub.cancelled_at = timezone.now()
            sub.save(update_fields=["status", "cancelled_at"])


@receiver(order_refunded, dispatch_uid="shop.rescue_refunded")
def rescue_refunded(sender: Any, order: FlexChargeOrder, **kwargs: Any) -> None:
    """A rescued payment went back to the customer: note it on the charge (access is a policy call)."""
    with transaction.atomic():
        charge = _locked_charge(order)
        if charge is None:
            return
        refunded = format_amount(order.refunded_amount, order.currency)
        charge.note = f"Rescued by FlexCharge; {refunded} refunded"
        charge.save(update_fields=["note"])
