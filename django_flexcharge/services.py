"""The Python API (CONTRACT §4): hand cards, approvals and declines to FlexCharge.

``vault_card`` is synchronous: checkout needs the token. ``transmit_approved_payment``
and ``evaluate_declined_payment`` only write a row in the caller's transaction
and queue its delivery (with the row when the queue is ``django_tasks_db`` on
the same database, otherwise on commit), so the caller does no network I/O and
a rolled-back transaction sends nothing. ``refund_order``,
``cancel_order`` and ``sync_order`` act on an order FlexCharge already holds;
they live in ``refunds``, ``cancel`` and ``sync`` and are importable from here.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import payloads
from .accounts import DEFAULT, check_alias
from .cancel import cancel_order
from .client import get_client
from .conf import conf
from .exceptions import FlexChargeAPIError, FlexChargeValidationError
from .models import FlexChargeOrder, Transmission, VaultedCard
from .new_rows import create_with_task
from .redaction import Secret
from .refunds import refund_order
from .sync import sync_order
from .tasks import deliver_evaluation, deliver_transmission
from .types import BillingAddress, Card, Payer, Payment, Subscription

__all__ = [
    "cancel_order",
    "evaluate_declined_payment",
    "is_under_rescue",
    "refund_order",
    "sync_order",
    "transmit_approved_payment",
    "vault_card",
]

logger = logging.getLogger("django_flexcharge.services")

#: Processor and server clocks differ a little; a decline this far "in the future" is accepted.
CLOCK_SKEW = dt.timedelta(minutes=5)


def _require(name: str, value: object, kind: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, kind):
        raise FlexChargeValidationError(name, f"must be {what}")


@sensitive_variables()
def vault_card(
    card: Card,
    *,
    customer: Any = None,
    email: str = "",
    sense_key: str = "",
    account: str = DEFAULT,
) -> VaultedCard:
    """Vault ``card`` with ``/tokenize`` and store the token with display data.

    Synchronous: one HTTP request. The PAN and CVV go into that request body
    and nowhere else; the ``VaultedCard`` keeps last4, BIN, brand, expiry and
    holder name. ``customer`` (a user; an anonymous user counts as none) and
    ``email`` are stored for the host's own lookups. ``account`` is the
    FlexCharge account (alias) that vaults it; the card is usable under it only.
    """
    check_alias(account)
    _require("card", card, Card, "a django_flexcharge.types.Card")
    _require("email", email, str, "a string")
    _require("sense_key", sense_key, str, "a string")
    email = email.strip()
    if email:
        try:
            validate_email(email)
        except ValidationError as err:
            raise FlexChargeValidationError("email", "is not a valid email address") from err
    if customer is not None and not getattr(customer, "is_authenticated", False):
        customer = None
    # The body holds the PAN: it is wrapped at once (a Secret's repr is redacted)
    # and is no local of this frame, so no error report or tracker shows it.
    data = get_client(account).tokenize(
        Secret(payloads.tokenize_body(card, email=email, sense_key=sense_key.strip()))
    )
    method = (data.get("transaction") or {}).get("payment_method") or {}
    token = str(method.get("token") or "") if isinstance(method, dict) else ""
    if not token:
        raise FlexChargeAPIError(
            "FlexCharge /tokenize returned no token",
            status=200,
            code=str(data.get("statusCode") or ""),
            response={k: data.get(k) for k in ("success", "status", "result", "errors")},
        )
    vaulted, _ = VaultedCard.objects.update_or_create(
        account=account,
        token=token,
        defaults={
            "last4": card.last4,
            "bin": card.bin,
            "brand": card.brand,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "holder_name": card.holder_name[:200],
            "email": email,
            "customer": customer,
        },
    )
    logger.info("Vaulted card ****%s (VaultedCard %s, %s)", card.last4, vaulted.pk, account)
    return vaulted


def transmit_approved_payment(
    payment: Payment,
    *,
    card: Card | VaultedCard | None = None,
    payer: Payer | None = None,
    billing: BillingAddress | None = None,
    account: str = DEFAULT,
) -> Transmission:
    """Record a copy of an approved payment; ``/transmit`` goes out after commit.

    One row per (account, order id, transaction id): calling again returns the
    stored row and sends nothing more. From a ``Card`` only metadata is used.
    """
    check_alias(account)
    _require("payment", payment, Payment, "a django_flexcharge.types.Payment")
    if card is not None:
        _require("card", card, (Card, VaultedCard), "a types.Card, a VaultedCard or None")
        if isinstance(card, VaultedCard):
            _same_account(card, account)
    if payer is not None:
        _require("payer", payer, Payer, "a django_flexcharge.types.Payer or None")
    if billing is not None:
        _require("billing", billing, BillingAddress, "a types.BillingAddress or None")
    lookup = {
        "account": account,
        "order_id": payment.order_id,
        "transaction_id": payment.transaction_id,
    }
    # No SELECT first: the unique (order_id, transaction_id) constraint finds a
    # repeat in the INSERT itself (one query less on every approval).
    key = uuid.uuid4()
    body = payloads.transmit_body(
        payment, idempotency_key=str(key), card=card, payer=payer, billing=billing, account=account
    )
    try:
        return create_with_task(
            Transmission,
            deliver_transmission,
            lambda: Transmission(
                **lookup,
                amount=payment.amount,
                currency=payment.currency,
                payload=body,
                idempotency_key=key,
            ),
        )
    except IntegrityError:
        # The same payment recorded before (or concurrently): that row is the one.
        stored = Transmission.objects.filter(**lookup).first()
        if stored is None:
            raise  # another constraint: not a repeat
        return stored


def _check_decline(payment: Payment, now: dt.datetime, account: str) -> None:
    # FlexCharge requires these (flexcharge-api.md §6.2); refuse before storing.
    if not payment.response_code:
        raise FlexChargeValidationError("payment.response_code", "is required for /evaluate")
    if not payment.processor:
        raise FlexChargeValidationError("payment.processor", "is required for /evaluate")
    hours = conf.account(account).DECLINE_MAX_AGE
    if payment.when < now - dt.timedelta(hours=hours):
        raise FlexChargeValidationError(
            "payment.occurred_at",
            f"the decline is older than FLEXCHARGE_DECLINE_MAX_AGE ({hours:g} h); "
            "FlexCharge takes same-day declines only",
        )
    if payment.when > now + CLOCK_SKEW:
        raise FlexChargeValidationError("payment.occurred_at", "is in the future")


def _already_handed_over() -> FlexChargeValidationError:
    return FlexChargeValidationError("payment.order_id", "was already handed to FlexCharge")


def _same_account(card: VaultedCard, account: str) -> None:
    # A token is the merchant's: another FlexCharge account cannot charge it.
    if card.account != account:
        raise FlexChargeValidationError(
            "card",
            f"was vaulted under FlexCharge account {card.account!r}, not {account!r}",
        )


def _vaulted(card: object, payer: Payer, account: str) -> VaultedCard:
    if isinstance(card, VaultedCard):
        if card.pk is None:
            raise FlexChargeValidationError("card", "is a VaultedCard that was never saved")
        _same_account(card, account)
        return card
    if isinstance(card, str):
        found = VaultedCard.objects.filter(account=account, token=card.strip()).first()
        if found is None:
            raise FlexChargeValidationError(
                "card", f"no VaultedCard of account {account!r} has that token"
            )
        return found
    if isinstance(card, Card):
        # The one network call in the caller: pass the VaultedCard from checkout instead.
        return vault_card(card, email=payer.email, account=account)
    raise FlexChargeValidationError("card", "must be a VaultedCard, a vault token or a types.Card")


def evaluate_declined_payment(
    payment: Payment,
    *,
    card: VaultedCard | str | Card,
    payer: Payer,
    billing: BillingAddress,
    subscription: Subscription | None = None,
    is_mit: bool = True,
    account: str | None = None,
) -> FlexChargeOrder:
    """Record a declined payment as a ``queued`` order; ``/evaluate`` goes out after commit.

    Refused with ``FlexChargeValidationError`` (nothing stored, nothing sent):
    bad input, a decline older than ``FLEXCHARGE_DECLINE_MAX_AGE`` or in the
    future, an ``order_id`` already handed over. ``card`` is normally the
    ``VaultedCard`` from checkout (or its token); a ``types.Card`` is vaulted
    first, synchronously. ``account`` defaults to the ``VaultedCard``'s (else
    ``"default"``); a card of another account is refused.
    """
    if account is None:
        account = card.account if isinstance(card, VaultedCard) else DEFAULT
    check_alias(account)
    _require("payment", payment, Payment, "a django_flexcharge.types.Payment")
    _require("payer", payer, Payer, "a django_flexcharge.types.Payer")
    _require("billing", billing, BillingAddress, "a django_flexcharge.types.BillingAddress")
    if subscription is not None:
        _require("subscription", subscription, Subscription, "a types.Subscription or None")
    _require("is_mit", is_mit, bool, "True or False")
    now = timezone.now()
    _check_decline(payment, now, account)
    # A repeated order_id is normally found by the unique constraint in the
    # INSERT (no query before it); a Card would be vaulted first, so look first.
    if (
        isinstance(card, Card)
        and FlexChargeOrder.objects.filter(account=account, order_id=payment.order_id).exists()
    ):
        raise _already_handed_over()
    vaulted = _vaulted(card, payer, account)
    key = uuid.uuid4()
    body = payloads.evaluate_body(
        payment,
        idempotency_key=str(key),
        card=vaulted,
        payer=payer,
        billing=billing,
        subscription=subscription,
        is_mit=is_mit,
        now=now,
        account=account,
    )
    try:
        order = create_with_task(
            FlexChargeOrder,
            deliver_evaluation,
            lambda: FlexChargeOrder(
                account=account,
                order_id=payment.order_id,
                amount=payment.amount,
                currency=payment.currency,
                card=vaulted,
                subscription_id=subscription.id if subscription else "",
                transaction_id=payment.transaction_id,
                email=payer.email,
                is_mit=is_mit,
                declined_at=payment.when,
                decline_code=payment.response_code[:32],
                decline_message=payment.response_description[:255],
                processor=payment.processor[:64],
                idempotency_key=key,
                is_test_mode=conf.account(account).TEST_MODE,
                request_payload=body,
            ),
        )
    except IntegrityError as err:
        if not FlexChargeOrder.objects.filter(account=account, order_id=payment.order_id).exists():
            raise  # another constraint: not a repeat
        raise _already_handed_over() from err
    logger.info("Order %s queued for /evaluate", order.order_id)
    return order


def is_under_rescue(order_id: str, *, account: str = DEFAULT) -> bool:
    """True while FlexCharge holds ``order_id`` (queued or pending): do not retry it yourself."""
    return FlexChargeOrder.objects.filter(
        account=account, order_id=order_id, status__in=FlexChargeOrder.UNDER_RESCUE
    ).exists()
