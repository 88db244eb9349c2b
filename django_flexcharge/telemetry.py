"""OpenTelemetry spans and metrics for FlexCharge calls and webhooks, through ``opentelemetry-api`` only.

Without an SDK configured by the host, the API's tracer and meter are no-ops,
so this costs a few function calls. With one, every HTTP exchange with
FlexCharge is a client span (``FlexCharge POST evaluate``) and every webhook
delivery a server span, with the attributes ``flexcharge.endpoint``,
``http.response.status_code``, ``flexcharge.attempt`` and ``flexcharge.account``;
never a body, a card number, a key or a token.

The client reports each exchange through ``exchange()``; the layer around a
call (``attempts.record_call``) opens a ``CallContext`` first, so the exchange
knows its delivery attempt and the attempt row learns the HTTP status and
trace id without the client writing to the database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, StatusCode

from . import __version__

#: The account label when a caller names none (the flat settings' account).
ACCOUNT = "default"
#: Cache key of the token endpoint's last answer (read by ``health``).
AUTH_ANSWER_CACHE_KEY = "django_flexcharge:health:token_answer"

tracer = trace.get_tracer("django_flexcharge", __version__)
meter = metrics.get_meter("django_flexcharge", __version__)

calls = meter.create_counter(
    "flexcharge.calls", unit="{call}", description="HTTP exchanges with FlexCharge"
)
latency = meter.create_histogram(
    "flexcharge.call.duration", unit="ms", description="Time FlexCharge took to answer"
)
retries = meter.create_counter(
    "flexcharge.retries", unit="{call}", description="Calls that are a second or later attempt"
)
queue_age = meter.create_gauge(
    "flexcharge.queue.oldest_age",
    unit="s",
    description="Age of the oldest queued order or transmission (set when health is read)",
)
webhooks = meter.create_counter(
    "flexcharge.webhooks", unit="{delivery}", description="Webhook deliveries by verdict"
)
recovered = meter.create_counter(
    "flexcharge.recovered",
    unit="{minor_unit}",
    description="Money FlexCharge rescued, in minor units of the currency attribute",
)

# Ids in a path make an endpoint name unbounded; they become {id}.
_ID_SEGMENT = re.compile(r"^orders/[^/]+")


def endpoint_name(method: str, path: str) -> str:
    """``POST orders/{id}/refund`` for ``POST orders/INV%2F7/refund``: the same for every order."""
    path = path.lstrip("/").split("?", 1)[0]
    if path != "orders":
        path = _ID_SEGMENT.sub("orders/{id}", path)
    return f"{method.upper()} {path}"


@dataclass
class CallContext:
    """What the layer around one client call knows, and what its exchanges report back."""

    attempt: int = 1
    http_status: int | None = None
    trace_id: str = ""
    endpoint: str = ""
    exchanges: int = 0


_current: ContextVar[CallContext | None] = ContextVar("flexcharge_call", default=None)


@contextmanager
def call_context(attempt: int = 1) -> Iterator[CallContext]:
    context = CallContext(attempt=attempt)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


@dataclass
class Exchange:
    """One HTTP request/response; the client calls ``answered`` when a response came."""

    status: int | None = None
    trace_id: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    def answered(self, response: Any) -> None:
        self.status = int(response.status_code)
        headers = getattr(response, "headers", {}) or {}
        self.trace_id = str(headers.get("traceparent") or headers.get("apigw-requestid") or "")


@contextmanager
def exchange(method: str, path: str, account: str = ACCOUNT) -> Iterator[Exchange]:
    """Span and metrics around one HTTP exchange; reports status to the open ``CallContext``."""
    endpoint = endpoint_name(method, path)
    context = _current.get()
    attempt = context.attempt if context else 1
    attributes: dict[str, Any] = {
        "flexcharge.endpoint": endpoint,
        "flexcharge.attempt": attempt,
        "flexcharge.account": account,
        "http.request.method": method.upper(),
    }
    answer = Exchange(attributes=attributes)
    started = time.monotonic()
    with tracer.start_as_current_span(
        f"FlexCharge {endpoint}", kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        error: BaseException | None = None
        try:
            yield answer
        except BaseException as err:
            error = err
            raise
        finally:
            elapsed = (time.monotonic() - started) * 1000
            status = answer.status
            outcome = str(status) if status is not None else "error"
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if error is not None or (status is not None and status >= 400):
                span.set_status(StatusCode.ERROR)
                span.set_attribute(
                    "error.type", type(error).__name__ if error is not None else outcome
                )
            labels = {"flexcharge.endpoint": endpoint, "flexcharge.account": account}
            calls.add(1, {**labels, "http.response.status_code": outcome})
            latency.record(elapsed, labels)
            if context is not None and endpoint != "POST oauth2/token":
                context.exchanges += 1
                context.endpoint = endpoint
                context.http_status = status
                context.trace_id = answer.trace_id
            if endpoint == "POST oauth2/token":
                _note_token_answer(status, error)


def _note_token_answer(status: int | None, error: BaseException | None) -> None:
    answer = {
        "at": timezone.now().isoformat(),
        "status": status,
        "error": type(error).__name__ if error is not None else "",
    }
    try:
        cache.set(AUTH_ANSWER_CACHE_KEY, answer, timeout=None)
    except Exception:  # the cache being down must not fail a payment call
        return


def last_token_answer() -> dict[str, Any] | None:
    try:
        value = cache.get(AUTH_ANSWER_CACHE_KEY)
    except Exception:
        return None
    return value if isinstance(value, dict) else None


@contextmanager
def webhook_span(account: str = ACCOUNT) -> Iterator[dict[str, Any]]:
    """A server span around one delivery; the caller fills ``verdict`` (and ``event``)."""
    result: dict[str, Any] = {"verdict": "failed", "event": ""}
    with tracer.start_as_current_span(
        "FlexCharge webhook", kind=SpanKind.SERVER, attributes={"flexcharge.account": account}
    ) as span:
        try:
            yield result
        finally:
            verdict = str(result["verdict"])
            span.set_attribute("flexcharge.webhook.verdict", verdict)
            if result["event"]:
                span.set_attribute("flexcharge.webhook.event", str(result["event"]))
            if verdict in ("refused", "failed"):
                span.set_status(StatusCode.ERROR)
            webhooks.add(1, {"flexcharge.webhook.verdict": verdict, "flexcharge.account": account})


def record_recovered(amount: int, currency: str, account: str = ACCOUNT) -> None:
    recovered.add(amount, {"currency": currency, "flexcharge.account": account})


def record_queue_age(seconds: float, kind: str) -> None:
    queue_age.set(seconds, {"flexcharge.queue": kind, "flexcharge.account": ACCOUNT})
