"""Refunds: send one, record what FlexCharge answered, settle one whose answer was lost.

``refund_order`` (re-exported by ``services``) commits a ``Refund`` row before
calling FlexCharge, so a crash cannot lose it, then records the verdict of
``refund_answers``. Only an approved answer moves money in the books: the
order's ``refunded_amount`` (``order_state`` owns the total; ``Refund`` rows
are the history) becomes at least the refund's ``refunded_before`` plus its
amount, so a webhook for the same refund arriving first is not counted twice.

A refund whose outcome nobody knows (pending: no answer recorded; unconfirmed:
the answer was lost or unreadable) blocks every other refund of its order,
because FlexCharge's refund takes no idempotency key and sending "the same"
refund again could pay out twice. ``settle_refunds``, called by ``sync_order``,
ends them from the refunded total FlexCharge reports.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from .attempts import record_call
from .client import get_client
from .conf import conf
from .exceptions import (
    FlexChargeAPIError,
    FlexChargeError,
    FlexChargeRefundUnconfirmed,
    FlexChargeStateError,
    FlexChargeValidationError,
)
from .models import FlexChargeOrder, Refund
from .money import format_amount
from .order_state import change_order, lock
from .refund_answers import APPROVED, DECLINED, Verdict, classify_answer, classify_error

logger = logging.getLogger("django_flexcharge.refunds")

Status = FlexChargeOrder.Status
Outcome = Refund.Outcome
REFUNDABLE = (Status.APPROVED, Status.PARTIALLY_REFUNDED)


def open_refunds() -> Count:
    """Per order, the refunds whose outcome is not known yet (for ``annotate``)."""
    return Count("refunds", filter=Q(refunds__outcome__in=Refund.OPEN))


def refundable_rest(order: FlexChargeOrder, *, open_count: int | None = None) -> int:
    """What may be refunded now: the unrefunded amount, or 0 while a refund is unsettled.

    ``open_count`` is the number of unsettled refunds when the caller has it
    (a queryset annotated with ``open_refunds()``); otherwise it is queried.
    """
    if open_count is None:
        open_count = order.refunds.filter(outcome__in=Refund.OPEN).count()
    return 0 if open_count else order.refundable_amount


def unsettled_message(order: FlexChargeOrder, refund: Refund | None = None) -> str:
    """Why an order cannot be refunded now, and what to do: one text for the service and the admin."""
    refund = refund or order.refunds.filter(outcome__in=Refund.OPEN).order_by("pk").first()
    what = "an earlier refund"
    if refund is not None:
        sent = timezone.localtime(refund.created).strftime("%Y-%m-%d %H:%M")
        what = f"the refund of {format_amount(refund.amount, refund.currency)} sent {sent}"
    return (
        f"Order {order.order_id}: {what} has no confirmed answer from FlexCharge, so it may "
        "have been paid out. No other refund is sent until it is settled: run "
        f"`manage.py flexcharge_sync --order {order.order_id}` (or wait for the next sync), "
        "or check the order in the FlexCharge portal, then refund again if still needed."
    )


def refund_order(
    order: FlexChargeOrder, amount: int | None = None, *, reason: str = "", user: Any = None
) -> Refund:
    """Refund ``amount`` minor units (None: all that is left) of an approved order.

    Returns the ``Refund`` with outcome ``succeeded``. FlexCharge refuses ->
    outcome ``failed`` with its code and message, ``FlexChargeAPIError``
    raised, order unchanged. No readable answer -> outcome ``unconfirmed``,
    ``FlexChargeRefundUnconfirmed`` raised; refunds of the order are refused
    (``FlexChargeStateError``) until ``flexcharge_sync`` settles it.
    """
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
        raise FlexChargeValidationError("amount", "must be an integer amount in minor units")
    if not isinstance(reason, str) or len(reason) > 255:
        raise FlexChargeValidationError("reason", "must be a string of at most 255 characters")
    refund = _start(order, amount, reason.strip(), user)
    try:
        with record_call(endpoint="POST orders/{id}/refund", order=refund.order, refund=refund):
            data = get_client(refund.order.account).refund(
                refund.order.order_session_key or "",
                refund.amount,
                refund.currency,
                message=refund.reason,
            )
        verdict = classify_answer(data)
    except Exception as err:
        verdict = classify_error(err)
        response = err.response if isinstance(err, FlexChargeAPIError) else {}
        _finish(refund, verdict, response, str(err) if isinstance(err, FlexChargeError) else "")
        if verdict.kind == DECLINED:
            raise
        raise FlexChargeRefundUnconfirmed(
            f"{unsettled_message(refund.order, refund)} ({err})", response=response
        ) from err
    _finish(refund, verdict, data)
    if verdict.kind == DECLINED:
        raise FlexChargeAPIError(
            verdict.message or "FlexCharge declined the refund",
            status=200,
            code=verdict.code,
            response=data,
        )
    if verdict.kind != APPROVED:
        raise FlexChargeRefundUnconfirmed(
            f"FlexCharge's answer does not say whether the refund was made "
            f"({verdict.message or data.get('status') or 'no status'}). "
            + unsettled_message(refund.order, refund),
            status=200,
            code=verdict.code,
            response=data,
        )
    logger.info(
        "Refunded %s of order %s (by %s)",
        format_amount(refund.amount, refund.currency),
        refund.order.order_id,
        refund.requested_by or "code",
    )
    refund.refresh_from_db()
    return refund


def _start(order: FlexChargeOrder, amount: int | None, reason: str, user: Any) -> Refund:
    """Check the order and commit the ``pending`` row, under the order's lock."""
    with transaction.atomic():
        locked = lock(order)
        if locked.status not in REFUNDABLE:
            raise FlexChargeStateError(
                f"Order {locked.order_id} is {locked.status}: only approved or partially "
                "refunded orders can be refunded."
            )
        if not locked.order_session_key:
            raise FlexChargeStateError(
                f"Order {locked.order_id} has no FlexCharge order id to refund against; "
                "run flexcharge_sync or check the portal."
            )
        unsettled = locked.refunds.filter(outcome__in=Refund.OPEN).order_by("pk").first()
        if unsettled is not None:
            raise FlexChargeStateError(unsettled_message(locked, unsettled))
        rest = locked.refundable_amount
        amount = rest if amount is None else amount
        if amount <= 0:
            raise FlexChargeValidationError("amount", "must be positive (nothing left to refund?)")
        if amount > rest:
            raise FlexChargeValidationError(
                "amount",
                f"exceeds the refundable rest of {format_amount(rest, locked.currency)}",
            )
        who = user if getattr(user, "is_authenticated", False) else None
        return Refund.objects.create(
            account=locked.account,
            order=locked,
            amount=amount,
            currency=locked.currency,
            reason=reason,
            requested_by=who,
            refunded_before=locked.refunded_amount,
        )


