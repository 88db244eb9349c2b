"""What becomes of an order whose ``/evaluate`` call failed: retried, refused, or kept.

``handle_error`` is called with the failure of a claimed order's call
(``evaluations.send_claimed_evaluation``). A failure that may pass (timeout,
connection, 429, 5xx) leaves the order queued for a later attempt with the same
idempotency key, within the same-day window. A refusal of the body itself fails
it. An error answer to a retry, or the window closing after an attempt went
out, does not prove FlexCharge has no such order: it is asked to drop it
(``external-cancel``), and an order it may hold is kept ``pending`` for a webhook
or ``flexcharge_sync`` to settle, never charged again by the host.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .attempts import record_call
from .cancel import is_not_found
from .client import get_client
from .conf import conf
from .delivery import backoff, enqueue_on_commit
from .exceptions import (
    FlexChargeAPIError,
    FlexChargeError,
    describe,
    may_retry,
    outcome_unknown,
    retry_after,
)
from .models import FlexChargeOrder
from .order_state import change_order, lock
from .payloads import cancel_idempotency_key
from .sync import sync_order

logger = logging.getLogger("django_flexcharge.tasks")

Status = FlexChargeOrder.Status


def window_end(order: FlexChargeOrder) -> dt.datetime:
    """FlexCharge takes same-day declines only: past this, the order cannot be handed over."""
    return order.declined_at + dt.timedelta(hours=conf.account(order.account).DECLINE_MAX_AGE)


def expiry(order: FlexChargeOrder) -> dt.datetime | None:
    """When FlexCharge stops retrying the order: the ``expiryDateUtc`` its body gave."""
    return parse_datetime(str(order.request_payload.get("expiryDateUtc", "")))


def handle_error(order_pk: int, err: BaseException) -> str:
    """Save what a failed ``/evaluate`` call of a claimed order means; the order's outcome."""
    now = timezone.now()
    with transaction.atomic():
        order = lock(order_pk)
        values: dict[str, Any] = {"locked_until": None}
        if order.status != Status.QUEUED:
            # A webhook moved the order on while the call was in flight.
            change_order(order, values=values)
            return "skipped"
        values["last_error"] = describe(err)
        if may_retry(err):
            next_at = now + backoff(order.attempts, retry_after(err))
            if next_at <= window_end(order):
                change_order(order, values={**values, "next_attempt_at": next_at})
                # The job that sends it then; tasks imports this module, so imported here.
                from .tasks import deliver_evaluation

                enqueue_on_commit(deliver_evaluation, order.pk, run_after=next_at)
                logger.warning(
                    "Order %s: /evaluate attempt %s failed (%s); next at %s",
                    order.order_id,
                    order.attempts,
                    order.last_error,
                    next_at.isoformat(),
                )
                return "retry"
        else:
            # 400 (FlexCharge refused the body), 409, or a business failure:
            # the same bytes would be refused again.
            if isinstance(err, FlexChargeAPIError):
                values["api_errors"] = err.errors
            if order.attempts <= 1 or proves_refusal(err):
                cause = "FlexCharge refused /evaluate"
                order = change_order(order, to=Status.FAILED, values=values, cause=cause).order
                logger.error("Order %s refused by FlexCharge: %s", order.order_id, order.last_error)
                return "failed"
            # An earlier attempt went out and its answer was lost: an error
            # answer to the retry (FlexCharge's replay behaviour is undocumented)
            # does not say it refused the order. It may hold it: keep it pending.
            values["last_error"] = (
                f"FlexCharge answered a retry with: {values['last_error']}. An earlier "
                "attempt may have reached it, so the order is kept pending until "
                "flexcharge_sync or a webhook says what became of it."
            )[:2000]
            order = _hold_unconfirmed(order, values)
    if order.status == Status.PENDING:
        logger.warning("Order %s: %s", order.order_id, order.last_error)
        return _reconcile(order_pk)
    return give_up(
        order_pk,
        f"the same-day window closes before the next attempt ({describe(err)})",
        maybe_sent=order.attempts > 1 or outcome_unknown(err),
    )


