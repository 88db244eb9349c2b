"""What FlexCharge's answers say about a refund: approved, refused, or nobody knows.

FlexCharge documents a refund ``status`` of ``SUCCESS`` or ``FAILED``; its live
sandbox once answered a refused refund with ``success: true``, a success-type
``status`` and ``responseMessage: "DECLINED"``. So a refund counts only when
every part of the answer agrees it was approved; any refusal word refuses it;
anything else (an unknown word, a 5xx, a timeout, a body that is not JSON) is
*unconfirmed*: the money may or may not have moved, and ``flexcharge_sync``
settles it from the refunded total ``GET /orders/{id}`` reports
(``refunded_total``). The words and codes are settings (docs/assumptions.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .conf import conf
from .exceptions import FlexChargeAPIError, FlexChargeError
from .money import to_minor

APPROVED, DECLINED, UNCONFIRMED = "approved", "declined", "unconfirmed"


@dataclass(frozen=True)
class Verdict:
    """How a refund ended: ``kind`` is APPROVED, DECLINED or UNCONFIRMED, with FlexCharge's words."""

    kind: str
    code: str = ""
    message: str = ""


def _word(value: Any) -> str:
    return str(value or "").strip().upper()


def classify_answer(data: dict[str, Any]) -> Verdict:
    """The verdict of a 2xx refund answer (``success``, ``status``, ``responseMessage``, ``responseCode``)."""
    code = str(data.get("responseCode") or "").strip()[:32]
    message = str(data.get("responseMessage") or "").strip()[:255]
    words = [w for w in (_word(data.get("status")), _word(message)) if w]
    if data.get("success") is False or any(w in conf.REFUND_DECLINED_WORDS for w in words):
        return Verdict(DECLINED, code, message or _word(data.get("status")))
    approved = (
        data.get("success") is True
        and bool(words)
        and all(w in conf.REFUND_APPROVED_WORDS for w in words)
        and (not code or code in conf.REFUND_APPROVED_CODES)
    )
    return Verdict(APPROVED if approved else UNCONFIRMED, code, message)


def classify_error(err: BaseException) -> Verdict:
    """The verdict of a refund call that raised: refused only when FlexCharge clearly said no.

    A 4xx (validation, unknown order, credentials) or a ``success: false``
    envelope is a refusal. A timeout, a lost connection, a 5xx, a 409 (a
    refund carries no idempotency key, so a conflict means something we do
    not understand), a 2xx we could not read, or an exception of our own
    after the request may have left: unconfirmed.
    """
    if isinstance(err, FlexChargeAPIError):
        response = err.response if isinstance(err.response, dict) else {}
        code = str(response.get("responseCode") or err.code or "")[:32]
        message = str(response.get("responseMessage") or err.message or "")[:255]
        if err.status is not None and 200 <= err.status < 300:
            # A 2xx the client raised for: its body decides (a readable refusal, or nothing).
            refused = bool(response) and classify_answer(response).kind == DECLINED
            return Verdict(DECLINED if refused else UNCONFIRMED, code, message)
        # A 409 is unknown too: a refund carries no idempotency key, so a conflict
        # means something we do not understand (see the exception's policy).
        unknown = err.status is None or err.outcome_unknown
        return Verdict(UNCONFIRMED if unknown else DECLINED, code, message)
    if isinstance(err, FlexChargeError):
        # Configuration and credential problems stop the call before it is sent.
        return Verdict(DECLINED, "", str(err)[:255])
    return Verdict(UNCONFIRMED, "", type(err).__name__)


def refunded_total(data: dict[str, Any], amount: int, currency: str) -> int | None:
    """Minor units refunded in total per a ``GET /orders/{id}`` answer; None when it does not say.

    FlexCharge documents no amount field there; the names tried are
    ``FLEXCHARGE_ORDER_REFUNDED_FIELDS`` in ``FLEXCHARGE_ORDER_AMOUNT_UNITS``.
    A value above the order's ``amount`` (wrong units?) or in another
    currency is not used.
    """
    given = data.get("currencyCode")
    if isinstance(given, str) and given.strip() and given.strip().upper() != currency.upper():
        return None
    fields = {str(name).lower(): value for name, value in data.items()}
    for name in conf.ORDER_REFUNDED_FIELDS:
        value = fields.get(name.lower())
        if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
            continue
        try:
            number = Decimal(str(value).strip())
            if not number.is_finite() or number < 0 or number.adjusted() > 15:
                continue
            if conf.ORDER_AMOUNT_UNITS == "major":
                total = to_minor(number, currency)
            elif number == number.to_integral_value():
                total = int(number)
            else:
                continue
        except (InvalidOperation, ValueError):
            continue
        return total if total <= amount else None
    return None