def _finish(refund: Refund, verdict: Verdict, response: dict[str, Any], error: str = "") -> None:
    """Record the verdict; an approval raises the order's total, under its lock."""
    outcome = {APPROVED: Outcome.SUCCEEDED, DECLINED: Outcome.FAILED}.get(
        verdict.kind, Outcome.UNCONFIRMED
    )
    with transaction.atomic():
        locked = lock(refund.order_id)
        # Only a row still pending: flexcharge_sync may have settled it meanwhile.
        changed = Refund.objects.filter(pk=refund.pk, outcome=Outcome.PENDING).update(
            outcome=outcome,
            response=response,
            response_code=verdict.code,
            response_message=verdict.message,
            error=(error or ("" if outcome == Outcome.SUCCEEDED else verdict.message))[:2000],
            updated=timezone.now(),
        )
        if changed and outcome == Outcome.SUCCEEDED:
            total = refund.refunded_before + refund.amount
            change_order(locked, refunded=total, cause="refund", user=refund.requested_by)
    if outcome != Outcome.SUCCEEDED:
        logger.warning(
            "Refund %s of order %s %s: %s %s",
            refund.pk,
            locked.order_id,
            outcome,
            verdict.code,
            verdict.message or error,
        )


def answer_wait() -> dt.timedelta:
    """How long a refund may be in flight: past it, a ``pending`` row lost its answer."""
    connect, read = conf.TIMEOUT
    return dt.timedelta(seconds=connect + read + 60)


