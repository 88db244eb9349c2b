"""Acting on an order FlexCharge holds: refund, cancel, reconcile (re-exported by ``services``).

Refunds live in ``refunds`` (imported here for existing callers). Each action
calls FlexCharge synchronously (the admin waits for the answer), then
applies it under a row lock through ``transitions.transition``, so a webhook
racing the call is seen and a finished order never reopens.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .attempts import record_call
from .client import get_client
from .delivery import hold, release
from .exceptions import (
    FlexChargeAPIError,
    FlexChargeConnectionError,
    FlexChargeError,
    FlexChargeNotFound,
    FlexChargeServerError,
    FlexChargeStateError,
    FlexChargeTimeout,
)
from .models import FlexChargeOrder
from .payloads import cancel_idempotency_key
from .refund_answers import refunded_total
from .refunds import refund_order as refund_order  # re-exported: services, older callers
from .refunds import refundable_rest as refundable_rest
from .refunds import settle_refunds
from .transitions import transition

logger = logging.getLogger("django_flexcharge.services")

Status = FlexChargeOrder.Status

#: Errors after which nobody knows whether FlexCharge applied the call.
UNKNOWN_OUTCOME = (FlexChargeTimeout, FlexChargeServerError, FlexChargeConnectionError)


def _who(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


def _locked(order: FlexChargeOrder) -> FlexChargeOrder:
    return FlexChargeOrder.objects.select_for_update().get(pk=order.pk)


# --- refund: see ``refunds`` ---

# --- cancel ---


def cancel_order(order: FlexChargeOrder, *, user: Any = None) -> FlexChargeOrder:
    """Stop a rescue: ``/cancel`` for a pending order, ``/external-cancel`` by our id
    for one FlexCharge has not answered about yet. Other states raise ``FlexChargeStateError``.

    A queued order is held (leased) during the call so no worker sends its
    ``/evaluate`` meanwhile; one that was never sent needs no call at all.
    """
    current = FlexChargeOrder.objects.get(pk=order.pk)
    who = _who(user) or "code"
    if current.status == Status.PENDING and current.order_session_key:
        with record_call(endpoint="POST orders/{id}/cancel", order=current):
            get_client(current.account).cancel(
                current.order_session_key, idempotency_key=cancel_idempotency_key(current)
            )
    elif current.status == Status.QUEUED:
        if not hold(FlexChargeOrder, current.pk):
            raise FlexChargeStateError(
                f"Order {current.order_id} is being sent to FlexCharge right now; "
                "try again in a minute."
            )
        current.refresh_from_db()
        try:
            if current.attempts:
                _external_cancel(current, missing_ok=True)
        except BaseException:
            release(FlexChargeOrder, current.pk)
            raise
    elif current.status == Status.PENDING:
        _external_cancel(current, missing_ok=False)
    else:
        raise FlexChargeStateError(
            f"Order {current.order_id} is {current.status}: only queued or pending orders "
            "can be cancelled."
        )
    with transaction.atomic():
        locked = _locked(current)
        locked.locked_until = None
        if locked.status in (Status.APPROVED, Status.PARTIALLY_REFUNDED, Status.REFUNDED):
            locked.save(update_fields=["locked_until", "updated"])
            raise FlexChargeStateError(
                f"FlexCharge approved order {locked.order_id} before the cancel reached it; "
                "the customer was charged. Refund it instead."
            )
        fields = ("locked_until",)
        if not transition(
            locked, Status.CANCELLED, update_fields=fields, cause="cancel", user=user
        ):
            locked.save(update_fields=["locked_until", "updated"])
    logger.info("Order %s cancel by %s: now %s", locked.order_id, who, locked.status)
    return locked


def _external_cancel(order: FlexChargeOrder, *, missing_ok: bool) -> None:
    try:
        with record_call(endpoint="POST orders/{id}/external-cancel", order=order):
            get_client(order.account).external_cancel(
                order.order_id, idempotency_key=cancel_idempotency_key(order)
            )
    except FlexChargeAPIError as err:
        # Every earlier /evaluate failed before FlexCharge created the order.
        if not (missing_ok and is_not_found(err)):
            raise


#: How FlexCharge may say "no such order" besides a 404 (its docs leave it open).
NOT_FOUND_WORDS = ("notfound", "not found", "does not exist")


def is_not_found(err: BaseException) -> bool:
    """True when an error answer means FlexCharge has no such order.

    A 404 says so. So does, by assumption (docs/assumptions.md), a 400 or a
    ``success: false`` envelope whose ``status``/``statusName`` is ``NOTFOUND``
    or whose message or errors say "not found": FlexCharge's ``/outcome``
    answers ``NOTFOUND`` that way, and its other error codes are undocumented.
    """
    if isinstance(err, FlexChargeNotFound):
        return True
    if not isinstance(err, FlexChargeAPIError) or err.status not in (200, 400, 422):
        return False
    response = err.response if isinstance(err.response, dict) else {}
    labels = [str(response.get(key) or "") for key in ("status", "statusName", "result")]
    texts = [str(err), *labels, *(m for ms in err.errors.values() for m in ms)]
    return any(word in text.lower() for text in texts for word in NOT_FOUND_WORDS)


# --- sync ---

#: ``GET /orders/{id}`` status codes (flexcharge-api.md §7.2).
ORDER_STATUS_NAMES = {
    0: "draft",
    1: "onhold",
    2: "cancelled",
    3: "problem",
    4: "processing",
    5: "capturerequired",
    6: "returned",
    7: "completed",
}
#: FlexCharge still works on these: the order stays (or becomes) pending.
HOLDING = frozenset({"draft", "onhold", "problem", "processing", "capturerequired"})


def _status_name(data: dict[str, Any]) -> str:
    code = data.get("status")
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool):
        return ORDER_STATUS_NAMES.get(code, f"status {code}")
    return str(code or data.get("statusName") or "").strip().lower()


#: ``POST /outcome`` statuses that tell apart the ends a ``Cancelled`` order can have.
OUTCOME_ENDS = {
    "EXPIRED": Status.EXPIRED,
    "DECLINED": Status.DECLINED,
    "CANCELLED": Status.CANCELLED,
}


def order_status_from(
    data: dict[str, Any], order: FlexChargeOrder, now: dt.datetime, *, outcome: str = ""
) -> str | None:
    """The order status a ``GET /orders/{id}`` answer means; None when it says nothing usable.

    ``outcome`` is ``POST /outcome``'s status for the order, asked only when
    the order reads ``Cancelled``: it names the end (expired, declined,
    cancelled) that ``GET /orders/{id}`` does not (§7.2 leaves it unknown).
    """
    name = _status_name(data)
    label = str(data.get("statusName") or "").strip().lower()
    if label == "expired" or name == "expired":
        return Status.EXPIRED
    if name == "completed":
        return Status.APPROVED
    if name == "returned":
        return Status.REFUNDED
    if name == "cancelled":
        if outcome.upper() in OUTCOME_ENDS:
            return OUTCOME_ENDS[outcome.upper()]
        # Without /outcome: Cancelled after the rescue window is read as expired.
        expiry = parse_datetime(str(data.get("expiryDate") or "")) or order.expiry_date
        if data.get("expired") is True or (expiry is not None and expiry <= now):
            return Status.EXPIRED
        return Status.CANCELLED
    if name in HOLDING:
        if name in ("onhold", "problem"):
            logger.warning("Order %s is %s at FlexCharge: see the portal", order.order_id, name)
        return Status.PENDING
    logger.warning("Order %s: unknown FlexCharge status %r", order.order_id, name)
    return None


def _outcome_status(client: Any, order: FlexChargeOrder) -> str:
    """``POST /outcome``'s status, or "" when it cannot say (deprecated, so it may be gone)."""
    try:
        with record_call(endpoint="POST outcome", order=order):
            answer = client.outcome(order.order_session_key)
    except FlexChargeError as err:
        logger.info("Order %s: /outcome unavailable (%s); reading Cancelled alone", order, err)
        return ""
    return str(answer.get("status") or "").strip().upper()


