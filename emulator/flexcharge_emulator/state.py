"""The emulator's in-memory FlexCharge: vault, orders, and what it was sent.

One re-entrant lock guards everything; request handlers hold it for a whole
business operation (check idempotency, create the order, record the request)
so concurrent duplicates are detected exactly as a single database would.
Request bodies are kept for tests to inspect, but never logged and never
returned by the ``/_emulator/state`` summary.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .clock import Job

# GET /orders/{id} status ints (flexcharge-api.md §7.2).
DRAFT, ONHOLD, CANCELLED, PROBLEM, PROCESSING, CAPTUREREQUIRED, RETURNED, COMPLETED = range(8)
STATUS_NAMES = {
    DRAFT: "DRAFT",
    ONHOLD: "ONHOLD",
    CANCELLED: "CANCELLED",
    PROBLEM: "PROBLEM",
    PROCESSING: "PROCESSING",
    CAPTUREREQUIRED: "CAPTUREREQUIRED",
    RETURNED: "RETURNED",
    COMPLETED: "COMPLETED",
}
PENDING = frozenset({DRAFT, PROCESSING})
CURRENCY_SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def confirmation_id() -> str:
    """8-char upper-case hex, like the sample's ``22ACD1D9``."""
    return secrets.token_hex(4).upper()


@dataclass
class VaultEntry:
    """What the vault remembers of a card: never the PAN or the CVV."""

    token: str
    first_six: str
    last_four: str
    month: int
    year: int
    first_name: str
    last_name: str
    email: str
    scenario: str | None
    created_at: str = field(default_factory=now_iso)


@dataclass
class Order:
    id: str
    external_order_id: str
    idempotency_key: str
    amount: int
    currency: str
    fate: str
    managed: bool
    is_mit: bool
    status: int = DRAFT
    #: The /outcome vocabulary: SUBMITTED, PROCESSING, APPROVED, DECLINED, EXPIRED, CANCELLED.
    outcome: str = "SUBMITTED"
    refunded: int = 0
    expiry_date: str | None = None
    confirmation_id: str = field(default_factory=confirmation_id)
    placed_at: str = field(default_factory=now_iso)
    payer: dict[str, Any] = field(default_factory=dict)
    billing: dict[str, Any] | None = None
    shipping: dict[str, Any] | None = None
    evaluate_response: dict[str, Any] = field(default_factory=dict)
    timer: Job | None = None

    @property
    def pending(self) -> bool:
        return self.status in PENDING

    def to_api(self) -> dict[str, Any]:
        """``GET /orders/{id}``: the documented §7.2 fields, then the invented extras."""
        billing = self.billing or {}
        return {
            "id": self.id,
            "correlationId": None,
            "referenceNumber": self.confirmation_id,
            "status": self.status,
            "statusName": STATUS_NAMES[self.status],
            "orderPlacedDate": self.placed_at,
            "expiryDate": self.expiry_date,
            "billingAddress": self.billing,
            "shippingAddress": self.shipping,
            "firstName": billing.get("firstName"),
            "lastName": billing.get("lastName"),
            "email": self.payer.get("email"),
            "phone": self.payer.get("phone"),
            "secondaryEmail": "",
            "currencyCode": self.currency,
            "currencySymbol": CURRENCY_SYMBOLS.get(self.currency, self.currency),
            # Not documented (§19.4); added so a client can reconcile without guessing.
            "amount": self.amount,
            "refundedAmount": self.refunded,
            "externalOrderId": self.external_order_id,
            "confirmationId": self.confirmation_id,
            "isMIT": self.is_mit,
            "outcome": self.outcome,
            "expired": self.outcome == "EXPIRED",
        }


class State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.tokens: dict[str, VaultEntry] = {}
            self.orders: dict[str, Order] = {}
            # The merchant orderId -> order, so a new /evaluate does not scan every order.
            self.orders_by_external: dict[str, Order] = {}
            self.transmits: list[dict[str, Any]] = []
            self.evaluate_requests: list[dict[str, Any]] = []
            self.token_requests = 0
            self.refunds: list[dict[str, Any]] = []
            self.cancels: list[dict[str, Any]] = []
            self.outcomes: list[str] = []
            #: Every webhook event emitted (payload as first sent), delivered or not.
            self.events: list[dict[str, Any]] = []
            #: Every delivery attempt: event, order_id, status (None: no answer), resent, ...
            self.deliveries: list[dict[str, Any]] = []
            #: idempotencyKey -> (canonical body, order id) of the first accepted /evaluate.
            self.evaluate_keys: dict[str, tuple[str, str]] = {}
            #: cancel idempotencyKey -> (canonical path+body, HTTP status, body) first answered.
            self.cancel_keys: dict[str, tuple[str, int, Any]] = {}
            self._counts: dict[str, Counter[str]] = {
                "evaluate": Counter(),
                "evaluate_replay": Counter(),
                "evaluate_order_id": Counter(),
                "transmit": Counter(),
            }

    def count(self, kind: str, key: str) -> None:
        with self.lock:
            self._counts[kind][key] += 1

    def count_by_idempotency_key(self, kind: str) -> dict[str, int]:
        """How many times each key was accepted as new: duplicates show as values above 1.

        ``transmit``: every accepted ``/transmit`` (FlexCharge does not dedupe
        it), keyed by body ``idempotencyKey`` or else ``"{orderId}:{transaction.id}"``.
        ``evaluate``: accepted ``/evaluate`` keys that were not replays (so 1 each);
        ``evaluate_replay``: replays per key (same key, same body: answered from
        the first response); ``evaluate_order_id``: non-replay evaluates per
        merchant ``orderId``, above 1 when a client re-sent one invoice under a
        new key. Requests that hit an injected fault were never accepted and
        are not counted, so a client that retries after a 503 still shows 1.
        """
        if kind not in self._counts:
            raise ValueError(f"kind must be one of {sorted(self._counts)}")
        with self.lock:
            return dict(self._counts[kind])

    def new_order_id(self) -> str:
        return str(uuid.uuid4())

    def find_external(self, external_order_id: str) -> Order | None:
        with self.lock:
            return self.orders_by_external.get(external_order_id)

    def record_delivery(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.deliveries.append(entry)

    def summary(self) -> dict[str, Any]:
        """JSON-able overview for ``GET /_emulator/state`` (no bodies, no card data)."""
        with self.lock:
            counts = {kind: dict(counter) for kind, counter in self._counts.items()}
            return {
                "counts": {
                    "orders": len(self.orders),
                    "tokens": len(self.tokens),
                    "transmits": len(self.transmits),
                    "evaluate_requests": len(self.evaluate_requests),
                    "refunds": len(self.refunds),
                    "cancels": len(self.cancels),
                    "events": len(self.events),
                    "deliveries": len(self.deliveries),
                },
                "token_requests": self.token_requests,
                "orders": [
                    {
                        "id": o.id,
                        "externalOrderId": o.external_order_id,
                        "status": o.status,
                        "statusName": STATUS_NAMES[o.status],
                        "outcome": o.outcome,
                        "amount": o.amount,
                        "refundedAmount": o.refunded,
                        "currency": o.currency,
                    }
                    for o in self.orders.values()
                ],
                "idempotency": counts,
                "duplicates": {
                    kind: {key: n for key, n in per_key.items() if n > 1}
                    for kind, per_key in counts.items()
                },
                "refunds": list(self.refunds),
                "cancels": list(self.cancels),
                "deliveries": [
                    {k: v for k, v in d.items() if k not in ("body", "headers")}
                    for d in self.deliveries
                ],
            }
