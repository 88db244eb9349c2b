"""The stored history of calls to FlexCharge: one ``CallAttempt`` row per client call.

``record_call`` wraps a client call in the layer that makes it (tasks, order
actions): it times the call, learns the HTTP status and trace id from the
exchanges the client reports (``telemetry.exchange``) or from the
``FlexChargeAPIError`` raised, and stores the row afterwards in a savepoint
of its own, so a failure to store it never hides or changes the call's own
outcome. The client itself writes nothing to the database.

The stored error is the app's own description of the failure (``str()`` of a
``FlexChargeError``, which holds no body, else the exception's class name),
scrubbed once more of anything shaped like a card number or a bearer token.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from . import telemetry
from .exceptions import FlexChargeAPIError, FlexChargeError
from .group_saves import insert_many
from .models import CallAttempt, FlexChargeOrder, Refund, Transmission

logger = logging.getLogger("django_flexcharge.attempts")

#: 12-19 digits, optionally grouped by spaces or dashes: what a PAN looks like.
_PAN = re.compile(r"(?<!\d)(?:\d[ -]?){11,18}\d(?!\d)")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
_SECRET_FIELD = re.compile(
    r"(?i)((?:app_?secret|app_?key|access_?token|token|environment|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&}]+"
)


def scrub(text: str) -> str:
    """``text`` without card-number-shaped digit runs, bearer tokens or key/secret/token values."""
    text = _PAN.sub("[redacted]", text)
    text = _BEARER.sub(r"\1[redacted]", text)
    return _SECRET_FIELD.sub(r"\1[redacted]", text)


def describe(err: BaseException) -> str:
    """A failure's safe text: the app's own message for its errors, the class name otherwise."""
    text = str(err) if isinstance(err, FlexChargeError) else type(err).__name__
    return scrub(text)[:2000]


@contextmanager
def record_call(
    *,
    endpoint: str,
    order: FlexChargeOrder | None = None,
    transmission: Transmission | None = None,
    refund: Refund | None = None,
    attempt: int = 1,
    history: list[CallAttempt] | None = None,
) -> Iterator[telemetry.CallContext]:
    """Store one ``CallAttempt`` for the client call made inside the block.

    ``endpoint`` names the call when it failed before any request went out (a
    missing setting); otherwise the name the client's exchange reported is kept.
    ``history``: the row is appended there, unsaved, for the caller to store
    with others (``store_calls``; a delivery batch writes its history at once).
    """
    started_at = timezone.now()
    started = time.monotonic()
    error: BaseException | None = None
    with telemetry.call_context(attempt) as context:
        try:
            yield context
        except BaseException as err:
            error = err
            raise
        finally:
            elapsed = int((time.monotonic() - started) * 1000)
            status = context.http_status
            trace_id = context.trace_id
            if isinstance(error, FlexChargeAPIError):
                trace_id = error.trace_id or trace_id
            name = context.endpoint or endpoint
            account = next(
                (row.account for row in (order, transmission, refund) if row is not None),
                telemetry.ACCOUNT,
            )
            if attempt > 1:
                labels = {"flexcharge.endpoint": name, "flexcharge.account": account}
                telemetry.retries.add(1, labels)
            _store(
                history,
                account=account,
                order=order,
                transmission=transmission,
                refund=refund,
                endpoint=name,
                attempt=attempt,
                started_at=started_at,
                http_status=status,
                latency_ms=elapsed,
                trace_id=trace_id[:128],
                error=describe(error) if error is not None else "",
            )


def _store(history: list[CallAttempt] | None, **fields: Any) -> None:
    order = fields["order"]
    extra = {
        "order_id": order.order_id if order is not None else "",
        "endpoint": fields["endpoint"],
        "attempt": fields["attempt"],
        "account": fields["account"],
        "http_status": fields["http_status"],
        "latency_ms": fields["latency_ms"],
        "trace_id": fields["trace_id"],
    }
    level = logging.WARNING if fields["error"] else logging.INFO
    logger.log(
        level,
        "FlexCharge %s attempt %s -> %s in %s ms%s",
        fields["endpoint"],
        fields["attempt"],
        fields["http_status"] or "no answer",
        fields["latency_ms"],
        f" ({fields['error']})" if fields["error"] else "",
        extra=extra,
    )
    if history is not None:
        history.append(CallAttempt(**fields))
        return
    store_calls([CallAttempt(**fields)])


def store_calls(history: list[CallAttempt]) -> None:
    """Store call attempts (``record_call(history=...)``) with one INSERT (in a savepoint
    inside a transaction).

    A failure to store them is logged and swallowed: the history is for
    people; the calls' own outcomes are what must not be lost.
    """
    if not history:
        return
    try:
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():  # a savepoint: the caller's transaction stays usable
                insert_many(history)
        else:
            insert_many(history)
    except DatabaseError:
        logger.exception(
            "Could not store %s FlexCharge call attempt(s)",
            len(history),
            extra={"endpoint": history[0].endpoint, "account": history[0].account},
        )