#: ``GET /orders`` keys that may hold the page's orders, and the names an order's
#: ``orderId`` (ours) may have in it: the list's item shape is undocumented.
LIST_KEYS = ("results", "items", "data", "orders")
EXTERNAL_ID_KEYS = ("externalorderid", "externalid", "merchantorderid")


def find_by_order_id(client: Any, order: FlexChargeOrder) -> dict[str, Any] | None:
    """FlexCharge's order for our ``order_id`` (``GET /orders?query=``), or None.

    For an order whose ``/evaluate`` answer never came: FlexCharge may hold it
    under an id we were never told. Only an item whose external id is exactly
    ours counts, and only when it is the one such item.
    """
    with record_call(endpoint="GET orders", order=order):
        data = client.list_orders(query=order.order_id, pageSize=50)
    items: list[Any] = next((data[key] for key in LIST_KEYS if isinstance(data.get(key), list)), [])
    matches = []
    for item in items:
        if not isinstance(item, dict):
            continue
        fields = {str(name).lower(): value for name, value in item.items()}
        if any(str(fields.get(key) or "") == order.order_id for key in EXTERNAL_ID_KEYS):
            matches.append(item)
    if len(matches) != 1 or not str(matches[0].get("id") or "").strip():
        return None
    return matches[0]


