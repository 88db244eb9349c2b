"""Request bodies of ``/tokenize``, ``/transmit`` and ``/evaluate``, built from ``types``.

Names follow flexcharge-api.md §4-§6 exactly (snake_case for ``/tokenize``,
camelCase elsewhere). Bodies are built once, when a row is stored, and kept
on it: every retry sends the same body with the same ``idempotencyKey``.

Only ``tokenize_body`` ever sees a PAN or CVV, and its result is sent, never
stored. ``/evaluate`` carries the vault token; ``/transmit`` card metadata.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.utils import timezone

from .conf import conf
from .models import FlexChargeOrder, VaultedCard
from .types import BillingAddress, Card, Payer, Payment, Subscription

#: FlexCharge requires the result codes; "NA" is its documented "not available".
NOT_AVAILABLE = "NA"
#: ``responseCode`` / ``responseCodeSource`` are required (§6.2, ASP.NET refuses an
#: empty string); an approval the host describes without them gets these.
APPROVED_CODE = "00"
UNKNOWN_SOURCE = "unspecified"


def utc_iso(value: dt.datetime) -> str:
    """``2024-06-10T14:30:00Z``: ISO-8601 in UTC with a ``Z``, as FlexCharge's examples."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tokenize_body(card: Card, *, email: str = "", sense_key: str = "") -> dict[str, Any]:
    """The current (snake_case) ``/tokenize`` body of §4. Holds the PAN: send it, never keep it."""
    method: dict[str, Any] = {
        "credit_card": {
            "first_name": card.first_name,
            "last_name": card.last_name,
            "number": card.number,
            "verification_value": card.cvv,
            "month": f"{card.exp_month:02d}",
            "year": f"{card.exp_year:04d}",
        }
    }
    if email:
        method["email"] = email
    if sense_key:
        method["sense_key"] = sense_key
    return {"payment_method": method}


def _utc_offset_hours(value: dt.datetime) -> int:
    # FlexCharge types timezoneUtcOffset as an int without saying the unit;
    # hours is what its samples imply. Half-hour zones round toward zero.
    offset = value.utcoffset() or dt.timedelta(0)
    return int(offset.total_seconds() / 3600)


def transaction(payment: Payment, *, status: str) -> dict[str, Any]:
    """The ``transaction`` object (§6.2) of a processor answer with ``responseStatus`` ``status``."""
    when = payment.when
    return {
        "id": payment.transaction_id,
        "timestampUtc": utc_iso(when),
        "timezoneUtcOffset": _utc_offset_hours(when),
        "amount": payment.amount,
        "currency": payment.currency,
        "responseCode": payment.response_code,
        "responseDescription": payment.response_description,
        "responseStatus": status,
        "responseCodeSource": payment.processor,
        "processorName": payment.processor,
        "avsResultCode": payment.avs_result_code or NOT_AVAILABLE,
        "cvvResultCode": payment.cvv_result_code or NOT_AVAILABLE,
        "cavvResultCode": payment.cavv_result_code or NOT_AVAILABLE,
        # Server-side MIT and stored-card charges never see the card present.
        "cardNotPresent": True,
    }


def payer_body(payer: Payer | None) -> dict[str, Any]:
    if payer is None:
        # The email is required; "NA" is what published clients send when unknown.
        return {"email": NOT_AVAILABLE}
    body: dict[str, Any] = {"email": payer.email}
    if payer.id:
        body["id"] = payer.id
    if payer.phone:
        body["phone"] = payer.phone
    if payer.birthdate:
        body["birthdate"] = payer.birthdate.isoformat()
    return body


def billing_body(billing: BillingAddress) -> dict[str, Any]:
    body: dict[str, Any] = {
        "firstName": billing.first_name,
        "lastName": billing.last_name,
        # ``country`` is required as well as ``countryCode``; the code stands in for a name.
        "country": billing.country or billing.country_code,
        "countryCode": billing.country_code,
        "addressLine1": billing.address_line1,
        "city": billing.city,
        "zipcode": billing.zipcode,
    }
    for key, value in (
        ("addressLine2", billing.address_line2),
        ("state", billing.state),
        ("phone", billing.phone),
    ):
        if value:
            body[key] = value
    return body