def settle_refunds(order: FlexChargeOrder, total: int, now: dt.datetime) -> None:
    """Settle ``order``'s unsettled refunds from FlexCharge's refunded ``total``.

    Each unsettled refund older than an answer can take succeeds when the
    total covers what was refunded before it plus its amount, and fails
    otherwise. The order's own figures are the caller's (``sync_order``) to
    change, through ``order_state``: its total never goes down (the books keep
    what an approved answer said, with a warning here).
    """
    known = order.refunded_amount
    if total < known:
        logger.warning(
            "Order %s: FlexCharge reports %s refunded, the app recorded %s; keeping the larger",
            order.order_id,
            format_amount(total, order.currency),
            format_amount(known, order.currency),
        )
    for refund in _unsettled(order, now):
        # Refunds of an order go one at a time, so FlexCharge's total made this one
        # exactly when it reaches what was refunded before it plus its amount.
        succeeded = total >= refund.refunded_before + refund.amount
        note = (
            f"settled by flexcharge_sync: FlexCharge reports "
            f"{format_amount(total, order.currency)} refunded in total"
        )
        Refund.objects.filter(pk=refund.pk, outcome__in=Refund.OPEN).update(
            outcome=Outcome.SUCCEEDED if succeeded else Outcome.FAILED,
            error=note if not succeeded else "",
            settled_at=now,
            updated=now,
        )
        logger.info("Refund %s of order %s %s", refund.pk, order.order_id, note)


def _unsettled(order: FlexChargeOrder, now: dt.datetime) -> QuerySet[Refund]:
    stale = Q(outcome=Outcome.UNCONFIRMED) | Q(
        outcome=Outcome.PENDING, updated__lt=now - answer_wait()
    )
    return order.refunds.filter(stale).order_by("created", "pk")


def needs_refund_sync() -> Q:
    """Orders ``flexcharge_sync`` visits for their refunds (a filter on ``FlexChargeOrder``)."""
    return Q(refunded_amount_unknown=True) | Q(refunds__outcome__in=Refund.OPEN)


def settle_by_hand(refund: Refund, *, made: bool, user: Any = None) -> Refund:
    """Settle an unsettled refund as a person found it in FlexCharge's portal.

    For an account whose ``GET /orders/{id}`` carries no refunded total, so
    ``flexcharge_sync`` cannot settle it. ``made``: FlexCharge refunded it
    (the order's total grows as for an approved answer); otherwise it failed.
    """
    now = timezone.now()
    with transaction.atomic():
        order = lock(refund.order_id)
        current = Refund.objects.get(pk=refund.pk)
        if current.outcome not in Refund.OPEN:
            raise FlexChargeStateError(f"Refund {current.pk} is already {current.outcome}.")
        if current.outcome == Outcome.PENDING and current.updated > now - answer_wait():
            raise FlexChargeStateError(
                f"Refund {current.pk} is still being sent; its answer may yet come."
            )
        who = user if getattr(user, "is_authenticated", False) else "code"
        verdict = "made" if made else "did not make"
        Refund.objects.filter(pk=current.pk).update(
            outcome=Outcome.SUCCEEDED if made else Outcome.FAILED,
            error=f"settled by {who}: FlexCharge {verdict} it (checked in the portal)",
            settled_at=now,
            updated=now,
        )
        if made:
            total = current.refunded_before + current.amount
            change_order(order, refunded=total, cause="refund settled by hand", user=user)
    logger.info("Refund %s of order %s settled by %s: %s", current.pk, order.order_id, who, verdict)
    current.refresh_from_db()
    return current
