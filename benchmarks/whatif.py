"""Prototypes of the fixes recommended in docs/benchmarks.md, to measure their effect.

NOT package code: each function is a copy of the package's own at the
measured commit with one documented change set, so the benchmark can put a
number on a recommendation before anyone edits ``django_flexcharge``. They
reuse the package's helpers (payload builders, signature check, state machine)
and are measured next to the real thing (``b2`` and ``w2`` variants; the
caller and worker what-ifs in ``bench_profile.py``). If the package moves on
and a helper disappears, the what-if figures are reported as unavailable.

The changes, by id (the docs use the same ids):

* T1 ``transmit_approved_payment``: no ``SELECT ... first()`` before the INSERT;
  the unique constraint already catches a repeat (IntegrityError in the
  savepoint, then the stored row is returned).
* Q1 enqueue inside the caller's transaction when the task backend is
  ``django_tasks_db`` on the same database as the row: the task row commits
  (or rolls back) with it, so no second transaction after commit. Any other
  backend keeps ``transaction.on_commit``. The configured task is built once.
* C1 ``evaluate_declined_payment``: no ``exists()`` pre-check of ``order_id``;
  the unique constraint raises the same FlexChargeValidationError.
* H1 ``webhooks.receive``: no ``exists()`` pre-check of the nonce; ``store_event``
  already turns the unique-nonce IntegrityError into the same 401.
* H2 ``_apply_locked``: the event row this request just inserted is not re-read
  ``FOR UPDATE`` (only the admin's re-apply needs that lock).
* H3 ``_apply_locked``: look for an earlier application of the event only when
  the transition is refused, or for ``order.refunded`` (where a redelivery can
  look like a new partial refund). A first delivery skips the query.
* H4 ``_find_order``: ``.defer()`` the JSON columns (``request_payload``,
  ``response_payload``, ``api_errors``) and ``.get()`` on the unique key
  instead of ``.first()`` (no ORDER BY): nothing on the webhook path reads them.
* K1 ``FlexChargeClient``: keep the token in process memory as well as in the
  shared cache; read the shared cache only when the local copy is near expiry
  (a 401 still drops both).
* K2 ``FlexChargeClient``: ``session.trust_env = False`` (proxies resolved once,
  when the client is built): ``requests`` otherwise reads the environment and
  looks for ``~/.netrc`` on every request.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from functools import cache
from typing import Any

import requests
from django.db import IntegrityError, router, transaction
from django.dispatch import Signal, receiver
from django.utils import timezone

from django_flexcharge import payloads, webhooks
from django_flexcharge.client import TOKEN_MARGIN, FlexChargeClient
from django_flexcharge.compat import task_backends
from django_flexcharge.conf import conf
from django_flexcharge.delivery import enqueue, enqueue_on_commit
from django_flexcharge.exceptions import FlexChargeValidationError, FlexChargeWebhookError
from django_flexcharge.models import FlexChargeOrder, Transmission, WebhookEvent
from django_flexcharge.tasks import deliver_evaluation, deliver_transmission
from django_flexcharge.transitions import can_transition, transition
from django_flexcharge.webhook_payload import (
    Payload,
    PayloadError,
    check_test_mode,
    parse_payload,
    refunded_total,
)

Status = FlexChargeOrder.Status
Stored = WebhookEvent.Status

# --- Q1: enqueue in the transaction for a database backend on the same database ---


@cache
def _configured(task: Any, backend: str, queue: str) -> Any:
    return task.using(backend=backend, queue_name=queue)


def _same_database_backend(model: type) -> bool:
    try:
        from django_tasks_db.backend import DatabaseBackend
        from django_tasks_db.models import DBTaskResult
    except ImportError:
        return False
    backend = task_backends[conf.TASK_BACKEND]
    return isinstance(backend, DatabaseBackend) and router.db_for_write(
        DBTaskResult
    ) == router.db_for_write(model)


def enqueue_with_row(task: Any, model: type, pk: Any) -> None:
    """Q1: the task row joins the current transaction when the queue is that database."""
    if _same_database_backend(model):
        _configured(task, conf.TASK_BACKEND, conf.TASK_QUEUE).enqueue(pk)
    elif transaction.get_connection().in_atomic_block:
        enqueue_on_commit(task, pk)
    else:
        enqueue(task, pk)


# --- T1 + Q1: the approval copy ---

#: The bench site's stand-in for ``payment_approved`` (same dispatch cost).
payment_approved_whatif = Signal()


def transmit_approved_payment(payment: Any, *, card=None, payer=None, billing=None) -> Transmission:
    lookup = {"order_id": payment.order_id, "transaction_id": payment.transaction_id}
    key = uuid.uuid4()
    body = payloads.transmit_body(
        payment, idempotency_key=str(key), card=card, payer=payer, billing=billing
    )
    try:
        with transaction.atomic():
            row = Transmission.objects.create(
                **lookup,
                amount=payment.amount,
                currency=payment.currency,
                payload=body,
                idempotency_key=key,
            )
            enqueue_with_row(deliver_transmission, Transmission, row.pk)
    except IntegrityError:
        return Transmission.objects.get(**lookup)  # T1: a repeat returns the stored row
    return row


@receiver(payment_approved_whatif, dispatch_uid="benchmarks.whatif.transmit")
def _on_approval(sender: Any, payment: Any, **kwargs: Any) -> None:
    transmit_approved_payment(
        payment, card=kwargs.get("card"), payer=kwargs.get("payer"), billing=kwargs.get("billing")
    )


# --- C1 + Q1: the decline ---


def evaluate_declined_payment(payment, *, card, payer, billing, subscription=None, is_mit=True):
    now = timezone.now()
    # The package's age checks, without the exists() query (C1).
    if payment.when < now - dt.timedelta(hours=conf.DECLINE_MAX_AGE):
        raise FlexChargeValidationError("payment.occurred_at", "too old")
    key = uuid.uuid4()
    body = payloads.evaluate_body(
        payment,
        idempotency_key=str(key),
        card=card,
        payer=payer,
        billing=billing,
        subscription=subscription,
        is_mit=is_mit,
        now=now,
    )
    try:
        with transaction.atomic():
            order = FlexChargeOrder.objects.create(
                order_id=payment.order_id,
                amount=payment.amount,
                currency=payment.currency,
                card=card,
                subscription_id=subscription.id if subscription else "",
                transaction_id=payment.transaction_id,
                email=payer.email,
                is_mit=is_mit,
                declined_at=payment.when,
                decline_code=payment.response_code[:32],
                decline_message=payment.response_description[:255],
                processor=payment.processor[:64],
                idempotency_key=key,
                is_test_mode=conf.TEST_MODE,
                request_payload=body,
            )
            enqueue_with_row(deliver_evaluation, FlexChargeOrder, order.pk)
    except IntegrityError as err:
        raise FlexChargeValidationError(
            "payment.order_id", "was already handed to FlexCharge"
        ) from err
    return order


# --- H1-H4: webhook intake ---


def receive(body: bytes, headers: Any, host: str) -> WebhookEvent:
    if len(body) > conf.WEBHOOK_MAX_BODY:
        raise FlexChargeWebhookError("body is larger than FLEXCHARGE_WEBHOOK_MAX_BODY", 413)
    nonce = webhooks.verify_delivery(body, headers, host)
    # H1: no exists() here; store_event answers a reused nonce with 401.
    payload: Payload | None = None
    try:
        payload = parse_payload(body)
        check_test_mode(payload)
    except PayloadError as err:
        webhooks.store_event(nonce, body, payload, str(err))
        raise FlexChargeWebhookError(str(err), 400) from err
    event = webhooks.store_event(nonce, body, payload, "")
    target = webhooks.EVENT_STATUS.get(payload.event)
    if target is None:
        return webhooks.apply_event(event, payload)  # rare: the package's path
    try:
        with transaction.atomic():
            return _apply_fresh(event, payload, target)
    except Exception as err:
        event.status, event.error = Stored.FAILED, f"{type(err).__name__}: {err}"
        WebhookEvent.objects.filter(pk=event.pk).update(
            status=event.status, error=event.error, processed_at=timezone.now()
        )
        raise


def _find_order(payload: Payload) -> FlexChargeOrder | None:
    # H4: no JSON columns, and get() on a unique key (no ORDER BY ... LIMIT).
    orders = FlexChargeOrder.objects.select_for_update().defer(
        "request_payload", "response_payload", "api_errors"
    )
    for field, value in (
        ("order_session_key", payload.order_id),
        ("order_id", payload.external_order_id),
    ):
        if value:
            try:
                return orders.get(**{field: value})
            except FlexChargeOrder.DoesNotExist:
                pass
    return None


def _apply_fresh(event: WebhookEvent, payload: Payload, target: str) -> WebhookEvent:
    """``webhooks._apply_locked`` for an event this request just stored (H2, H3)."""
    finish = webhooks._finish
    order = _find_order(payload)
    # H2: no SELECT ... FOR UPDATE of the event: nobody else knows its id yet.
    if order is None:
        return finish(event, Stored.IGNORED, "no order matches")
    event.order = order
    if payload.order_id and order.order_session_key != payload.order_id:
        if order.order_session_key:
            return finish(event, Stored.IGNORED, "OrderId differs from the order's FlexCharge id")
        order.order_session_key = payload.order_id
        order.save(update_fields=["order_session_key", "updated"])
    # H3: only a refused transition (or a refund) can be a redelivery of an applied event.
    if target == Status.REFUNDED or not can_transition(order.status, target):
        earlier = webhooks._applied_before(event, order, payload)
        if earlier:
            return finish(event, Stored.DUPLICATE, f"already applied by event #{earlier}")
    if payload.timestamp and order.last_event_at and payload.timestamp < order.last_event_at:
        return finish(event, Stored.IGNORED, "older than the last event applied to the order")
    new_status, refunded = target, order.refunded_amount
    if target == Status.REFUNDED:
        total = refunded_total(payload.event_data, order.currency, order.refunded_amount)
        if total is None or total >= order.amount:
            refunded = order.amount
        else:
            new_status, refunded = Status.PARTIALLY_REFUNDED, max(total, order.refunded_amount)
    more_refunded = new_status == order.status == Status.PARTIALLY_REFUNDED
    more_refunded = more_refunded and refunded > order.refunded_amount
    if not (more_refunded or can_transition(order.status, new_status)):
        return finish(event, Stored.IGNORED, f"order is {order.status}")
    order.refunded_amount = refunded
    order.last_event_at = payload.timestamp or order.last_event_at
    order.confirmation_id = payload.confirmation_id or order.confirmation_id
    fields = ("refunded_amount", "last_event_at", "confirmation_id")
    if more_refunded:
        order.save(update_fields=[*fields, "updated"])
    else:
        transition(order, new_status, event=event, update_fields=fields)
    return finish(event, Stored.APPLIED)


# --- K1 + K2: the token in process memory too; no environment look-ups per request ---


class FastClient(FlexChargeClient):
    """Reads the shared cache once per token, not once per call (K1), and does
    not make ``requests`` consult the environment on every call (K2)."""

    _local: tuple[str, float] | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The proxies the environment names, resolved once (none in the benchmark).
        self.session.proxies.update(requests.utils.get_environ_proxies(conf.API_URL))
        self.session.trust_env = False

    def _cached_token(self) -> str | None:
        local = self._local
        if local and local[1] - TOKEN_MARGIN > time.time():
            return local[0]
        from django.core.cache import cache as django_cache

        entry = django_cache.get(self._token_cache_key)
        if entry and entry.get("expires", 0) - TOKEN_MARGIN > time.time():
            self._local = (str(entry["token"]), float(entry["expires"]))
            return self._local[0]
        return None

    def drop_token(self, token: str | None = None) -> None:
        self._local = None
        super().drop_token(token)
