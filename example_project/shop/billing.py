"""The site's billing flows, and the point in each where FlexCharge comes in.

``checkout()``  vaults the card at FlexCharge *while* the processor authorizes
                it, then on approval starts the subscription and sends
                ``payment_approved`` (the app queues a ``/transmit``).
``renew()``     charges a stored card without the customer (MIT); on a decline
                it sends ``payment_declined`` (the app queues an ``/evaluate``)
                and leaves that invoice to FlexCharge until it reports back.
``cancel()``    stops a pending rescue before cancelling the subscription.

Views and management commands call these; the receivers in ``receivers.py``
handle what FlexCharge reports later.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import connection, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from django_flexcharge import types
from django_flexcharge.exceptions import FlexChargeError
from django_flexcharge.models import FlexChargeOrder, VaultedCard
from django_flexcharge.services import cancel_order, is_under_rescue, vault_card
from django_flexcharge.signals import payment_approved, payment_declined

from .models import (
    BillingDetails,
    Charge,
    InvoiceNumber,
    Plan,
    Subscription,
    add_interval,
    payer_for,
)
from .processor import ProcessorResult, processor

logger = logging.getLogger(__name__)

# One pool for the whole process, so a burst of checkouts cannot start an
# unbounded number of threads; each vault call is one HTTP request.
_vault_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="flexcharge-vault")


# --- checkout: customer-initiated, the customer is waiting -------------------


@dataclass
class CheckoutResult:
    charge: Charge
    subscription: Subscription | None
    #: Why the card could not be vaulted; the sale still stands (see ``checkout``).
    vault_error: FlexChargeError | None = None

    @property
    def approved(self) -> bool:
        return self.subscription is not None


def _vault_in_thread(card: types.Card, **kwargs: Any) -> VaultedCard:
    try:
        return vault_card(card, **kwargs)
    finally:
        # Django opens a database connection per thread and closes it only at
        # the end of a request; pool threads live on, so close theirs here.
        connections.close_all()


def authorize_and_vault(
    card: types.Card, *, user: Any, plan: Plan, order_id: str, sense_key: str = ""
) -> tuple[ProcessorResult, VaultedCard | None, FlexChargeError | None]:
    """Run the processor's authorization and FlexCharge's ``/tokenize`` side by side.

    The customer waits for the slower of the two instead of both in a row
    (flexcharge-api.md §4: vaulting "can run in parallel with your PSP
    authorization"). Returns the processor's answer, the vaulted card (or
    None) and the vaulting error (or None).
    """
    if connection.in_atomic_block:
        # The vault thread writes the VaultedCard through its own connection:
        # it could not see this transaction's rows, and on SQLite it would
        # wait for this transaction's lock while this thread waits for it.
        raise RuntimeError("authorize_and_vault() must not run inside transaction.atomic()")
    vaulting = _vault_pool.submit(
        _vault_in_thread, card, customer=user, email=user.email, sense_key=sense_key
    )
    result = processor.authorize(
        order_id=order_id,
        amount=plan.price,
        currency=plan.currency,
        number=card.number,
        cvv=card.cvv,
    )
    try:
        return result, vaulting.result(), None
    except FlexChargeError as err:
        # FlexCharge's error messages never hold the request body (no PAN).
        logger.warning("Could not vault the card for order %s: %s", order_id, err)
        return result, None, err


def _send_approval(
    charge: Charge,
    *,
    card: types.Card | VaultedCard | None = None,
    payer: types.Payer | None = None,
    billing: types.BillingAddress | None = None,
    user: Any = None,
) -> None:
    """Send ``payment_approved`` for ``charge``: the app queues a ``/transmit``.

    The copy feeds FlexCharge's risk model; failing to queue it (bad customer
    data, say) is logged and must never undo a sale the processor approved,
    hence the savepoint and the payer built inside it.
    """
    try:
        with transaction.atomic():
            payment_approved.send(
                sender=Charge,
                payment=charge.as_flexcharge(),
                card=card,
                payer=payer if payer is not None or user is None else payer_for(user),
                billing=billing,
            )
    except FlexChargeError as err:
        logger.error("FlexCharge copy of %s not queued: %s", charge.order_id, err)


def _charge(result: ProcessorResult, plan: Plan, **fields: Any) -> Charge:
    """An unsaved ``Charge`` holding the processor's answer for ``plan``'s price."""
    return Charge(
        amount=plan.price,
        currency=plan.currency,
        status=Charge.Status.APPROVED if result.approved else Charge.Status.DECLINED,
        transaction_id=result.transaction_id,
        response_code=result.response_code,
        response_description=result.response_description,
        avs_result_code=result.avs_result_code,
        cvv_result_code=result.cvv_result_code,
        **fields,
    )


def checkout(
    *,
    user: Any,
    plan: Plan,
    card: types.Card,
    billing: dict[str, str],
    order_id: str,
    sense_key: str = "",
) -> CheckoutResult:
    """Charge the first period and start the subscription.

    ``card`` is already validated (``types.Card``); ``billing`` holds the
    ``BillingDetails`` fields. Bad billing data raises
    ``FlexChargeValidationError`` (naming the field) before anything is
    charged. A card FlexCharge could not vault does not stop a sale the
    processor approved: that subscription's declined renewals just cannot be
    rescued, which the log and ``CheckoutResult.vault_error`` report.
    """
    # Everything FlexCharge will be sent is validated before the card is charged.
    details = BillingDetails(user=user, **billing)
    details.as_flexcharge()
    types.Payer(email=user.email, id=str(user.pk), phone=details.phone)
    result, vaulted, vault_error = authorize_and_vault(
        card, user=user, plan=plan, order_id=order_id, sense_key=sense_key
    )
    return record_checkout(
        user=user,
        plan=plan,
        card=card,
        billing=billing,
        order_id=order_id,
        result=result,
        vaulted=vaulted,
        vault_error=vault_error,
    )


def record_checkout(
    *,
    user: Any,
    plan: Plan,
    card: types.Card,
    billing: dict[str, str],
    order_id: str,
    result: ProcessorResult,
    vaulted: VaultedCard | None,
    vault_error: FlexChargeError | None = None,
) -> CheckoutResult:
    """Store the processor's answer; on approval start the subscription and copy it to FlexCharge."""
    details = BillingDetails(user=user, **billing)
    charge = _charge(result, plan, user=user, order_id=order_id, is_mit=False)
    if not result.approved:
        if vaulted is not None:
            vaulted.delete()  # nothing will ever charge it
        # A checkout (CIT) decline is the customer's to fix, with another card,
        # while on the page; FlexCharge's CIT rescue is a different integration.
        charge.save()
        return CheckoutResult(charge=charge, subscription=None)

    with transaction.atomic():
        BillingDetails.objects.update_or_create(user=user, defaults=billing)
        subscription = Subscription.objects.create(
            user=user,
            plan=plan,
            status=Subscription.Status.ACTIVE,
            current_period_end=add_interval(timezone.now(), plan.interval),
            card=vaulted,
            processor_payment_method=result.payment_method,
            payment_number=1,
        )
        charge.subscription = subscription
        charge.save()
        # The app records a Transmission in this transaction and sends
        # /transmit from the task worker after commit: no added latency here.
        _send_approval(
            charge,
            card=card,
            payer=types.Payer(email=user.email, id=str(user.pk), phone=details.phone),
            billing=details.as_flexcharge(),
        )
    return CheckoutResult(charge=charge, subscription=subscription, vault_error=vault_error)


