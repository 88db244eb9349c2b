"""Typed inputs of the services: ``Card``, ``Payment``, ``Payer``, ``BillingAddress``, ``Subscription``.

Each dataclass validates itself on construction and raises
``FlexChargeValidationError`` naming the field, so bad input is refused before
anything is stored or sent. ``Card`` holds the PAN and CVV in memory only: its
``repr`` masks them, so a traceback or a log line cannot carry them, and when
it refuses its input no frame of this module still holds them as a local (an
error tracker that collects frame locals sees only the masked ``Card``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from .exceptions import FlexChargeValidationError
from .money import is_currency

_DIGITS = re.compile(r"^[0-9]+$")


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(number: str) -> str:
    """Best-effort brand from the BIN, in FlexCharge's upper-case vocabulary."""
    if number.startswith("4"):
        return "VISA"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "MASTERCARD"
    if number[:2] in {"34", "37"}:
        return "AMEX"
    if number.startswith(("6011", "65")) or "644" <= number[:3] <= "649":
        return "DISCOVER"
    if "3528" <= number[:4] <= "3589":
        return "JCB"
    if number[:2] in {"36", "38", "39"} or "300" <= number[:3] <= "305":
        return "DINERS"
    return ""


def _require_text(name: str, value: object, *, max_length: int = 255, blank: bool = False) -> str:
    if not isinstance(value, str):
        raise FlexChargeValidationError(name, "must be a string")
    value = value.strip()
    if not value and not blank:
        raise FlexChargeValidationError(name, "is required")
    if len(value) > max_length:
        raise FlexChargeValidationError(name, f"must be at most {max_length} characters")
    return value


def _currency(name: str, value: object) -> str:
    if not isinstance(value, str) or not is_currency(value.upper()):
        raise FlexChargeValidationError(name, "must be an ISO-4217 currency code such as USD")
    return value.upper()


def _amount(name: str, value: object, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FlexChargeValidationError(name, "must be an integer amount in minor units (cents)")
    if value < 0 or (value == 0 and not allow_zero):
        raise FlexChargeValidationError(name, "must be a positive amount in minor units")
    return value


def _email(name: str, value: object, *, blank: bool) -> str:
    text = _require_text(name, value, max_length=254, blank=blank)
    if text:
        try:
            validate_email(text)
        except ValidationError as err:
            raise FlexChargeValidationError(name, "is not a valid email address") from err
    return text


def _number_problem(value: object) -> str:
    """Why ``value`` is no card number, "" if it is one. Never raises: no frame that
    holds the number is ever on a traceback."""
    number = re.sub(r"[\s-]", "", value) if isinstance(value, str) else ""
    if not number or not _DIGITS.match(number) or not 12 <= len(number) <= 19:
        return "must be 12 to 19 digits"
    return "" if luhn_ok(number) else "fails the Luhn check"


@dataclass(frozen=True, init=False)
class Card:
    """A card as typed by the customer. Lives in memory for one call; never stored."""

    number: str = field(repr=False)
    cvv: str = field(repr=False)
    exp_month: int
    exp_year: int
    first_name: str
    last_name: str

    def __init__(
        self,
        number: str,
        cvv: str,
        exp_month: int,
        exp_year: int,
        first_name: str,
        last_name: str,
    ) -> None:
        # The dataclass __init__, written out so that the number and CVV are no
        # longer locals of this frame when validation raises.
        object.__setattr__(self, "number", number)
        object.__setattr__(self, "cvv", cvv)
        del number, cvv
        object.__setattr__(self, "exp_month", exp_month)
        object.__setattr__(self, "exp_year", exp_year)
        object.__setattr__(self, "first_name", first_name)
        object.__setattr__(self, "last_name", last_name)
        self.__post_init__()

    def __post_init__(self) -> None:
        problem = _number_problem(self.number)
        if problem:
            raise FlexChargeValidationError("card.number", problem)
        object.__setattr__(self, "number", re.sub(r"[\s-]", "", self.number))
        if not isinstance(self.cvv, str) or (
            self.cvv and not re.fullmatch(r"[0-9]{3,4}", self.cvv)
        ):
            raise FlexChargeValidationError("card.cvv", "must be 3 or 4 digits (or empty)")
        if isinstance(self.exp_month, bool) or not isinstance(self.exp_month, int):
            raise FlexChargeValidationError("card.exp_month", "must be an integer 1-12")
        if not 1 <= self.exp_month <= 12:
            raise FlexChargeValidationError("card.exp_month", "must be between 1 and 12")
        if isinstance(self.exp_year, bool) or not isinstance(self.exp_year, int):
            raise FlexChargeValidationError("card.exp_year", "must be a four-digit year")
        if not 2000 <= self.exp_year <= 2100:
            raise FlexChargeValidationError("card.exp_year", "must be a four-digit year")
        today = timezone.now().date()
        if (self.exp_year, self.exp_month) < (today.year, today.month):
            raise FlexChargeValidationError("card.exp_year", "the card has expired")
        object.__setattr__(self, "first_name", _require_text("card.first_name", self.first_name))
        object.__setattr__(self, "last_name", _require_text("card.last_name", self.last_name))

    def __repr__(self) -> str:
        return f"Card(****{self.last4}, {self.exp_month:02d}/{self.exp_year})"

    __str__ = __repr__

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def bin(self) -> str:
        return self.number[:6]

    @property
    def brand(self) -> str:
        return card_brand(self.number)

    @property
    def holder_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class Payment:
    """One processor transaction (approved or declined) for a host order."""

    order_id: str
    transaction_id: str
    amount: int
    currency: str
    response_code: str = ""
    response_description: str = ""
    processor: str = ""
    occurred_at: dt.datetime | None = None
    avs_result_code: str = ""
    cvv_result_code: str = ""
    cavv_result_code: str = ""
    #: A merchant-initiated charge (a renewal): ``/transmit`` sends it as ``isMIT``.
    is_mit: bool = False
    #: ``CREDIT`` or ``DEBIT`` (FlexCharge's ``cardType``) when the processor says; "" omits it.
    card_type: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.is_mit, bool):
            raise FlexChargeValidationError("payment.is_mit", "must be True or False")
        card_type = _require_text("payment.card_type", self.card_type, max_length=16, blank=True)
        if card_type and not re.fullmatch(r"[A-Za-z_]+", card_type):
            raise FlexChargeValidationError("payment.card_type", "must be a word such as CREDIT")
        set_(self, "card_type", card_type.upper())
        set_(self, "order_id", _require_text("payment.order_id", self.order_id, max_length=100))
        set_(
            self,
            "transaction_id",
            _require_text("payment.transaction_id", self.transaction_id, max_length=100),
        )
        _amount("payment.amount", self.amount)
        set_(self, "currency", _currency("payment.currency", self.currency))
        for name in (
            "response_code",
            "response_description",
            "processor",
            "avs_result_code",
            "cvv_result_code",
            "cavv_result_code",
        ):
            set_(self, name, _require_text(f"payment.{name}", getattr(self, name), blank=True))
        if self.occurred_at is None:
            set_(self, "occurred_at", timezone.now())
        elif not isinstance(self.occurred_at, dt.datetime) or timezone.is_naive(self.occurred_at):
            raise FlexChargeValidationError(
                "payment.occurred_at", "must be a timezone-aware datetime"
            )

    @property
    def when(self) -> dt.datetime:
        assert self.occurred_at is not None  # set in __post_init__
        return self.occurred_at


