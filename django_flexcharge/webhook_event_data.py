"""What a FlexCharge webhook body says: parsed, validated, and the refund amount it carries.

The fields are flexcharge-api.md §11.3. FlexCharge is an ASP.NET service, so
names are matched case-insensitively. ``EventData`` is undocumented for every
event (§19.3); only ``order.refunded`` is read, for a total refunded and for the
amount of this refund (``refund_amounts``). What the app makes of a refund that
carries neither is ``webhooks``' business (docs/webhooks.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .conf import conf
from .money import to_minor

#: Events that move an order; only these need an order id (either of the two).
ORDER_EVENTS = frozenset({"order.completed", "order.expired", "order.cancelled", "order.refunded"})
#: ``EventData`` names that may hold the total refunded so far, then names that may hold
#: this refund alone (major units). The emulator sends ``TotalRefundedAmount``.
REFUND_TOTAL_KEYS = ("totalrefundedamount", "refundedamount", "totalrefunded")
REFUND_SINGLE_KEYS = ("refundamount", "amounttorefund", "amount")


class PayloadError(ValueError):
    """A correctly signed body the app cannot use: answered 400, stored as failed."""


@dataclass(frozen=True)
class Payload:
    """The fields of a delivery (flexcharge-api.md §11.3), validated."""

    event: str
    order_id: str  # FlexCharge's id (our order_session_key)
    external_order_id: str  # the host's order id (our order_id)
    timestamp: datetime | None
    confirmation_id: str
    is_test_mode: bool | None
    is_resent: bool
    event_data: Any


def parse_payload(body: bytes | str) -> Payload:
    """The validated fields of a delivery body, or PayloadError saying what is wrong."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        data = json.loads(text.removeprefix("\ufeff"), parse_float=Decimal)
    except UnicodeDecodeError as err:
        raise PayloadError("body is not UTF-8 text") from err
    except (ValueError, RecursionError) as err:
        raise PayloadError("body is not JSON") from err
    if not isinstance(data, dict):
        raise PayloadError("body is not a JSON object")
    # ASP.NET binds names case-insensitively; so do we.
    fields = {str(name).lower(): value for name, value in data.items()}
    event = _text(fields, "Event", 64, required=True)
    if not event:
        raise PayloadError("Event is missing")
    # Events the app does not act on are stored as ignored even without order ids,
    # rather than refused and redelivered for ever.
    handled = event in ORDER_EVENTS
    # Either id finds the order, so either may be absent (§11.3 marks both INFERRED).
    order_id = _text(fields, "OrderId", 64)
    external_order_id = _text(fields, "ExternalOrderId", 100)
    if handled and not (order_id or external_order_id):
        raise PayloadError("OrderId and ExternalOrderId are both missing or empty")
    return Payload(
        event=event,
        order_id=order_id,
        external_order_id=external_order_id,
        timestamp=_timestamp(fields.get("timestamp")),
        confirmation_id=_text(fields, "ConfirmationId", 32),
        is_test_mode=_flag(fields, "IsTestMode"),
        is_resent=bool(_flag(fields, "IsResent")),
        event_data=fields.get("eventdata"),
    )


def check_test_mode(payload: Payload, account: str = "default") -> None:
    """Refuse a sandbox event on a live site and the reverse (the account's ``TEST_MODE``).

    A live site also refuses an event that does not say (no ``IsTestMode``):
    FlexCharge's sample always sends it, and real money must not move on a
    delivery that may come from the sandbox. A test-mode site accepts it.
    """
    test_mode = conf.account(account).TEST_MODE
    if payload.is_test_mode is None and not test_mode:
        raise PayloadError(
            "IsTestMode is missing; a live site (FLEXCHARGE_TEST_MODE False) needs it"
        )
    if payload.is_test_mode is not None and payload.is_test_mode != test_mode:
        if payload.is_test_mode:
            raise PayloadError("test-mode event on a live site (FLEXCHARGE_TEST_MODE is False)")
        raise PayloadError("live event on a test-mode site (FLEXCHARGE_TEST_MODE is True)")


def refund_amounts(event_data: Any, currency: str) -> tuple[int | None, int | None]:
    """``(total refunded so far, this refund alone)`` in minor units per ``EventData``.

    Either is None when ``EventData`` does not say; both are None for a shape
    the app does not recognise or a ``Currency`` other than the order's.
    """
    if not isinstance(event_data, dict):
        return None, None
    data = {str(name).lower(): value for name, value in event_data.items()}
    given = data.get("currency")
    if isinstance(given, str) and given.strip() and given.strip().upper() != currency.upper():
        return None, None
    return (
        _first_amount(data, REFUND_TOTAL_KEYS, currency),
        _first_amount(data, REFUND_SINGLE_KEYS, currency),
    )


def _first_amount(data: dict[str, Any], keys: tuple[str, ...], currency: str) -> int | None:
    for key in keys:
        amount = _minor(data.get(key), currency)
        if amount is not None:
            return amount
    return None


def _minor(value: Any, currency: str) -> int | None:
    """A positive major-unit amount as minor units; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value).strip())
        # adjusted(): refuse absurd exponents before to_minor builds a huge integer.
        if not amount.is_finite() or amount <= 0 or amount.adjusted() > 15:
            return None
        return to_minor(amount, currency)
    except (InvalidOperation, ValueError):
        return None


def _text(fields: dict[str, Any], name: str, max_length: int, *, required: bool = False) -> str:
    key = name.lower()
    if key not in fields:
        if required:
            raise PayloadError(f"{name} is missing")
        return ""
    value = fields[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string")
    value = value.strip()
    if len(value) > max_length or "\x00" in value:
        raise PayloadError(f"{name} is longer than {max_length} characters or holds NUL")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            # A lone surrogate escape (\ud800): valid JSON, but no database can store it.
            raise PayloadError(f"{name} holds an invalid \\u escape (a lone surrogate)") from err
    return value


def _flag(fields: dict[str, Any], name: str) -> bool | None:
    value = fields.get(name.lower())
    if value is not None and not isinstance(value, bool):
        raise PayloadError(f"{name} must be true or false")
    return value


def _timestamp(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError("TimeStamp must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise PayloadError("TimeStamp is not an ISO-8601 date-time") from err
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        # In UTC, as it is stored; an offset can push it past year 1 or 9999.
        return parsed.astimezone(UTC)
    except OverflowError as err:
        raise PayloadError("TimeStamp is out of range") from err