def card_metadata(card: Card | VaultedCard | None, card_type: str = "") -> dict[str, Any]:
    """``paymentMethod`` without a card number: what ``/transmit`` needs.

    Only what is known is sent: ``cardType`` when the payment says (a card
    number does not tell credit from debit), no empty strings.
    """
    if card is None:
        return {}
    body: dict[str, Any] = {
        "holderName": card.holder_name,
        "cardType": card_type,
        "cardBrand": card.brand,
        "cardBinNumber": card.bin,
        "cardLast4Digits": card.last4,
        "expirationMonth": card.exp_month,
        "expirationYear": card.exp_year,
    }
    return {key: value for key, value in body.items() if value not in ("", None)}


def vaulted_payment_method(card: VaultedCard, card_type: str = "") -> dict[str, Any]:
    """``paymentMethod`` of ``/evaluate``: the vault token in ``cardNumber`` with ``token: true``."""
    return {"cardNumber": card.token, "token": True, **card_metadata(card, card_type)}


def subscription_body(subscription: Subscription) -> dict[str, Any]:
    """§6.3: the sample model types price and counters as strings; price in cents."""
    return {
        "subscriptionId": subscription.id,
        "interval": subscription.interval,
        "price": str(subscription.price),
        "currency": subscription.currency,
        "paymentNumber": _str_or_none(subscription.payment_number),
        "totalPayments": _str_or_none(subscription.total_payments),
    }


def _str_or_none(value: int | None) -> str | None:
    return None if value is None else str(value)


def transmit_body(
    payment: Payment,
    *,
    idempotency_key: str,
    card: Card | VaultedCard | None = None,
    payer: Payer | None = None,
    billing: BillingAddress | None = None,
    account: str = "default",
) -> dict[str, Any]:
    """``/transmit`` for an approved payment. ``idempotencyKey`` is an extra FlexCharge ignores
    (FlexCharge defines none) that lets duplicates be counted; ``isMIT`` is ``payment.is_mit`` (a
    renewal is merchant-initiated). Without a card, ``paymentMethod`` is left out rather
    than sent empty: FlexCharge's documents mark it required, so an empty object would
    only be refused or misread; a missing one at least names the field."""
    body: dict[str, Any] = {
        "isDeclined": False,
        "idempotencyKey": idempotency_key,
        "mid": conf.account(account).MID,
        "orderId": payment.order_id,
        "isMIT": payment.is_mit,
        "transaction": transaction(payment, status="APPROVED"),
        "payer": payer_body(payer),
    }
    method = card_metadata(card, payment.card_type)
    if method:
        body["paymentMethod"] = method
    # An approval copy may come without a processor code; never send "" for them.
    txn = body["transaction"]
    txn["responseCode"] = txn["responseCode"] or APPROVED_CODE
    txn["responseCodeSource"] = txn["responseCodeSource"] or UNKNOWN_SOURCE
    txn["processorName"] = txn["processorName"] or UNKNOWN_SOURCE
    if billing is not None:
        body["billingInformation"] = billing_body(billing)
    return body


def evaluate_body(
    payment: Payment,
    *,
    idempotency_key: str,
    card: VaultedCard,
    payer: Payer,
    billing: BillingAddress,
    subscription: Subscription | None = None,
    is_mit: bool = True,
    now: dt.datetime | None = None,
    account: str = "default",
) -> dict[str, Any]:
    """``/evaluate`` for a decline (§6.2). A managed MIT carries ``expiryDateUtc`` =
    ``now`` + ``FLEXCHARGE_MIT_EXPIRY_DAYS``; a customer-initiated evaluate has none."""
    now = now or timezone.now()
    settings = conf.account(account)
    body: dict[str, Any] = {
        "isDeclined": True,
        "idempotencyKey": idempotency_key,
        "mid": settings.MID,
        "siteId": settings.SITE_ID,
        "orderId": payment.order_id,
        "isMIT": is_mit,
        "isRecurring": subscription is not None,
    }
    if is_mit:
        body["expiryDateUtc"] = utc_iso(now + dt.timedelta(days=settings.MIT_EXPIRY_DAYS))
    body["transaction"] = transaction(payment, status="DECLINED")
    body["payer"] = payer_body(payer)
    body["billingInformation"] = billing_body(billing)
    body["paymentMethod"] = vaulted_payment_method(card, payment.card_type)
    if subscription is not None:
        body["subscription"] = subscription_body(subscription)
    return body


def cancel_idempotency_key(order: FlexChargeOrder) -> str:
    """A cancel's own key, the same on every retry of it.

    Derived from the order's key rather than equal to it: FlexCharge answers
    409 to a key reused with a different body, and the order's key already
    went out with the ``/evaluate`` body.
    """
    return str(uuid.uuid5(uuid.UUID(str(order.idempotency_key)), "cancel"))