# --- renewals: merchant-initiated, run by a command ---------------------------


class Renewal(enum.StrEnum):
    APPROVED = "approved"
    #: Declined and handed to FlexCharge; the subscription is rescue_pending.
    RESCUE_PENDING = "rescue_pending"
    #: Declined and not handed over (no vaulted card, refused input): past_due.
    PAST_DUE = "past_due"
    #: The previous invoice is still with FlexCharge: not charged again.
    SKIPPED = "skipped"


def due_subscriptions(*, include_not_due: bool = False) -> QuerySet[Subscription]:
    """Subscriptions a renewal run should look at, oldest period end first.

    ``rescue_pending`` ones are included on purpose: ``renew()`` asks the app
    whether FlexCharge still holds their last invoice rather than trusting our
    own status column.
    """
    subscriptions = Subscription.objects.filter(status__in=Subscription.LIVE)
    if not include_not_due:
        subscriptions = subscriptions.filter(current_period_end__lte=timezone.now())
    return subscriptions.select_related("plan", "user", "card").order_by("current_period_end", "pk")


def renew(subscription: Subscription) -> Renewal:
    """Charge one renewal through the processor as an MIT and act on the answer."""
    latest = subscription.latest_charge()
    if latest is not None and is_under_rescue(latest.order_id):
        # FlexCharge is retrying that payment; charging again ourselves would
        # bill the customer twice if both succeed (flexcharge-api.md §6.1).
        return Renewal.SKIPPED

    plan = subscription.plan
    order_id = InvoiceNumber.allocate()
    # The processor is called outside any transaction: no lock is held while
    # the network is slow.
    result = processor.charge_stored(
        order_id=order_id,
        amount=plan.price,
        currency=plan.currency,
        payment_method=subscription.processor_payment_method,
    )
    with transaction.atomic():
        # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of
        # the card join, and only the subscription row needs the lock.
        sub = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("plan", "user", "card")
            .get(pk=subscription.pk)
        )
        charge = _charge(
            result, plan, user=sub.user, subscription=sub, order_id=order_id, is_mit=True
        )
        charge.save(force_insert=True)
        if result.approved:
            sub.extend_period()
            sub.status = Subscription.Status.ACTIVE
            sub.save(update_fields=["current_period_end", "payment_number", "status"])
            _send_approval(charge, card=sub.card, user=sub.user)
            return Renewal.APPROVED
        return _hand_to_flexcharge(sub, charge)


