"""Signed webhook deliveries, redelivered until the site answers 2xx.

The payload is the PascalCase object of flexcharge-api.md §11.3, serialized
compactly like the official sample and sent as ``text/plain`` (the flexfactor
docs warn it is not ``application/json``). Headers come from
the emulator's own ``signing.sign_headers`` (written from FlexCharge's
documentation, not shared with the app, so the app's verifier meets a second
implementation), for the host the site sees in ``Host``.

FlexCharge documents no retry policy (§11.5, §19.2); the emulator's is
invented: redeliver on a non-2xx answer or a connection error after 0.5 s,
1 s, 2 s, 4 s ... (capped at 30 s) up to ``webhook_max_attempts`` attempts,
each with ``IsResent: true``, a fresh nonce and a fresh date; with
``webhook_resend_original_headers`` each redelivery repeats the first
attempt's exact bytes and headers instead. ``TimeStamp`` stays the event's time. Deliveries run in their own thread so an API request
never waits for the site.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from .clock import Scheduler
from .config import EmulatorConfig, webhook_host
from .signing import sign_headers
from .state import Order, State, now_iso

logger = logging.getLogger("flexcharge_emulator")


class WebhookSender:
    def __init__(self, config: EmulatorConfig, state: State) -> None:
        self.config = config
        self.state = state
        self._scheduler = Scheduler("flexcharge-emulator-webhooks")

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        self._scheduler.stop()

    def clear(self) -> None:
        self._scheduler.clear()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued delivery (and redelivery) is done or given up."""
        return self._scheduler.wait_idle(timeout)

    def pending(self) -> int:
        return self._scheduler.pending()

    def send(self, event: str, order: Order, event_data: dict[str, Any] | None = None) -> None:
        """Queue ``event`` for ``order``; returns at once."""
        payload = {
            "Event": event,
            "TimeStamp": now_iso(),
            "EventData": event_data,
            "ExternalOrderId": order.external_order_id,
            "OrderId": order.id,
            "ConfirmationId": order.confirmation_id,
            "IsTestMode": True,
            "IsResent": False,
        }
        with self.state.lock:
            self.state.events.append(dict(payload))
        if not self.config.webhook_url:
            return
        self._scheduler.call_later(0, lambda: self._attempt(payload, 1))

    def _attempt(
        self,
        payload: dict[str, Any],
        attempt: int,
        first: tuple[bytes, dict[str, str]] | None = None,
    ) -> None:
        url = self.config.webhook_url
        if not url:
            return
        if first is not None and self.config.webhook_resend_original_headers:
            body, headers = first
            payload = {**payload, "IsResent": False}
        else:
            payload = {**payload, "IsResent": attempt > 1}
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            host = webhook_host(url)
            headers = {
                "Host": host,
                "Content-Type": "text/plain; charset=utf-8",
                "User-Agent": "django-flexcharge-emulator",
                **sign_headers(self.config.subscriber_key, host, body),
            }
        first = first or (body, headers)
        status, error = self._post(url, body, headers)
        ok = status is not None and 200 <= status < 300
        self.state.record_delivery(
            {
                "event": payload["Event"],
                "order_id": payload["OrderId"],
                "external_order_id": payload["ExternalOrderId"],
                "status": status,
                "resent": payload["IsResent"],
                "attempt": attempt,
                "error": error,
                "at": time.time(),
                "url": url,
                "body": body.decode("utf-8"),
                "headers": headers,
            }
        )
        logger.info(
            "webhook %s %s attempt %d -> %s",
            payload["Event"],
            payload["OrderId"],
            attempt,
            status if status is not None else error,
        )
        if not ok and attempt < self.config.webhook_max_attempts:
            delay = self.config.backoff(attempt)
            self._scheduler.call_later(delay, lambda: self._attempt(payload, attempt + 1, first))

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
        """POST without following redirects; (status, "") or (None, error text)."""
        parts = urlsplit(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=self.config.webhook_timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status, ""
        except (OSError, http.client.HTTPException) as err:
            return None, f"{type(err).__name__}: {err}"
        finally:
            conn.close()
