"""Webhook intake: verify, parse, store and apply a FlexCharge delivery (no HTTP here).

``receive()`` is the whole pipeline the view calls:

1. size, then the signature (any configured key; the host as seen or without
   its port) and the nonce format; a failure raises ``FlexChargeWebhookError``
   (413/401) naming the check that failed, and stores nothing.
2. a delivery whose nonce *and* body match a stored event is a redelivery
   (FlexCharge may resend with the original headers; its docs leave it open): it
   is answered 200 whatever its date, and applied again only if the stored
   event failed. A known nonce with another body is a 401 ("reused nonce").
0. the usual delivery (new, valid, moving a ``pending`` order as the table
   allows) is stored and applied in one transaction (``_first_delivery``:
   ``order_state.change_held``'s conditional UPDATE, the event's INSERT, its
   history row). Anything else, including a nonce stored before (its INSERT
   fails, the transaction rolls back), takes the careful way, 1.-4.
3. a new delivery must carry an ``x-fc-date`` inside ``FLEXCHARGE_WEBHOOK_TOLERANCE``
   (unless it is 0), then its row is written on its own, before anything is
   applied, so it survives a failed apply. A signed body the app cannot use is
   stored as ``failed`` with the reason and answered 400.
4. the event is applied under ``select_for_update`` on the order: concurrent
   deliveries of one event queue on that lock, so exactly one changes the order
   and one set of signals goes out (after commit, from ``transitions``).

``IsResent`` is stored but not trusted on its own: a redelivery after our own
500 must still apply. A duplicate is "this event already applied to this order".
A ``TimeStamp`` further ahead than the date tolerance is not trusted to order
events (one bad clock must not make every later event of the order "older").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import order_state, signing
from .accounts import DEFAULT
from .conf import conf
from .delivery import enqueue_on_commit
from .exceptions import FlexChargeConfigurationError, FlexChargeWebhookError
from .models import FlexChargeOrder, WebhookEvent
from .order_state import change_order, never_sent, rows
from .tasks import sync_refunded_total
from .transitions import can_transition
from .webhook_event_data import (
    Payload,
    PayloadError,
    check_test_mode,
    parse_payload,
    refund_amounts,
)

__all__ = [
    "EVENT_STATUS",
    "Payload",
    "PayloadError",
    "apply_event",
    "check_date",
    "check_test_mode",
    "parse_payload",
    "reapply_event",
    "receive",
    "redeliver",
    "signed_hosts",
    "store_event",
    "verify_delivery",
    "verify_signature",
]

logger = logging.getLogger("django_flexcharge.webhooks")

Status = FlexChargeOrder.Status
Stored = WebhookEvent.Status

#: The events that move an order, and where to. Any other event is stored as ignored.
EVENT_STATUS = {
    "order.completed": Status.APPROVED,
    "order.expired": Status.EXPIRED,
    "order.cancelled": Status.CANCELLED,
    "order.refunded": Status.REFUNDED,
}
#: ``WebhookEvent.nonce`` length; FlexCharge sends 32 hex characters.
MAX_NONCE = 64
#: Seconds a ``TimeStamp`` may run ahead when ``FLEXCHARGE_WEBHOOK_TOLERANCE`` is 0.
DEFAULT_TOLERANCE = 300


def receive(
    body: bytes, headers: Mapping[str, str], host: str, *, account: str = DEFAULT
) -> WebhookEvent:
    """Verify, store and apply one delivery to ``account``; the stored event, or FlexChargeWebhookError.

    Only ``account``'s subscriber keys verify it and only its orders are looked at:
    a delivery signed for another account is a 401, and changes nothing.
    A redelivery of a stored event comes back with ``redelivered`` set
    ("duplicate": nothing done; "reapplied"); see ``redeliver``.
    """
    if len(body) > conf.WEBHOOK_MAX_BODY:
        raise FlexChargeWebhookError("body is larger than FLEXCHARGE_WEBHOOK_MAX_BODY", 413)
    lowered = _lowered(headers)
    nonce = verify_signature(body, lowered, host, account=account)
    first = _first_delivery(nonce, body, lowered, account)
    if first is not None:
        return first
    stored = _stored(nonce, account)
    if stored is not None:
        return redeliver(stored, body)
    check_date(lowered, account=account)
    payload: Payload | None = None
    try:
        payload = parse_payload(body)
        check_test_mode(payload, account)
    except PayloadError as err:
        # Stored (failed, with the reason) so the merchant can see what FlexCharge sent.
        try:
            event = store_event(nonce, body, payload, str(err), account=account)
        except NonceTaken:
            return redeliver(WebhookEvent.objects.get(account=account, nonce=nonce), body)
        logger.warning("webhook #%s rejected: %s", event.pk, err)
        raise FlexChargeWebhookError(str(err), 400) from err
    try:
        event = store_event(nonce, body, payload, "", account=account)
    except NonceTaken:
        # The same delivery arriving twice at once: the other request stored it.
        return redeliver(WebhookEvent.objects.get(account=account, nonce=nonce), body)
    return _apply(event, payload, fresh=True)


def _first_delivery(
    nonce: str, body: bytes, headers: Mapping[str, str], account: str
) -> WebhookEvent | None:
    """The usual delivery, stored and applied in one transaction; None when it is not one.

    A new, valid event moving an order out of ``pending`` as the table allows:
    ``order_state.change_held`` moves the order with one conditional UPDATE, then
    inserts the event (already applied) and its history row. Anything else (a
    stored nonce, an order elsewhere, a refund, a bad body or date) changes
    nothing here and takes the careful way, which finds out and says why. Our
    own failure rolls everything back, then stores the event as failed with its
    error and re-raises (a 500: FlexCharge redelivers, and the stored failed
    event is applied then).
    """
    try:
        check_date(headers, account=account)
        payload = parse_payload(body)
        check_test_mode(payload, account)
    except (FlexChargeWebhookError, PayloadError):
        return None
    target = EVENT_STATUS.get(payload.event)
    if target is None or target == Status.REFUNDED:
        return None
    key = ("order_session_key", payload.order_id)
    if not payload.order_id:
        key = ("order_id", payload.external_order_id)
    stamp = trusted_timestamp(payload.timestamp, account)
    values: dict[str, Any] = {}
    if stamp is not None:
        values["last_event_at"] = stamp
    if payload.confirmation_id:
        values["confirmation_id"] = payload.confirmation_id
    ahead = conf.account(account).WEBHOOK_TOLERANCE or DEFAULT_TOLERANCE
    event = WebhookEvent(
        **_event_values(nonce, body, payload, account),
        status=Stored.APPLIED,
        processed_at=timezone.now(),
    )
    committed: list[bool] = []
    try:
        with transaction.atomic():
            # First of the after-commit callbacks: whatever raises after it, committed.
            transaction.on_commit(partial(committed.append, True))
            change = order_state.change_held(
                account,
                key,
                to=target,
                values=values,
                not_after=stamp,
                horizon=timezone.now() + dt.timedelta(seconds=ahead),
                event=event,
            )
            if change is None:
                raise _NotHeld  # the UPDATE matched nothing: roll back, nothing was written
    except (_NotHeld, IntegrityError):
        # IntegrityError: most likely the nonce, stored before (a redelivery). Either
        # way the careful way finds out, and says why.
        return None
    except Exception as err:
        if committed:
            return _receiver_failed(event, err)
        logger.exception("webhook for %s could not be applied", payload.order_id or key[1])
        failed = f"{type(err).__name__}: {err}"
        # NonceTaken: a racing delivery stored it; its own answer stands.
        with contextlib.suppress(NonceTaken):
            store_event(nonce, body, payload, failed, account=account)
        raise
    logger.info("webhook #%s %s: %s", event.pk, payload.event, event.status)
    return event


class _NotHeld(Exception):
    """``change_held`` found no order to move: the careful way takes the delivery."""


def redeliver(stored: WebhookEvent, body: bytes) -> WebhookEvent:
    """A delivery whose nonce is ``stored``'s: a duplicate if the body is the same, else 401.

    The same nonce and body is FlexCharge resending the original delivery (its
    signature was just checked): 200 whatever ``x-fc-date`` says. If the stored
    event failed (our 500, or a body refused under a setting since fixed) or
    never finished (a crash), it is applied now; otherwise nothing changes.
    """
    if stored.body != stored_text(body):
        raise FlexChargeWebhookError(
            "reused nonce: x-fc-nonce belongs to an earlier delivery with another body", 401
        )
    if stored.status not in (Stored.FAILED, Stored.RECEIVED):
        logger.info("webhook #%s delivered again: already %s", stored.pk, stored.status)
        stored.redelivered = "duplicate"  # type: ignore[attr-defined]
        return stored
    try:
        payload = parse_payload(body)
        check_test_mode(payload, stored.account)
    except PayloadError as err:
        _finish(stored, Stored.FAILED, str(err))
        logger.warning("webhook #%s redelivered, still rejected: %s", stored.pk, err)
        raise FlexChargeWebhookError(str(err), 400) from err
    logger.info("webhook #%s redelivered after it %s: applying it", stored.pk, stored.status)
    event = apply_event(stored, payload)
    event.redelivered = "reapplied"  # type: ignore[attr-defined]
    return event


def _stored(nonce: str, account: str) -> WebhookEvent | None:
    return WebhookEvent.objects.filter(account=account, nonce=nonce).first()


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in headers.items()}


def verify_delivery(
    body: bytes, headers: Mapping[str, str], host: str, *, account: str = DEFAULT
) -> str:
    """Check signature (``account``'s keys) and date of a delivery; its nonce, or a 401."""
    lowered = _lowered(headers)
    nonce = verify_signature(body, lowered, host, account=account)
    check_date(lowered, account=account)
    return nonce


#: The headers without which no signature can be checked.
SIGNATURE_HEADERS = ("x-fc-nonce", "x-fc-date", "x-fc-authorization")


def verify_signature(
    body: bytes, headers: Mapping[str, str], host: str, *, account: str = DEFAULT
) -> str:
    """The delivery's nonce once its signature verifies with one of ``account``'s keys;
    FlexChargeWebhookError(401) naming the check that failed otherwise. ``headers`` has
    lower-case names. Never names a key."""
    keys = conf.account(account).WEBHOOK_SUBSCRIBER_KEYS
    if not keys:
        # Our misconfiguration, not the sender's: surfaces as a 500 so FlexCharge retries.
        where = "" if account == DEFAULT else f" for FlexCharge account {account!r}"
        raise FlexChargeConfigurationError(
            f"FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS is not set{where}.",
            setting="FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS",
        )
    missing = [name for name in SIGNATURE_HEADERS if not headers.get(name, "").strip()]
    if missing:
        raise FlexChargeWebhookError(f"no signature headers: {', '.join(missing)} missing", 401)
    hosts = signed_hosts(host)
    verified = False
    for candidate in hosts:
        # Every form is tried (no short cut), each in constant time per key.
        verified |= signing.verify(body, headers, candidate, keys)
    if not verified:
        names = " or ".join(repr(name) for name in hosts)
        raise FlexChargeWebhookError(
            f"invalid or missing signature: no key matches for host {names}", 401
        )
    nonce = headers["x-fc-nonce"].strip()
    if len(nonce) > MAX_NONCE:
        raise FlexChargeWebhookError("x-fc-nonce is empty or too long", 401)
    return nonce


def check_date(headers: Mapping[str, str], *, account: str = DEFAULT) -> None:
    """Refuse (401) an ``x-fc-date`` that is unreadable, or outside the tolerance."""
    try:
        sent = parsedate_to_datetime(headers.get("x-fc-date", ""))
    except (TypeError, ValueError, IndexError) as err:
        raise FlexChargeWebhookError("x-fc-date is not an RFC 1123 date", 401) from err
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    tolerance = conf.account(account).WEBHOOK_TOLERANCE
    if tolerance > 0:
        # 0 turns the window off (FlexCharge documents none, §19.2); nonces stay unique.
        skew = (timezone.now() - sent).total_seconds()
        if skew > tolerance:
            raise FlexChargeWebhookError(
                f"stale date: x-fc-date is {skew:.0f} s old (limit {tolerance} s)", 401
            )
        if skew < -tolerance:
            raise FlexChargeWebhookError("stale date: x-fc-date is in the future", 401)


def signed_hosts(host: str) -> list[str]:
    """The host forms a delivery to ``host`` may be signed for: as given, then without its port.

    §11.4 says "the bare host", while ``request.get_host()`` (and an HTTP
    client's ``Host``) carries a non-default port: ``127.0.0.1:8000`` also
    accepts ``127.0.0.1``; ``[::1]:8000`` also accepts ``[::1]`` and ``::1``
    (``urlsplit(url).hostname``). A port is never added, only dropped.
    """
    host = host.strip()
    forms = [host]
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if bracket and (not rest or (rest[:1] == ":" and _is_port(rest[1:]))):
            forms += [f"[{name}]", name]
    else:
        name, colon, port = host.rpartition(":")
        if colon and name and ":" not in name and _is_port(port):
            forms.append(name)
    return list(dict.fromkeys(form for form in forms if form))


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit()


class NonceTaken(FlexChargeWebhookError):
    """``store_event`` found the nonce stored already (a racing delivery stored it)."""

    def __init__(self) -> None:
        super().__init__("reused nonce: x-fc-nonce belongs to an earlier delivery", 401)


def stored_text(body: bytes) -> str:
    """The body as ``WebhookEvent.body`` keeps it (also what a redelivery is compared with)."""
    # PostgreSQL text cannot hold NUL; the stored body is for people, the signature is done.
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def store_event(
    nonce: str, body: bytes, payload: Payload | None, error: str, *, account: str = DEFAULT
) -> WebhookEvent:
    """Write the delivery row on its own; a nonce stored already raises ``NonceTaken`` (401)."""
    values = {**_event_values(nonce, body, payload, account), "error": error}
    if error:
        values.update(status=Stored.FAILED, processed_at=timezone.now())
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(**values)
    except IntegrityError as err:
        raise NonceTaken() from err


def _event_values(nonce: str, body: bytes, payload: Payload | None, account: str) -> dict[str, Any]:
    values: dict[str, Any] = {"account": account, "nonce": nonce, "body": stored_text(body)}
    if payload is not None:
        values.update(
            event=payload.event,
            order_session_key=payload.order_id,
            external_order_id=payload.external_order_id,
            timestamp=payload.timestamp,
            confirmation_id=payload.confirmation_id,
            is_test_mode=payload.is_test_mode,
            is_resent=payload.is_resent,
        )
    return values


def apply_event(event: WebhookEvent, payload: Payload) -> WebhookEvent:
    """Apply a stored event to its order; on our own failure mark it failed and re-raise."""
    return _apply(event, payload, fresh=False)


def _apply(event: WebhookEvent, payload: Payload, *, fresh: bool) -> WebhookEvent:
    # fresh: ``event`` was inserted by this request a moment ago (see _apply_locked).
    target = EVENT_STATUS.get(payload.event)
    if target is None:
        # Linked to its order when there is one (a chargeback is worth seeing in the admin).
        event.order = _find_order(payload, event.account, lock=False)
        return _finish(event, Stored.IGNORED, f"{payload.event} is not an event the app acts on")
    result: WebhookEvent | None = None
    try:
        with transaction.atomic():
            result = _apply_locked(event, payload, target, fresh=fresh)
    except Exception as err:
        if result is not None and _committed(result):
            return _receiver_failed(result, err)
        logger.exception("webhook #%s could not be applied", event.pk)
        event.status, event.error = Stored.FAILED, f"{type(err).__name__}: {err}"
        event.processed_at = timezone.now()
        WebhookEvent.objects.filter(pk=event.pk).update(
            status=event.status, error=event.error, processed_at=event.processed_at
        )
        raise
    logger.info("webhook #%s %s: %s %s", event.pk, payload.event, result.status, result.error)
    return result


def _receiver_failed(event: WebhookEvent, err: Exception) -> WebhookEvent:
    # The change committed; a receiver of the after-commit signals raised.
    # Redelivery cannot resend that signal, so answer 200 and keep the trace.
    logger.exception("a signal receiver failed for webhook #%s", event.pk)
    event.error = f"signal receiver failed: {type(err).__name__}: {err}"
    WebhookEvent.objects.filter(pk=event.pk).update(error=event.error)
    return event


def reapply_event(event: WebhookEvent, user: Any = None) -> WebhookEvent:
    """Apply a stored event again (the admin's "re-apply"); never raises for a bad event.

    The signature was checked when the event arrived. Test mode is checked
    again, so events refused under a wrong ``FLEXCHARGE_TEST_MODE`` can be
    replayed once it is fixed. An applied event is returned unchanged. Look at
    ``status`` and ``error`` of the returned event for the outcome.
    """
    if event.status == Stored.APPLIED:
        return event
    event.reapplied_by = user if getattr(user, "is_authenticated", False) else None
    event.reapplied_at = timezone.now()
    event.save(update_fields=["reapplied_by", "reapplied_at"])
    try:
        payload = parse_payload(event.body)
        check_test_mode(payload, event.account)
    except PayloadError as err:
        return _finish(event, Stored.FAILED, str(err))
    try:
        return apply_event(event, payload)
    except Exception:
        # apply_event logged it and stored the error on the row.
        return event


def _apply_locked(
    event: WebhookEvent, payload: Payload, target: str, *, fresh: bool
) -> WebhookEvent:
    order = _find_order(payload, event.account, lock=True)
    # The usual first delivery takes a short cut (two queries fewer): an event
    # this request just stored, whose transition the order allows, cannot have
    # been applied before. The state machine has no cycles, so an order that
    # once entered ``target`` can never again move to it; refunds can repeat
    # (partial ones), so they always take the long way.
    careful = (
        not fresh
        or order is None
        or target == Status.REFUNDED
        or not can_transition(order.status, target)
    )
    if careful:
        # Lock the event row too: two admins re-applying one event must not both run it.
        event = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        if event.status == Stored.APPLIED:
            return event
    if order is None:
        ids = f"OrderId {payload.order_id!r} / ExternalOrderId {payload.external_order_id!r}"
        return _finish(event, Stored.IGNORED, f"no order matches {ids}")
    event.order = order
    refused = _refusal(event, order, payload, careful=careful)
    if refused:
        return _finish(event, *refused)
    return _request_change(event, order, payload, target)


def _refusal(
    event: WebhookEvent, order: FlexChargeOrder, payload: Payload, *, careful: bool
) -> tuple[str, str] | None:
    """Why ``event`` must not touch ``order`` (stored status, reason), or None."""
    if payload.order_id and order.order_session_key != payload.order_id:
        if order.order_session_key:
            return Stored.IGNORED, "OrderId differs from the order's FlexCharge id"
        # Found by our id only: /evaluate never told us FlexCharge's id. Learn it now.
        change_order(order, values={"order_session_key": payload.order_id})
    earlier = _applied_before(event, order, payload) if careful else None
    if earlier:
        return Stored.DUPLICATE, f"already applied by event #{earlier}"
    stamp = trusted_timestamp(payload.timestamp, order.account)
    last = trusted_timestamp(order.last_event_at, order.account)
    if stamp and last and stamp < last:
        return Stored.IGNORED, "older than the last event applied to the order"
    if payload.event == "order.refunded" and never_sent(order):
        # FlexCharge cannot have charged, let alone refunded, this order.
        return Stored.IGNORED, "order was never sent to FlexCharge"
    return None


def _request_change(
    event: WebhookEvent, order: FlexChargeOrder, payload: Payload, target: str
) -> WebhookEvent:
    """Translate the event into a requested change of its order; ``order_state`` decides."""
    refunded: int | None = None
    known: bool | None = None
    if target == Status.REFUNDED:
        # EventData's shape is undocumented: a total in it is FlexCharge's figure;
        # a single refund's amount (or none) only proves something was refunded.
        total, single = refund_amounts(payload.event_data, order.currency)
        refunded, known = (total, True) if total is not None else (single or 0, False)
    previous = order.status
    last = trusted_timestamp(order.last_event_at, order.account)
    values = {
        "last_event_at": trusted_timestamp(payload.timestamp, order.account) or last,
        "confirmation_id": payload.confirmation_id or order.confirmation_id,
    }
    change = change_order(
        order,
        to=target,
        refunded=refunded,
        refunded_known=known,
        values=values,
        event=event,
        only_if_changed=True,
    )
    if not change.saved:
        reason = f"order is {previous}; {payload.event} cannot change it"
        if previous == change.plan.wanted:
            reason = f"order is already {previous}"
        return _finish(event, Stored.IGNORED, reason)
    event.order = change.order
    if previous == Status.FAILED:
        # We gave up on handing it over, yet FlexCharge charged it: money moved, so
        # the host must hear it (the one way out of ``failed``, see transitions).
        logger.warning(
            "Order %s was failed, but FlexCharge sent %s: approving it",
            order.order_id,
            payload.event,
        )
    if target == Status.REFUNDED and change.order.refunded_amount_unknown:
        # The amount is FlexCharge's to say: GET /orders/{id} in a task, not in this request.
        enqueue_on_commit(sync_refunded_total, order.pk)
    return _finish(event, Stored.APPLIED)


def trusted_timestamp(value: dt.datetime | None, account: str = DEFAULT) -> dt.datetime | None:
    """``value`` unless it is further ahead of our clock than the date tolerance allows.

    FlexCharge's ``TimeStamp`` orders the events of an order. One far in the
    future would make every later event look older and be ignored, so it is
    not trusted (the event still applies; it just orders nothing). With the
    date check off, the default tolerance bounds it.
    """
    if value is None:
        return None
    ahead = conf.account(account).WEBHOOK_TOLERANCE or DEFAULT_TOLERANCE
    if value > timezone.now() + dt.timedelta(seconds=ahead):
        logger.warning("webhook TimeStamp %s is in the future: not used to order events", value)
        return None
    return value


def _find_order(payload: Payload, account: str, *, lock: bool) -> FlexChargeOrder | None:
    """By FlexCharge's id first (always ours once known), then by the host's id; in ``account`` only."""
    # Both keys are unique per account: get() needs no ORDER BY.
    orders = rows(lock=lock, lean=True).filter(account=account)
    for field, value in (
        ("order_session_key", payload.order_id),
        ("order_id", payload.external_order_id),
    ):
        if value:
            try:
                return orders.get(**{field: value})
            except FlexChargeOrder.DoesNotExist:
                pass
    return None


def _applied_before(event: WebhookEvent, order: FlexChargeOrder, payload: Payload) -> int | None:
    earlier = WebhookEvent.objects.filter(order=order, event=payload.event, status=Stored.APPLIED)
    if payload.event == "order.refunded" and payload.timestamp:
        # Several partial refunds are several events; a redelivery keeps its TimeStamp.
        earlier = earlier.filter(timestamp=payload.timestamp)
    return earlier.exclude(pk=event.pk).order_by("pk").values_list("pk", flat=True).first()


def _finish(event: WebhookEvent, status: str, error: str = "") -> WebhookEvent:
    event.status, event.error, event.processed_at = status, error, timezone.now()
    event.save(update_fields=["status", "error", "processed_at", "order"])
    return event


def _committed(event: WebhookEvent) -> bool:
    stored = WebhookEvent.objects.filter(pk=event.pk, status=event.status)
    return stored.filter(processed_at=event.processed_at).exists()
