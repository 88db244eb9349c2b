"""Order lifecycle and the order endpoints: get, list, outcome, refund, cancel.

A managed MIT order is created ``Draft`` (0), picked up as ``Processing`` (4)
after ``pickup_delay``, then resolved by the clock or the control plane:
rescued -> ``Completed`` (7) + ``order.completed``; not rescued -> expired +
``order.expired``. FlexCharge does not document how ``GET /orders/{id}``
shows an expired order (§19.4); the emulator shows ``Cancelled`` (2) with
``statusName`` "CANCELLED" and two invented fields, ``"expired": true`` and
``"outcome": "EXPIRED"`` (the ``/outcome`` vocabulary), so a client can tell
expiry from a merchant cancel (``outcome`` "CANCELLED") and from a
synchronous decline (``outcome`` "DECLINED").
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from . import refund_knobs, scenarios
from .clock import Scheduler
from .config import EmulatorConfig
from .currency import exponent as _exponent
from .payloads import canonical, envelope, failure, get, invalid, is_blank, required
from .payloads import validation_error as v400
from .state import CANCELLED, COMPLETED, DRAFT, PROCESSING, RETURNED, STATUS_NAMES, Order, State
from .webhooks import WebhookSender

Response = tuple[int, Any]


def _not_found(what: str) -> Response:
    return 404, failure(f"{what} not found", "404", status="NOTFOUND")


class Orders:
    def __init__(
        self, config: EmulatorConfig, state: State, clock: Scheduler, webhooks: WebhookSender
    ) -> None:
        self.config, self.state, self.clock, self.webhooks = config, state, clock, webhooks
        self.refund_knobs = refund_knobs.RefundKnobs()

    # -- lifecycle ---------------------------------------------------------------------------

    def add(self, order: Order) -> None:
        """Store a new order and start its clock (caller holds the state lock)."""
        self.state.orders[order.id] = order
        self.state.orders_by_external.setdefault(order.external_order_id, order)
        if order.pending:
            delay = self.config.rescue_delay
            if order.fate != scenarios.RESCUED:
                delay = self.config.expire_delay
            pickup = (
                self.config.pickup_delay
                if delay is None
                else min(self.config.pickup_delay, delay / 2)
            )
            self.clock.call_later(pickup, lambda: self._pick_up(order.id))
            if delay is not None:
                order.timer = self.clock.call_later(delay, lambda: self._timer_fired(order.id))
        elif order.status == COMPLETED:
            # A synchronous approval is an approved order too; FlexCharge notifies it.
            self.webhooks.send("order.completed", order)

    def _pick_up(self, order_id: str) -> None:
        with self.state.lock:
            order = self.state.orders.get(order_id)
            if order is not None and order.status == DRAFT:
                order.status, order.outcome = PROCESSING, "PROCESSING"

    def _timer_fired(self, order_id: str) -> None:
        order = self.state.orders.get(order_id)
        if order is None or not order.pending:
            return  # resolved by control, cancelled, or reset meanwhile
        self.resolve(order_id, rescued=order.fate == scenarios.RESCUED)

    def resolve(self, order_id: str, *, rescued: bool) -> Order:
        """Finish a pending order now and queue its webhook; LookupError/ValueError otherwise."""
        with self.state.lock:
            order = self.state.orders.get(order_id)
            if order is None:
                raise LookupError(f"unknown order {order_id}")
            if not order.pending:
                raise ValueError(f"order {order_id} is {STATUS_NAMES[order.status]}, not pending")
            if order.timer is not None:
                order.timer.cancel()
            if rescued:
                order.status, order.outcome = COMPLETED, "APPROVED"
                self.webhooks.send("order.completed", order)
            else:
                order.status, order.outcome = CANCELLED, "EXPIRED"
                self.webhooks.send("order.expired", order)
            return order

    def send_event(self, order_id: str, event: str, event_data: dict[str, Any] | None) -> None:
        """Emit any event for an order without changing it (chargebacks, challenges...)."""
        with self.state.lock:
            order = self.state.orders.get(order_id)
            if order is None:
                raise LookupError(f"unknown order {order_id}")
            self.webhooks.send(event, order, event_data)

    # -- read ---------------------------------------------------------------------------------

    def get(self, order_id: str) -> Response:
        with self.state.lock:
            order = self.state.orders.get(order_id)
            return (200, order.to_api()) if order else _not_found("Order")

    def outcome(self, body: Any) -> Response:
        """Deprecated ``POST /outcome`` (§7.1)."""
        key = get(body, "orderSessionKey")
        if is_blank(key):
            return 400, v400({"OrderSessionKey": [required("OrderSessionKey")]})
        with self.state.lock:
            self.state.outcomes.append(str(key))
            order = self.state.orders.get(str(key))
            if order is None:
                return 200, envelope(status="NOTFOUND", confirmationId=None, success=False)
            return 200, envelope(status=order.outcome, confirmationId=order.confirmation_id)

    def list(self, query: dict[str, list[str]]) -> Response:
        """``GET /orders`` paged like X.PagedList (§7.3); items are in ``results`` (invented)."""
        try:
            size = int(query.get("pageSize", ["10"])[0])
            number = int(query.get("pageNumber", ["1"])[0])
            statuses = {int(s) for raw in query.get("status", []) for s in raw.split(",") if s}
            start = _when(query.get("from", [""])[0])
            end = _when(query.get("to", [""])[0])
        except ValueError:
            return 400, v400({"Query": ["The query string is invalid."]})
        if size < 1 or number < 1:
            return 400, v400({"PageSize": [invalid("PageSize")]})
        text = query.get("query", [""])[0].lower()
        with self.state.lock:
            orders = [
                o
                for o in self.state.orders.values()
                if (not statuses or o.status in statuses)
                and (start is None or _when(o.placed_at) >= start)  # type: ignore[operator]
                and (end is None or _when(o.placed_at) <= end)  # type: ignore[operator]
                and (
                    not text
                    or text in f"{o.id} {o.external_order_id} {o.payer.get('email')}".lower()
                )
            ]
            by_amount = query.get("orderBy", ["createdOn"])[0].lower() == "amount"
            descending = query.get("sort", ["desc"])[0].lower() != "asc"
            orders.sort(key=lambda o: o.amount if by_amount else o.placed_at, reverse=descending)
            total = len(orders)
            page = [o.to_api() for o in orders[(number - 1) * size : number * size]]
        pages = math.ceil(total / size)
        return 200, {
            "results": page,
            "firstItemOnPage": (number - 1) * size + 1 if page else 0,
            "hasNextPage": number < pages,
            "hasPreviousPage": number > 1,
            "isFirstPage": number == 1,
            "isLastPage": number >= pages,
            "lastItemOnPage": (number - 1) * size + len(page) if page else 0,
            "pageCount": pages,
            "pageNumber": number,
            "pageSize": size,
            "totalItemCount": total,
        }

    # -- write --------------------------------------------------------------------------------

    def refund(self, order_id: str, body: Any) -> Response:
        """``amountToRefund`` is major units; more than the refundable rest -> FAILED 2001 (§9).

        ``refund_knobs`` can turn the answer into a decline inside a success
        envelope, or lose it after the refund was applied.
        """
        raw = get(body, "amountToRefund")
        if is_blank(raw):
            return 400, v400({"AmountToRefund": [required("AmountToRefund")]})
        try:
            amount = Decimal(str(raw)) if not isinstance(raw, bool) else Decimal("NaN")
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite() or amount <= 0:
            return 400, v400({"AmountToRefund": [invalid("AmountToRefund")]})
        with self.state.lock:
            order = self.state.orders.get(order_id)
            if order is None:
                return _not_found("Order")
            exponent = _exponent(order.currency)
            cents = amount.scaleb(exponent)
            if cents != cents.to_integral_value():
                return 400, v400({"AmountToRefund": [invalid("AmountToRefund")]})
            # Only captured (Completed) money can be refunded; anything else has 0 left.
            refundable = order.amount - order.refunded if order.status == COMPLETED else 0
            record = {
                "order_id": order.id,
                "amount": int(cents),
                "message": get(body, "refundMessage"),
            }
            if int(cents) > refundable:
                message = (
                    f"Amount to refund ({amount:.{exponent}f}) is greater than maximum refund "
                    f"amount in ({Decimal(refundable).scaleb(-exponent):.{exponent}f}))"
                )
                self.state.refunds.append({**record, "status": "FAILED"})
                return 200, failure(
                    message,
                    "2001",
                    responseCode="2001",
                    responseMessage=message,
                    transactionId=None,
                )
            decline, lose = self.refund_knobs.take()
            if decline:
                self.state.refunds.append({**record, "status": "DECLINED"})
                return 200, refund_knobs.declined_in_success()
            transaction_id = self._apply_refund(order, int(cents))
            self.state.refunds.append({**record, "status": "SUCCESS"})
            if lose:
                return refund_knobs.lost(lose)
            return 200, envelope(
                responseCode="0",
                responseMessage="APPROVED",
                transactionId=transaction_id,
                status="SUCCESS",
            )

    def portal_refund(self, order_id: str, amount: int) -> Order:
        """A refund made in FlexCharge's portal: applied, announced by webhook, no API call."""
        with self.state.lock:
            order = self.state.orders.get(order_id)
            if order is None:
                raise LookupError(f"unknown order {order_id}")
            refundable = order.amount - order.refunded if order.status == COMPLETED else 0
            if (
                isinstance(amount, bool)
                or not isinstance(amount, int)
                or not 0 < amount <= refundable
            ):
                raise ValueError(f"amount must be 1..{refundable} minor units")
            self._apply_refund(order, amount, always_notify=True)
            self.state.refunds.append({"order_id": order.id, "amount": amount, "status": "PORTAL"})
            return order

    def _apply_refund(self, order: Order, cents: int, *, always_notify: bool = False) -> str:
        """Refund ``cents`` of ``order`` (caller holds the lock) and send ``order.refunded``."""
        transaction_id = str(uuid.uuid4())
        order.refunded += cents
        exponent = _exponent(order.currency)
        full = order.refunded >= order.amount
        if full:
            order.status = RETURNED
        knobs = self.refund_knobs
        if full or always_notify or knobs.webhook_on_partial:
            # EventData of order.refunded is undocumented (§19.3); this shape is invented.
            data = {
                "RefundAmount": float(Decimal(cents).scaleb(-exponent)),
                "TotalRefundedAmount": float(Decimal(order.refunded).scaleb(-exponent)),
                "Currency": order.currency,
                "TransactionId": transaction_id,
            }
            self.webhooks.send("order.refunded", order, data if knobs.webhook_amounts else None)
        return transaction_id

    def cancel(self, ident: str, body: Any, *, external: bool) -> Response:
        """``/cancel`` and ``/external-cancel`` (§8): pending only, idempotent, optional key."""
        key = get(body, "idempotencyKey")
        signature = canonical(["external" if external else "id", ident, body])
        with self.state.lock:
            if not is_blank(key):
                prior = self.state.cancel_keys.get(str(key))
                if prior is not None:
                    if prior[0] != signature:
                        return 409, failure(
                            "The idempotency key was used with a different payload", "409"
                        )
                    return prior[1], prior[2]
            order = self.state.find_external(ident) if external else self.state.orders.get(ident)
            if order is None:
                return _not_found("Order")
            entry = {"order_id": order.id, "external": external}
            if order.status == CANCELLED and order.outcome == "CANCELLED":
                response: Response = (200, {})  # already cancelled by the merchant: same answer
                self.state.cancels.append({**entry, "result": "repeat"})
            elif not order.pending:
                name = "EXPIRED" if order.outcome == "EXPIRED" else STATUS_NAMES[order.status]
                response = 400, failure(f"Order in status {name} cannot be cancelled", "400")
                self.state.cancels.append({**entry, "result": "rejected"})
            else:
                if order.timer is not None:
                    order.timer.cancel()
                order.status, order.outcome = CANCELLED, "CANCELLED"
                self.state.cancels.append({**entry, "result": "cancelled"})
                self.webhooks.send("order.cancelled", order)
                response = (200, {})
            if not is_blank(key):
                self.state.cancel_keys[str(key)] = (signature, *response)
            return response


def _when(text: str) -> datetime | None:
    """ISO-8601 to an aware datetime (naive means UTC); None for ""; ValueError if malformed."""
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