def _learn_session_key(order: FlexChargeOrder, client: Any) -> FlexChargeOrder | None:
    """Look ``order`` up by our id and store FlexCharge's id; None when FlexCharge has none."""
    found = find_by_order_id(client, order)
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(order)
        locked.last_synced_at = now
        if found is None:
            locked.save(update_fields=["last_synced_at", "updated"])
            logger.info("Order %s: FlexCharge lists no order for it", locked.order_id)
            return None
        if not locked.order_session_key:
            key = str(found["id"]).strip()[:64]
            taken = FlexChargeOrder.objects.filter(account=locked.account, order_session_key=key)
            if taken.exists():
                logger.warning("Order %s: FlexCharge id %s belongs to another order", order, key)
                locked.save(update_fields=["last_synced_at", "updated"])
                return None
            locked.order_session_key = key
        locked.save(update_fields=["order_session_key", "last_synced_at", "updated"])
    logger.info("Order %s: found at FlexCharge as %s", locked.order_id, locked.order_session_key)
    return locked


def may_be_held(order: FlexChargeOrder) -> bool:
    """Whether FlexCharge may hold ``order`` under an id we were never told."""
    return order.status == Status.PENDING or (order.status == Status.FAILED and order.attempts > 0)


def sync_order(order: FlexChargeOrder, *, user: Any = None) -> FlexChargeOrder:
    """Reconcile ``order`` with ``GET /orders/{id}``; returns it as stored afterwards.

    An order without FlexCharge's id that may have reached it (pending after a
    lost answer, or failed after attempts) is first looked up by our id with
    ``GET /orders?query=``; found, its id is stored and it is reconciled as
    usual; not found, it is returned unchanged.

    ``user``, when a person asked for it, is recorded on the status changes it makes.
    """
    current = FlexChargeOrder.objects.get(pk=order.pk)
    client = get_client(current.account)
    if not current.order_session_key and may_be_held(current):
        found = _learn_session_key(current, client)
        if found is None:
            return FlexChargeOrder.objects.get(pk=order.pk)
        current = found
    if not current.order_session_key:
        raise FlexChargeStateError(
            f"Order {current.order_id} has no FlexCharge order id yet (still {current.status})."
        )
    with record_call(endpoint="GET orders/{id}", order=current):
        data = client.get_order(current.order_session_key)
    outcome = ""
    if _status_name(data) == "cancelled":
        outcome = _outcome_status(client, current)
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(current)
        target = order_status_from(data, locked, now, outcome=outcome)
        if target == Status.REFUNDED and locked.status == Status.PENDING:
            # Rescued, then refunded: the host hears both, in order.
            transition(locked, Status.APPROVED, cause="sync from FlexCharge", user=user)
            locked = _locked(current)
        locked.response_payload = data
        locked.last_synced_at = now
        fields = ["response_payload", "last_synced_at"]
        expiry = parse_datetime(str(data.get("expiryDate") or ""))
        if expiry is not None:
            locked.expiry_date = expiry
            fields.append("expiry_date")
        if target == Status.REFUNDED:
            target = None  # settle_refunds moves it, with the amount
        changed = target is not None and transition(
            locked, target, update_fields=tuple(fields), cause="sync from FlexCharge", user=user
        )
        if not changed:
            locked.save(update_fields=[*fields, "updated"])
        total = refunded_total(data, locked.amount, locked.currency)
        if total is None and _status_name(data) == "returned":
            total = locked.amount  # Returned: refunded in full
        settle_refunds(locked, total, now)
    return locked
