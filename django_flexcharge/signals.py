"""Signals in (sent by the host) and out (sent by the app, after commit, once per real change)."""

from django.dispatch import Signal

# --- sent by the host; the app's receivers (receivers.py) call the services ---

#: A payment was approved. kwargs: ``payment`` (types.Payment), optional ``card``
#: (types.Card or VaultedCard), ``payer`` (types.Payer), ``billing`` (types.BillingAddress).
payment_approved = Signal()

#: A payment was declined. kwargs: ``payment``, ``card``, ``payer``, ``billing``,
#: optional ``subscription`` (types.Subscription) and ``is_mit`` (bool, default True).
payment_declined = Signal()

# --- sent by the app, after the transaction commits ---

#: An order changed status. kwargs: ``order`` (FlexChargeOrder), ``previous_status`` (str),
#: ``event`` (the WebhookEvent that caused it, or None).
order_status_changed = Signal()

#: FlexCharge rescued the payment. kwargs: ``order``, ``event``.
order_approved = Signal()
#: The rescue window ended without a rescue. kwargs: ``order``, ``event``.
order_expired = Signal()
#: FlexCharge declined the order (not eligible). kwargs: ``order``, ``event``.
order_declined = Signal()
#: The order was cancelled (by the merchant or FlexCharge). kwargs: ``order``, ``event``.
order_cancelled = Signal()
#: Money went back to the customer (full or partial). kwargs: ``order``, ``event``.
order_refunded = Signal()