def proves_refusal(err: BaseException) -> bool:
    """True when an error answer to ``/evaluate`` shows FlexCharge refused the body itself.

    A 400 listing field errors does: the same bytes went out every time,
    so the first attempt was refused too. A 409, another 4xx, or a business
    failure does not: it may be FlexCharge's answer to a replay of an order it
    holds. A field error about the idempotency key is a replay answer as well.
    """
    if not isinstance(err, FlexChargeAPIError) or err.status != 400 or not err.errors:
        return False
    text = " ".join(f"{key} {' '.join(msgs)}" for key, msgs in err.errors.items()).lower()
    return "idempotency" not in text


def _hold_unconfirmed(order: FlexChargeOrder, values: dict[str, Any]) -> FlexChargeOrder:
    """Keep a queued order FlexCharge may hold as ``pending`` (the caller holds its lock).

    Pending is what it may be: the host must not charge it again
    (``is_under_rescue``), a webhook applies to it, ``flexcharge_sync`` finds it
    by our order id, and ``cancel_order`` cancels it by our order id.
    """
    values = {**values, "expiry_date": expiry(order), "next_attempt_at": None}
    cause = "FlexCharge may hold it: answer not confirmed"
    return change_order(order, to=Status.PENDING, values=values, cause=cause).order


def _reconcile(order_pk: int) -> str:
    """Best effort: ask FlexCharge by our order id what became of an unconfirmed order."""
    order = FlexChargeOrder.objects.get(pk=order_pk)
    try:
        order = sync_order(order)
    except FlexChargeError as err:
        logger.warning("Order %s: could not reconcile yet (%s)", order.order_id, err)
        return "unconfirmed"
    if order.status == Status.PENDING and not order.order_session_key:
        return "unconfirmed"
    return str(order.status)


def give_up(order_pk: int, reason: str, *, maybe_sent: bool) -> str:
    """Stop sending an order FlexCharge never accepted; failed, or pending if it may hold it.

    A timeout, a 5xx or a crash does not say whether FlexCharge created the
    order, so it is first asked to drop it by our id: it must not rescue an
    order the host now handles itself. The order is ``failed`` when nothing
    was sent, or when FlexCharge cancelled it or says it has no such order.
    If the cancel is refused (e.g. "COMPLETED": it charged the customer) or
    unanswered, FlexCharge may hold it: it stays ``pending`` for a webhook or
    ``flexcharge_sync`` to settle, and the host does not charge it again.
    """
    order = FlexChargeOrder.objects.get(pk=order_pk)
    held = ""
    if maybe_sent:
        try:
            with record_call(endpoint="POST orders/{id}/external-cancel", order=order):
                get_client(order.account).external_cancel(
                    order.order_id, idempotency_key=cancel_idempotency_key(order)
                )
        except FlexChargeError as err:
            if not is_not_found(err):
                held = describe(err)
                logger.warning(
                    "Order %s: external-cancel after giving up: %s", order.order_id, held
                )
    with transaction.atomic():
        order = lock(order_pk)
        if order.status != Status.QUEUED:
            # A webhook or a sync settled it meanwhile.
            change_order(order, values={"locked_until": None})
            return "skipped"
        if held:
            last_error = (
                f"Not confirmed by FlexCharge: {reason}; external-cancel answered: {held}. "
                "FlexCharge may hold the order: kept pending for a webhook or flexcharge_sync."
            )[:2000]
            order = _hold_unconfirmed(order, {"locked_until": None, "last_error": last_error})
        else:
            last_error = f"Not handed to FlexCharge: {reason}"[:2000]
            values = {"locked_until": None, "last_error": last_error}
            cause = f"not handed over: {reason}"
            order = change_order(order, to=Status.FAILED, values=values, cause=cause).order
    if held:
        logger.error("Order %s unconfirmed: %s", order.order_id, order.last_error)
        return _reconcile(order_pk)
    logger.error("Order %s failed: %s", order.order_id, order.last_error)
    return "failed"