@dataclass(frozen=True)
class Payer:
    email: str
    id: str = ""
    phone: str = ""
    birthdate: dt.date | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "email", _email("payer.email", self.email, blank=False))
        object.__setattr__(self, "id", _require_text("payer.id", self.id, blank=True))
        object.__setattr__(self, "phone", _require_text("payer.phone", self.phone, blank=True))
        if self.birthdate is not None and not isinstance(self.birthdate, dt.date):
            raise FlexChargeValidationError("payer.birthdate", "must be a date")


@dataclass(frozen=True)
class BillingAddress:
    first_name: str
    last_name: str
    address_line1: str
    city: str
    zipcode: str
    country_code: str
    state: str = ""
    address_line2: str = ""
    country: str = ""
    phone: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("first_name", "last_name", "address_line1", "city", "zipcode"):
            set_(self, name, _require_text(f"billing.{name}", getattr(self, name)))
        for name in ("state", "address_line2", "country", "phone"):
            set_(self, name, _require_text(f"billing.{name}", getattr(self, name), blank=True))
        code = self.country_code
        if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{2}", code.strip()):
            raise FlexChargeValidationError(
                "billing.country_code", "must be an ISO-3166 alpha-2 code such as US"
            )
        set_(self, "country_code", code.strip().upper())
        if self.country_code == "US":
            if not re.fullmatch(r"[0-9]{5}(-?[0-9]{4})?", self.zipcode):
                raise FlexChargeValidationError("billing.zipcode", "must be 5 or 9 digits for US")
            if not self.state:
                raise FlexChargeValidationError("billing.state", "is required for US addresses")


@dataclass(frozen=True)
class Subscription:
    id: str
    interval: str
    price: int
    currency: str
    payment_number: int | None = None
    total_payments: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", _require_text("subscription.id", self.id, max_length=100))
        object.__setattr__(
            self, "interval", _require_text("subscription.interval", self.interval, max_length=32)
        )
        _amount("subscription.price", self.price)
        object.__setattr__(self, "currency", _currency("subscription.currency", self.currency))
        for name in ("payment_number", "total_payments"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise FlexChargeValidationError(
                    f"subscription.{name}", "must be a positive integer"
                )
