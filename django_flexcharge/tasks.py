"""The Tasks API jobs: send a stored ``/evaluate`` or ``/transmit`` and apply the answer.

A job carries only a primary key. It claims the row (``delivery.claim``),
sends the body stored on it unchanged (so every attempt carries the same
``idempotencyKey``), then applies FlexCharge's answer under a row lock. A
failure that may pass (timeout, connection, 429, 5xx, credentials being
fixed) leaves the row queued with a later ``next_attempt_at`` and, when the
backend can defer, a new job for then; ``flexcharge_retry`` covers backends
that cannot and jobs that were lost. A row is never deleted or dropped: it
ends ``failed`` with its error when it cannot be handed over.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .attempts import record_call, store_calls
from .cancel import is_not_found
from .client import get_client
from .compat import task
from .conf import conf
from .delivery import backoff, claim, enqueue_on_commit
from .exceptions import FlexChargeAPIError, FlexChargeError, may_retry, outcome_unknown
from .group_changes import Request, change_orders, change_orders_as_read, saves_as_read
from .models import CallAttempt, FlexChargeOrder, Transmission
from .order_state import Change, change_order, lock, lock_many
from .payloads import cancel_idempotency_key
from .sync import sync_order

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


@task()
def deliver_evaluation(order_pk: int) -> str:
    """The job enqueued after an order is stored (and for each deferred retry)."""
    return send_evaluation(order_pk)


@task()
def deliver_transmission(transmission_pk: int) -> str:
    """The job enqueued after a transmission is stored (and for each deferred retry)."""
    return send_transmission(transmission_pk)


@task()
def deliver_due() -> dict[str, int]:
    """The drain: sends every due ``/evaluate`` and ``/transmit`` row, in batches (``batch``).

    Woken once per caller transaction (``wakeups``); ``deliver_evaluation`` and
    ``deliver_transmission`` stay for deferred retries and for tasks enqueued
    by earlier versions.
    """
    from .batch import drain

    return dict(drain())


@task()
def sync_refunded_total(order_pk: int) -> str:
    """Enqueued by an ``order.refunded`` webhook without a total: ask ``GET /orders/{id}``.

    A failure is logged, not retried here: the order stays marked
    ``refunded_amount_unknown`` and ``flexcharge_sync`` visits it.
    """
    order = FlexChargeOrder.objects.filter(pk=order_pk, refunded_amount_unknown=True).first()
    if order is None:
        return "nothing to do"
    try:
        sync_order(order)
    except FlexChargeError as err:
        logger.warning("Order %s: refunded total not read (%s); flexcharge_sync will", order, err)
        return f"failed: {err}"
    return "synced"


def window_end(order: FlexChargeOrder) -> dt.datetime:
    """FlexCharge takes same-day declines only: past this, the order cannot be handed over."""
    return order.declined_at + dt.timedelta(hours=conf.account(order.account).DECLINE_MAX_AGE)


def _retry_after(err: BaseException) -> float | None:
    return err.retry_after if isinstance(err, FlexChargeAPIError) else None


def _describe(err: BaseException) -> str:
    # FlexChargeError messages are built to be safe to store; anything else
    # is reduced to its class so no unexpected text (a request body) lands in the row.
    return str(err)[:2000] if isinstance(err, FlexChargeError) else type(err).__name__


# --- /evaluate ---


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
        return _give_up(
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
        return _evaluation_error(order_pk, err)
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
        values["expiry_date"] = _expiry(claimed)
    return Request(order, target, values, cause=f"/evaluate answered {answer or 'no status'}")


def _applied(change: Change, data: dict[str, Any]) -> str:
    order, answer = change.order, str(data.get("status") or "").upper()
    logger.info("Order %s: /evaluate answered %s -> %s", order.order_id, answer, order.status)
    return str(order.status)


def _evaluation_error(order_pk: int, err: BaseException) -> str:
    now = timezone.now()
    with transaction.atomic():
        order = lock(order_pk)
        values: dict[str, Any] = {"locked_until": None}
        if order.status != Status.QUEUED:
            # A webhook moved the order on while the call was in flight.
            change_order(order, values=values)
            return "skipped"
        values["last_error"] = _describe(err)
        if may_retry(err):
            next_at = now + backoff(order.attempts, _retry_after(err))
            if next_at <= window_end(order):
                change_order(order, values={**values, "next_attempt_at": next_at})
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
    return _give_up(
        order_pk,
        f"the same-day window closes before the next attempt ({_describe(err)})",
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
    values = {**values, "expiry_date": _expiry(order), "next_attempt_at": None}
    cause = "FlexCharge may hold it: answer not confirmed"
    return change_order(order, to=Status.PENDING, values=values, cause=cause).order


def _expiry(order: FlexChargeOrder) -> dt.datetime | None:
    return parse_datetime(str(order.request_payload.get("expiryDateUtc", "")))


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


def _give_up(order_pk: int, reason: str, *, maybe_sent: bool) -> str:
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
                held = _describe(err)
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


# --- /transmit ---


def send_transmission(transmission_pk: int) -> str:
    """Run one delivery attempt of a queued transmission; returns what happened."""
    now = timezone.now()
    if not claim(Transmission, transmission_pk, now=now):
        return "skipped"
    return deliver_claimed_transmission(Transmission.objects.get(pk=transmission_pk), now)


def deliver_claimed_transmission(
    row: Transmission, now: dt.datetime | None = None, history: list[CallAttempt] | None = None
) -> str:
    """Send a transmission this worker has claimed and save its outcome at once.

    Saved right after the call, one UPDATE: FlexCharge does not deduplicate
    ``/transmit``, so an outcome kept for later would be lost with the worker.
    ``history``: see ``record_call``.
    """
    transmission_pk = row.pk
    if row.attempts > conf.MAX_ATTEMPTS:
        # Only after crashes mid-call: each claim counted an attempt.
        return _fail_transmission(transmission_pk, f"gave up after {conf.MAX_ATTEMPTS} attempts")
    try:
        with record_call(
            endpoint="POST transmit", transmission=row, attempt=row.attempts, history=history
        ):
            data = get_client(row.account).transmit(row.payload)
    except Exception as err:
        if not isinstance(err, FlexChargeError):
            logger.exception("Unexpected error sending /transmit %s", row)
        return _transmission_error(row, err)
    Transmission.objects.filter(pk=transmission_pk, status=Transmission.Status.QUEUED).update(
        status=Transmission.Status.SENT,
        response=data,
        transmit_id=str(data.get("transmitId") or "")[:64],
        sent_at=timezone.now(),
        locked_until=None,
        last_error="",
        updated=timezone.now(),
    )
    return "sent"


def _transmission_error(row: Transmission, err: BaseException) -> str:
    message = _describe(err)
    if not may_retry(err):
        return _fail_transmission(row.pk, message)
    if row.attempts >= conf.MAX_ATTEMPTS:
        return _fail_transmission(row.pk, f"{message} (after {row.attempts} attempts)")
    next_at = timezone.now() + backoff(row.attempts, _retry_after(err))
    with transaction.atomic():
        Transmission.objects.filter(pk=row.pk, status=Transmission.Status.QUEUED).update(
            next_attempt_at=next_at, locked_until=None, last_error=message, updated=timezone.now()
        )
        enqueue_on_commit(deliver_transmission, row.pk, run_after=next_at)
    logger.warning("%s: attempt %s failed (%s); retrying", row, row.attempts, message)
    return "retry"


def _fail_transmission(pk: int, message: str) -> str:
    Transmission.objects.filter(pk=pk, status=Transmission.Status.QUEUED).update(
        status=Transmission.Status.FAILED,
        locked_until=None,
        last_error=message[:2000],
        updated=timezone.now(),
    )
    logger.error("Transmission %s failed: %s", pk, message)
    return "failed"
