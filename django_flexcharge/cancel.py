"""Cancel a rescue: ``/cancel`` for a pending order, ``/external-cancel`` by our id.

The call goes out synchronously (the admin waits for the answer); the order
then changes through ``order_state``, under its lock, so a webhook racing
the call is seen and a finished order never reopens.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from .attempts import record_call
from .client import get_client
from .delivery import hold, release
from .exceptions import FlexChargeAPIError, FlexChargeNotFound, FlexChargeStateError
from .models import FlexChargeOrder
from .order_state import change_order, lock
from .payloads import cancel_idempotency_key

logger = logging.getLogger("django_flexcharge.cancel")

Status = FlexChargeOrder.Status


def cancel_order(order: FlexChargeOrder, *, user: Any = None) -> FlexChargeOrder:
    """Stop a rescue: ``/cancel`` for a pending order, ``/external-cancel`` by our id
    for one FlexCharge has not answered about yet. Other states raise ``FlexChargeStateError``.

    A queued order is held (leased) during the call so no worker sends its
    ``/evaluate`` meanwhile; one that was never sent needs no call at all.
    """
    current = FlexChargeOrder.objects.get(pk=order.pk)
    who = (user if getattr(user, "is_authenticated", False) else None) or "code"
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
        locked = lock(current)
        if locked.status in (Status.APPROVED, Status.PARTIALLY_REFUNDED, Status.REFUNDED):
            change_order(locked, values={"locked_until": None})
            raise FlexChargeStateError(
                f"FlexCharge approved order {locked.order_id} before the cancel reached it; "
                "the customer was charged. Refund it instead."
            )
        values = {"locked_until": None}
        change = change_order(locked, to=Status.CANCELLED, values=values, cause="cancel", user=user)
        locked = change.order
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
