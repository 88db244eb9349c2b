"""Reconcile an order with FlexCharge: ``GET /orders/{id}`` (found by our id if need be).

``sync_order`` reads FlexCharge's answer into a requested change (a status,
a refunded total, the answer itself) and ``order_state`` applies it under the
order's lock; unsettled refunds are settled from the total (``refunds``).
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
from .exceptions import FlexChargeError, FlexChargeStateError
from .models import FlexChargeOrder
from .order_state import change_order, lock
from .refund_answers import refunded_total
from .refunds import settle_refunds

logger = logging.getLogger("django_flexcharge.sync")

Status = FlexChargeOrder.Status


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
        locked = lock(order)
        key = locked.order_session_key or ("" if found is None else str(found["id"]).strip()[:64])
        taken = key != locked.order_session_key and (
            FlexChargeOrder.objects.filter(account=locked.account, order_session_key=key).exists()
        )
        if taken:
            logger.warning("Order %s: FlexCharge id %s belongs to another order", order, key)
        if found is None or taken:
            change_order(locked, values={"last_synced_at": now})
            if found is None:
                logger.info("Order %s: FlexCharge lists no order for it", locked.order_id)
            return None
        values = {"order_session_key": key, "last_synced_at": now}
        locked = change_order(locked, values=values).order
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
        locked = lock(current)
        target = order_status_from(data, locked, now, outcome=outcome)
        values: dict[str, Any] = {"response_payload": data, "last_synced_at": now}
        expiry = parse_datetime(str(data.get("expiryDate") or ""))
        if expiry is not None:
            values["expiry_date"] = expiry
        total = refunded_total(data, locked.amount, locked.currency)
        if total is None and target == Status.REFUNDED:
            total = locked.amount  # Returned: refunded in full
        if total is not None:
            settle_refunds(locked, total, now)
        change = change_order(
            locked,
            to=target,
            refunded=total,
            refunded_known=None if total is None else True,
            values=values,
            cause="sync from FlexCharge",
            user=user,
        )
    return change.order
