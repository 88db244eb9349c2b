"""The Tasks API jobs: the drain, a stored ``/evaluate`` or ``/transmit``, a refund total.

A job carries only a primary key (the drain, nothing). Sending a row claims it
(``delivery.claim``), sends the body stored on it unchanged (so every attempt
carries the same ``idempotencyKey``; ``evaluations``, ``transmissions``), then
saves FlexCharge's answer. A failure that may pass (timeout, connection, 429, 5xx, credentials being
fixed) leaves the row queued with a later ``next_attempt_at`` and, when the
backend can defer, a new job for then; ``flexcharge_retry`` covers backends
that cannot and jobs that were lost. A row is never deleted or dropped: it
ends ``failed`` with its error when it cannot be handed over.
"""

from __future__ import annotations

import logging

from .batch import drain
from .compat import task
from .evaluations import send_evaluation
from .exceptions import FlexChargeError
from .models import FlexChargeOrder
from .sync import sync_order
from .transmissions import send_transmission

logger = logging.getLogger("django_flexcharge.tasks")


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