def _hand_to_flexcharge(sub: Subscription, charge: Charge) -> Renewal:
    """Send the decline to FlexCharge now: it takes only declines from the same day."""
    reason = ""
    if sub.card is None:
        reason = "no card vaulted at FlexCharge for this subscription"
    else:
        try:
            billing = BillingDetails.objects.get(user=sub.user).as_flexcharge()
            # A savepoint: if the app refuses the decline, the charge and the
            # past_due status below are still saved.
            with transaction.atomic():
                payment_declined.send(
                    sender=Charge,
                    payment=charge.as_flexcharge(),
                    card=sub.card,
                    payer=payer_for(sub.user),
                    billing=billing,
                    subscription=sub.as_flexcharge(payment_number=sub.payment_number + 1),
                    is_mit=True,
                )
        except BillingDetails.DoesNotExist:
            reason = "no billing address on file"
        except FlexChargeError as err:
            reason = str(err)
    if not reason:
        sub.status = Subscription.Status.RESCUE_PENDING
        sub.save(update_fields=["status"])
        return Renewal.RESCUE_PENDING
    logger.warning("Renewal %s declined and not sent to FlexCharge: %s", charge.order_id, reason)
    sub.status = Subscription.Status.PAST_DUE
    sub.save(update_fields=["status"])
    charge.note = f"Not sent to FlexCharge: {reason}"[:255]
    charge.save(update_fields=["note"])
    return Renewal.PAST_DUE


def renew_all(
    subscriptions: Iterable[Subscription],
    on_progress: Callable[[int], None] | None = None,
) -> Counter[Renewal]:
    """``renew()`` each subscription; ``on_progress(done)`` after each one."""
    outcomes: Counter[Renewal] = Counter()
    for done, subscription in enumerate(subscriptions, start=1):
        outcomes[renew(subscription)] += 1
        if on_progress is not None:
            on_progress(done)
    return outcomes


# --- the customer cancels -----------------------------------------------------


def cancel(subscription: Subscription, *, user: Any) -> None:
    """Cancel the subscription, first stopping FlexCharge if it is still retrying a renewal.

    Raises ``FlexChargeError`` (and changes nothing) when FlexCharge could
    not be told: a rescue that later succeeds would charge a customer who
    has left.
    """
    latest = subscription.latest_charge()
    if latest is not None and is_under_rescue(latest.order_id):
        cancel_order(FlexChargeOrder.objects.get(order_id=latest.order_id), user=user)
    subscription.status = Subscription.Status.CANCELLED
    subscription.cancelled_at = timezone.now()
    subscription.save(update_fields=["status", "cancelled_at"])
