"""``Emulator``: one local FlexCharge, serving in a background thread.

It wires the pieces together (state, clock, webhook sender, faults, the HTTP
server) and offers the Python side of the control plane, so in-process tests
need no HTTP calls to steer it. Everything stops with ``stop()``; tests start
and stop many emulators, so no thread or socket may outlive it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from . import sensejs
from .api import Api
from .auth import TokenIssuer
from .clock import Scheduler
from .config import EmulatorConfig
from .faults import Faults
from .orders import Orders
from .refund_knobs import RefundKnobs
from .server import make_handler
from .serving import Serving
from .state import State
from .webhooks import WebhookSender


class Emulator(Serving):
    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = State()
        self.faults = Faults()
        self.issuer = TokenIssuer(self.config.mid, self.config.token_ttl)
        self.clock = Scheduler("flexcharge-emulator-clock")
        self.webhooks = WebhookSender(self.config, self.state)
        self.orders = Orders(self.config, self.state, self.clock, self.webhooks)
        self.api = Api(self.config, self.state, self.issuer, self.orders)
        self.stopping = threading.Event()
        super().__init__(self.config.host, self.config.port)

    def _handler(self) -> type:
        return make_handler(self, self._routes())

    def _merchants(self) -> Sequence[Emulator]:
        return (self,)

    # -- control -----------------------------------------------------------------------------

    def approve(self, order_session_key: str) -> dict[str, Any]:
        """Rescue a pending order now and queue ``order.completed``."""
        return self.orders.resolve(order_session_key, rescued=True).to_api()

    def expire(self, order_session_key: str) -> dict[str, Any]:
        """Expire a pending order now and queue ``order.expired``."""
        return self.orders.resolve(order_session_key, rescued=False).to_api()

    def send_webhook(
        self, order_session_key: str, event: str, event_data: dict[str, Any] | None = None
    ) -> None:
        """Queue any event (e.g. ``payment.chargeback.received``) for an existing order."""
        self.orders.send_event(order_session_key, event, event_data)

    def set_faults(self, **knobs: Any) -> None:
        """See ``faults.Faults.set``; unnamed knobs are reset to "no fault"."""
        self.faults.set(**knobs)

    def reset_faults(self) -> None:
        self.faults.reset()

    def set_refund_knobs(self, **knobs: Any) -> dict[str, Any]:
        """See ``refund_knobs.RefundKnobs``; unnamed knobs go back to their default."""
        new = RefundKnobs(**knobs)
        with self.state.lock:
            self.orders.refund_knobs = new
        return new.snapshot()

    def portal_refund(self, order_session_key: str, amount: int) -> dict[str, Any]:
        """Refund ``amount`` minor units as FlexCharge's portal would: ``order.refunded``, no API call."""
        return self.orders.portal_refund(order_session_key, amount).to_api()

    def flush_webhooks(self, timeout: float = 5) -> bool:
        return self.webhooks.flush(timeout)

    def expire_tokens(self) -> None:
        self.issuer.expire_all()

    def reset(self) -> None:
        """Forget every order, card, request and delivery; faults off. Tokens stay valid."""
        with self.state.lock:
            self.clock.clear()
            self.webhooks.clear()
            self.state.reset()
            self.orders.refund_knobs = RefundKnobs()
        self.faults.reset()

    # -- HTTP control plane ------------------------------------------------------------------

    def _routes(self) -> dict[str, Any]:
        api, orders = self.api, self.orders
        return {
            "token": lambda body, **_: api.token(body),
            "tokenize": lambda body, query, **_: api.tokenize(query, body),
            "transmit": lambda body, **_: api.transmit(body),
            "evaluate": lambda body, **_: api.evaluate(body),
            "outcome": lambda body, **_: orders.outcome(body),
            "list_orders": lambda query, **_: orders.list(query),
            "get_order": lambda ident, **_: orders.get(ident),
            "refund": lambda ident, body, **_: orders.refund(ident, body),
            "cancel": lambda ident, body, **_: orders.cancel(ident, body, external=False),
            "external_cancel": lambda ident, body, **_: orders.cancel(ident, body, external=True),
            "sensejs": sensejs.widget,
            "control_approve": lambda ident, **_: self._control(self.approve, ident),
            "control_expire": lambda ident, **_: self._control(self.expire, ident),
            "control_event": self._control_event,
            "control_get_faults": lambda **_: (200, self.faults.snapshot()),
            "control_set_faults": self._control_set_faults,
            "control_reset_faults": self._control_reset_faults,
            "control_state": lambda **_: (200, self.summary()),
            "control_refund_knobs": self._control_refund_knobs,
            "control_portal_refund": self._control_portal_refund,
            "control_reset": self._control_reset,
            "control_expire_tokens": self._control_expire_tokens,
            "control_flush": self._control_flush,
        }

    def summary(self) -> dict[str, Any]:
        data = self.state.summary()
        data.update(
            base_url=self.base_url,
            faults=self.faults.snapshot(),
            pending_webhooks=self.webhooks.pending(),
            refund_knobs=self.orders.refund_knobs.snapshot(),
        )
        plain: dict[str, Any] = json.loads(json.dumps(data, default=str))
        return plain

    @staticmethod
    def _control(action: Any, ident: str) -> tuple[int, Any]:
        try:
            return 200, action(ident)
        except LookupError as err:
            return 404, {"error": str(err)}
        except ValueError as err:
            return 409, {"error": str(err)}

    def _control_event(self, ident: str, body: Any, **_: Any) -> tuple[int, Any]:
        event = body.get("event") if isinstance(body, dict) else None
        if not isinstance(event, str) or not event:
            return 400, {"error": 'body must be {"event": "...", "eventData": {...} or null}'}
        data = body.get("eventData")

        def queue(order_id: str) -> dict[str, Any]:
            self.send_webhook(order_id, event, data)
            return {"queued": event}

        return self._control(queue, ident)

    def _control_refund_knobs(self, body: Any, **_: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"error": "body must be a JSON object of refund knobs"}
        try:
            return 200, self.set_refund_knobs(**body)
        except (TypeError, ValueError) as err:
            return 400, {"error": str(err)}

    def _control_portal_refund(self, ident: str, body: Any, **_: Any) -> tuple[int, Any]:
        amount: Any = body.get("amount") if isinstance(body, dict) else None
        return self._control(lambda order_id: self.portal_refund(order_id, amount), ident)

    def _control_reset_faults(self, **_: Any) -> tuple[int, Any]:
        self.reset_faults()
        return 200, self.faults.snapshot()

    def _control_reset(self, **_: Any) -> tuple[int, Any]:
        self.reset()
        return 200, {"reset": True}

    def _control_expire_tokens(self, **_: Any) -> tuple[int, Any]:
        self.expire_tokens()
        return 200, {"expired": True}

    def _control_set_faults(self, body: Any, **_: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"error": "body must be a JSON object of fault knobs"}
        try:
            self.set_faults(**body)
        except (TypeError, ValueError) as err:
            return 400, {"error": str(err)}
        return 200, self.faults.snapshot()

    def _control_flush(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        try:
            timeout = float(query.get("timeout", ["5"])[0])
        except ValueError:
            return 400, {"error": "timeout must be a number of seconds"}
        return 200, {"flushed": self.flush_webhooks(timeout)}
