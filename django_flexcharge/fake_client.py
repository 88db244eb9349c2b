"""FakeFlexChargeClient: an in-memory ``FlexChargeClient`` for tests (import it from ``testing``).

It has the real client's endpoint methods and signatures, records every call
and answers from a script; without a script each method gives a plausible
success shaped like FlexCharge's (flexcharge-api.md §3-§9). It subclasses the
real client, so ``set_client(fake)`` type-checks and any endpoint added later
without a fake fails loudly instead of reaching the network::

    fake = FakeFlexChargeClient()
    fake.queue("evaluate", {"status": "APPROVED", "orderSessionKey": "fc-1"})
    fake.queue("refund", FlexChargeTimeout("timed out"))     # raised
    fake.set_answer("get_order", lambda call: {...})         # once the queue is empty
    set_client(fake)
    ...
    assert fake.calls_to("refund")[0]["amount"] == 500
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from .client import FlexChargeClient
from .redaction import reveal

ENVELOPE: dict[str, Any] = {
    "success": True,
    "result": None,
    "status": None,
    "statusCode": None,
    "errors": [],
    "customProperties": {},
}


@dataclass(frozen=True)
class Call:
    """One call to the fake: the method name and its arguments by parameter name."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.params[name]


class FakeFlexChargeClient(FlexChargeClient):
    """Scripted answers, a record of calls, no network. Thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self._queues: dict[str, deque[Any]] = defaultdict(deque)
        self._answers: dict[str, Any] = {}
        self._session_keys: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- scripting ---

    def queue(self, method: str, *answers: Any) -> None:
        """Answers for the next calls of ``method``, in order: a dict (returned, copied),
        an exception instance or class (raised) or a callable taking the ``Call``."""
        self._check(method)
        with self._lock:
            self._queues[method].extend(answers)

    def set_answer(self, method: str, answer: Any) -> None:
        """The answer of every call of ``method`` once its queue is empty."""
        self._check(method)
        with self._lock:
            self._answers[method] = answer

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._queues.clear()
            self._answers.clear()

    # --- the client's surface ---

    def get_token(self) -> str:
        return "fake-access-token"

    def drop_token(self, token: str | None = None) -> None:
        """Nothing is cached."""

    def authenticate(self) -> dict[str, Any]:
        return self._call("authenticate")

    def tokenize(self, body: Any) -> dict[str, Any]:
        return self._call("tokenize", body=reveal(body))

    def transmit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("transmit", body=body)

    def evaluate(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("evaluate", body=body)

    def outcome(self, order_session_key: str) -> dict[str, Any]:
        return self._call("outcome", order_session_key=order_session_key)

    def get_order(self, order_session_key: str) -> dict[str, Any]:
        return self._call("get_order", order_session_key=order_session_key)

    def list_orders(self, **params: Any) -> dict[str, Any]:
        return self._call("list_orders", **params)

    def refund(
        self, order_session_key: str, amount: int, currency: str, *, message: str = ""
    ) -> dict[str, Any]:
        return self._call(
            "refund",
            order_session_key=order_session_key,
            amount=amount,
            currency=currency,
            message=message,
        )

    def cancel(self, order_session_key: str, *, idempotency_key: str = "") -> dict[str, Any]:
        return self._call(
            "cancel", order_session_key=order_session_key, idempotency_key=idempotency_key
        )

    def external_cancel(self, order_id: str, *, idempotency_key: str = "") -> dict[str, Any]:
        return self._call("external_cancel", order_id=order_id, idempotency_key=idempotency_key)

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError(f"FakeFlexChargeClient has no answer for {method} /{path}")

    # --- answering ---

    def _check(self, method: str) -> None:
        if not callable(getattr(self, f"default_{method}", None)):
            raise ValueError(f"FlexChargeClient has no endpoint method {method!r}")

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        call = Call(method, params)
        with self._lock:
            self.calls.append(call)
            queue = self._queues.get(method)
            answer = queue.popleft() if queue else self._answers.get(method)
        if answer is None:
            answer = getattr(self, f"default_{method}")(call)
        if isinstance(answer, type) and issubclass(answer, BaseException):
            raise answer(f"scripted failure of {method}")
        if callable(answer):
            answer = answer(call)
        if isinstance(answer, BaseException):
            raise answer
        return copy.deepcopy(answer)

    # Defaults: the success FlexCharge would give. Override in a subclass to change them.

    def default_authenticate(self, call: Call) -> dict[str, Any]:
        expires = int((time.time() + 600) * 1000)
        token = {"accessToken": "fake-access-token", "refreshToken": "fake-refresh"}
        return {**ENVELOPE, **token, "expires": expires, "id": str(uuid.uuid4())}

    def default_tokenize(self, call: Call) -> dict[str, Any]:
        method = call["body"].get("payment_method") or {}
        card = method.get("credit_card") or {}
        number = str(card.get("number") or "4111111111111111")
        vaulted = {
            "token": str(uuid.uuid4()),
            "last_four_digits": number[-4:],
            "first_six_digits": number[:6],
            "card_type": None,
            "first_name": card.get("first_name"),
            "last_name": card.get("last_name"),
            "month": int(card.get("month") or 12),
            "year": int(card.get("year") or 2099),
        }
        return {**ENVELOPE, "transaction": {"succeeded": True, "payment_method": vaulted}}

    def default_transmit(self, call: Call) -> dict[str, Any]:
        return {**ENVELOPE, "transmitId": str(uuid.uuid4())}

    def default_evaluate(self, call: Call) -> dict[str, Any]:
        # The same idempotency key gets the same FlexCharge order, as on the real API.
        idempotency_key = str(call["body"].get("idempotencyKey") or uuid.uuid4())
        with self._lock:
            key = self._session_keys.setdefault(idempotency_key, str(uuid.uuid4()))
        answer = {"orderSessionKey": key, "orderId": key, "senseKey": None}
        return {**ENVELOPE, **answer, "result": "Success", "status": "SUBMITTED"}

    def default_outcome(self, call: Call) -> dict[str, Any]:
        return {**ENVELOPE, "status": "SUBMITTED", "confirmationId": None}

    def default_get_order(self, call: Call) -> dict[str, Any]:
        return {"id": call["order_session_key"], "status": 4, "statusName": "PROCESSING"}

    def default_list_orders(self, call: Call) -> dict[str, Any]:
        size = int(call.params.get("pageSize", 10))
        return {
            "results": [],
            "pageNumber": 1,
            "pageSize": size,
            "pageCount": 0,
            "totalItemCount": 0,
            "hasNextPage": False,
            "hasPreviousPage": False,
            "isFirstPage": True,
            "isLastPage": True,
        }

    def default_refund(self, call: Call) -> dict[str, Any]:
        answer = {"responseCode": "0", "responseMessage": "APPROVED"}
        return {**ENVELOPE, **answer, "transactionId": str(uuid.uuid4()), "status": "SUCCESS"}

    def default_cancel(self, call: Call) -> dict[str, Any]:
        return {}

    def default_external_cancel(self, call: Call) -> dict[str, Any]:
        return {}
