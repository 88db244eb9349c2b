"""Sending a claimed order's ``/evaluate`` and applying FlexCharge's answers.

The job ``tasks.deliver_evaluation`` sends one order (``send_evaluation``); a
drain run sends a batch (``sending.deliver``), and its answers are applied ten
at a time (``apply_evaluations``). The body stored on the order goes out
unchanged, so every attempt carries the same ``idempotencyKey``; a failed call
is handled by ``evaluation_errors``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from .attempts import record_call, store_calls
from .client import get_client
from .delivery import claim
from .evaluation_errors import expiry, give_up, handle_error, window_end
from .exceptions import FlexChargeError
from .group_changes import Request, change_orders, change_orders_as_read, saves_as_read
from .models import CallAttempt, FlexChargeOrder
from .order_state import Change, lock_many

logger = logging.getLogger("django_flexcharge.tasks")

Status = FlexChargeOrder.Status

#: ``/evaluate`` ``status`` -> order status (flexcharge-api.md §6.4, §14).
EVALUATE_STATUS = {
    "SUBMITTED": Status.PENDING,
    "PROCESSING": Status.PENDING,
    "CHALLENGE": Status.PENDING,
    # Auth/capture accounts only; FlexCharge still holds the order.
    "CAPTUREREQUIRED": Status.PENDING,
    "APPROVED": Status.APPROVED,
    "DECLINED": Status.DECLINED,
}


def send_evaluation(order_pk: int) -> str:
    """Run one delivery attempt of a queued order; returns what happened, for logs and tests."""
    now = timezone.now()
    order = _claim_order(order_pk, now)
    if order is None:
        return "skipped"
    return deliver_claimed_evaluation(order, now)


def deliver_claimed_evaluation(order: FlexChargeOrder, now: dt.datetime) -> str:
    """Send an order this worker has claimed and apply the answer; the order's status after it."""
    sent = send_claimed_evaluation(order, now)
    return sent if isinstance(sent, str) else apply_evaluation(order, sent)


def send_claimed_evaluation(
    order: FlexChargeOrder, now: dt.datetime, history: list[CallAttempt] | None = None
) -> str | dict[str, Any]:
    """Send a claimed order (``order.attempts`` counts this attempt): FlexCharge's answer,
    for ``apply_evaluations``; or, with no answer to apply, what became of the order
    (a failure is handled here). ``history``: see ``record_call``."""
    order_pk = order.pk
    if now > window_end(order):
        # Attempts before this one (the claim counted this one) may have arrived.
        return give_up(
            order_pk,
            "the same-day window closed before FlexCharge accepted it",
            maybe_sent=order.attempts > 1,
        )
    try:
        with record_call(
            endpoint="POST evaluate", order=order, attempt=order.attempts, history=history
        ):
            data = get_client(order.account).evaluate(order.request_payload)
    except Exception as err:
        if not isinstance(err, FlexChargeError):
            logger.exception("Unexpected error sending /evaluate for order %s", order.order_id)
        return handle_error(order_pk, err)
    return data


def _claim_order(order_pk: int, now: dt.datetime) -> FlexChargeOrder | None:
    if not claim(FlexChargeOrder, order_pk, now=now):
        return None
    return FlexChargeOrder.objects.get(pk=order_pk)


def apply_evaluation(order: FlexChargeOrder, data: dict[str, Any]) -> str:
    """Record FlexCharge's answer to ``/evaluate``; returns the order's status after it."""
    return apply_evaluations([(order, data)])[0]


def apply_evaluations(
    answers: list[tuple[FlexChargeOrder, dict[str, Any]]],
    history: list[CallAttempt] | None = None,
) -> list[str]:
    """Record FlexCharge's answers to ``/evaluate`` calls; each order's status after it.

    ``answers``: each order as claimed and FlexCharge's answer. Each answer is
    applied as ``change_order`` applies any change, the group's saved together
    with ``history`` (the calls' attempts). On PostgreSQL the changes are first
    decided on the orders as claimed and saved in one statement that checks they
    are still as read (``change_orders_as_read``); the orders something changed
    meanwhile, and everywhere else all of them, are locked together and decided
    again on the locked rows. An order a webhook already moved on (approved,
    cancelled...) keeps its status: the transition table refuses to move it
    back, and the answer is still stored, with FlexCharge's order id if the
    order lacked it.
    """
    applied: dict[int, str] = {}
    left = answers
    if saves_as_read():
        requests = [_answer(claimed, claimed, data) for claimed, data in answers]
        changes = change_orders_as_read(requests, read=ANSWER_READS)
        left = [answer for answer, change in zip(answers, changes, strict=True) if change is None]
        for (claimed, data), change in zip(answers, changes, strict=True):
            if change is not None:
                applied[claimed.pk] = _applied(change, data)
    if left:
        with transaction.atomic():
            orders = lock_many([claimed.pk for claimed, _ in left], lean=True)
            found = [(orders[c.pk], c, data) for c, data in left if c.pk in orders]
            changed = iter(change_orders([_answer(*one) for one in found]))
            for claimed, data in left:
                if claimed.pk in orders:
                    applied[claimed.pk] = _applied(next(changed), data)
    gone = {claimed.pk for claimed, _ in answers if claimed.pk not in applied}
    store_calls([call for call in history or [] if call.order_id not in gone])
    return [
        _gone(claimed.pk) if claimed.pk in gone else applied[claimed.pk] for claimed, _ in answers
    ]


def _gone(order_pk: int) -> str:
    # Deleted (by a person, in the admin) while its call was in flight: nothing to apply to.
    logger.warning(
        "Order %s was deleted before FlexCharge's answer to /evaluate was saved", order_pk
    )
    return "skipped"


#: What ``_answer`` reads of the order besides its body: a change decided on an
#: unlocked copy is saved only while these are as read (``change_orders_as_read``).
ANSWER_READS = ("order_session_key", "confirmation_id")


def _answer(order: FlexChargeOrder, claimed: FlexChargeOrder, data: dict[str, Any]) -> Request:
    """The change FlexCharge's answer asks of ``order`` (``claimed`` holds its body)."""
    answer = str(data.get("status") or "").upper()
    session_key = str(data.get("orderSessionKey") or data.get("orderId") or "")
    values: dict[str, Any] = {"response_payload": data, "locked_until": None, "last_error": ""}
    if session_key and not order.order_session_key:
        values["order_session_key"] = session_key
    if data.get("confirmationId") and not order.confirmation_id:
        values["confirmation_id"] = str(data["confirmationId"])[:32]
    target = EVALUATE_STATUS.get(answer)
    if target is None:
        # A 2xx means FlexCharge took the order; webhooks and sync settle it.
        logger.warning("Order %s: unknown /evaluate status %r", order.order_id, answer)
        target = Status.PENDING
    if target == Status.PENDING:
        values["expiry_date"] = expiry(claimed)
    return Request(order, target, values, cause=f"/evaluate answered {answer or 'no status'}")


def _applied(change: Change, data: dict[str, Any]) -> str:
    order, answer = change.order, str(data.get("status") or "").upper()
    logger.info("Order %s: /evaluate answered %s -> %s", order.order_id, answer, order.status)
    return str(order.status)
