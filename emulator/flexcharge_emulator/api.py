"""``/oauth2/token``, ``/tokenize``, ``/transmit`` and ``/evaluate``.

Each method takes the parsed request and returns ``(http_status, body)``; the
HTTP plumbing lives in ``server.py``. Validation mirrors what the sandbox was
seen to enforce (flexcharge-api.md §6.2, §16): required fields answer the
flattened 400 dictionary with PascalCase dotted paths and a ``TraceId``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from . import scenarios
from .auth import TokenIssuer
from .config import EmulatorConfig
from .orders import Orders, Response
from .payloads import canonical, envelope, failure, get, invalid, is_blank, parse_int, required
from .payloads import validation_error as v400
from .state import CANCELLED, COMPLETED, DRAFT, RETURNED, Order, State, VaultEntry, now_iso

EVALUATE_REQUIRED = (
    "IsDeclined",
    "IdempotencyKey",
    "OrderId",
    "Transaction.Id",
    "Transaction.ResponseCode",
    "Transaction.ResponseCodeSource",
    "Transaction.AvsResultCode",
    "Transaction.CvvResultCode",
    "Transaction.CavvResultCode",
    "Transaction.Amount",
    "Transaction.Currency",
    "Payer.Email",
    "PaymentMethod.CardNumber",
)
TRANSMIT_REQUIRED = ("IsDeclined", "OrderId", "IsMIT", "Transaction", "Payer", "PaymentMethod")
BILLING_FIELDS = (
    "firstName", "lastName", "addressLine1", "addressLine2", "city", "state",
    "zipcode", "country", "countryCode", "phone",
)  # fmt: skip


def _missing(body: Any, paths: tuple[str, ...]) -> dict[str, list[str]]:
    return {p: [required(p)] for p in paths if is_blank(get(body, *p.split(".")))}


def _parse_expiry(value: Any) -> datetime | None:
    """``expiryDateUtc`` as an aware datetime (naive is UTC); None when unparseable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Api:
    def __init__(
        self, config: EmulatorConfig, state: State, issuer: TokenIssuer, orders: Orders
    ) -> None:
        self.config, self.state, self.issuer, self.orders = config, state, issuer, orders

    def token(self, body: Any) -> Response:
        """Bad or missing AppKey/AppSecret -> 400 (the sandbox's answer, body unrecorded)."""
        key, secret = get(body, "AppKey"), get(body, "AppSecret")
        if key != self.config.app_key or secret != self.config.app_secret:
            return 400, failure("Invalid AppKey or AppSecret", "400")
        with self.state.lock:
            self.state.token_requests += 1
        return 200, self.issuer.issue()

    def tokenize(self, query: dict[str, list[str]], body: Any) -> Response:
        """Vault a card (§4). Keeps last4, first digits, expiry and the PAN's scenario, not the PAN."""
        errors: dict[str, list[str]] = {}
        for name, expected in (
            ("Mid", self.config.mid),
            ("Environment", self.config.tokenization_key),
        ):
            given = query.get(name.lower(), [""])[0]
            if given != expected:
                errors[name] = [required(name) if not given else f"The {name} is invalid."]
        method = get(body, "payment_method") or get(body, "payment", "method") or {}
        card = get(method, "credit_card")
        if not isinstance(card, dict):
            errors["PaymentMethod.CreditCard"] = [required("CreditCard")]
            card = {}
        names_optional = get(body, "allowBlankName") is True
        for field in ("Number", "Month", "Year", "FirstName", "LastName"):
            if is_blank(get(card, field)) and not (names_optional and field.endswith("Name")):
                errors[f"PaymentMethod.CreditCard.{field}"] = [required(field)]
        number = "".join(ch for ch in str(get(card, "number") or "") if ch.isdigit())
        month, year = parse_int(get(card, "month")), parse_int(get(card, "year"))
        if number and not 12 <= len(number) <= 19:
            errors["PaymentMethod.CreditCard.Number"] = [invalid("Number")]
        if get(card, "month") is not None and (month is None or not 1 <= month <= 12):
            errors["PaymentMethod.CreditCard.Month"] = [invalid("Month")]
        if get(card, "year") is not None and (year is None or not 2000 <= year <= 2100):
            errors["PaymentMethod.CreditCard.Year"] = [invalid("Year")]
        if errors:
            return 400, v400(errors)
        assert month is not None
        assert year is not None
        entry = VaultEntry(
            token=str(uuid.uuid4()),
            first_six=number[:8],  # the sandbox's "first_six_digits" held 8 digits (§4)
            last_four=number[-4:],
            month=month,
            year=year,
            first_name=str(get(card, "first_name") or ""),
            last_name=str(get(card, "last_name") or ""),
            email=str(get(method, "email") or get(body, "email") or ""),
            scenario=scenarios.card_rule(number),
        )
        del number  # the PAN goes no further than this frame
        with self.state.lock:
            self.state.tokens[entry.token] = entry
        stamp = now_iso()
        return 200, envelope(
            transaction={
                "on_test_gateway": True,
                "created_at": stamp,
                "updated_at": stamp,
                "succeeded": True,
                "token": None,
                "amount": 0,
                "payment_method_added": False,
                "payment_method": {
                    "token": entry.token,
                    "created_at": entry.created_at,
                    "updated_at": entry.created_at,
                    "storage_state": None,
                    "test": False,
                    "last_four_digits": entry.last_four,
                    "first_six_digits": entry.first_six,
                    "card_type": _brand(entry.first_six),
                    "first_name": entry.first_name,
                    "last_name": entry.last_name,
                    "month": entry.month,
                    "year": entry.year,
                    "fingerprint": None,
                    "verification_value": None,
                    "number": None,
                },
            },
            cardBinInfo=None,
        )

    def transmit(self, body: Any) -> Response:
        """Loose validation, then "fire and forget" (§5); counted per idempotency key."""
        if not isinstance(body, dict):
            return 400, v400({"$": ["The JSON value could not be converted."]})
        errors = _missing(body, TRANSMIT_REQUIRED)
        if errors:
            return 400, v400(errors)
        key = get(body, "idempotencyKey")
        if is_blank(key):
            key = f"{get(body, 'orderId')}:{get(body, 'transaction', 'id')}"
        with self.state.lock:
            self.state.transmits.append(body)
            self.state.count("transmit", str(key))
        return 200, envelope(transmitId=str(uuid.uuid4()))

    def evaluate(self, body: Any) -> Response:
        if not isinstance(body, dict):
            return 400, v400({"$": ["The JSON value could not be converted."]})
        errors = _missing(body, EVALUATE_REQUIRED)
        for path in ("IsDeclined", "IsMIT"):
            value = get(body, path)
            if value is not None and not isinstance(value, bool):
                errors[path] = [invalid(path)]
        amount = parse_int(get(body, "transaction", "amount"))
        if "Transaction.Amount" not in errors and (amount is None or amount <= 0):
            errors["Transaction.Amount"] = [invalid("Transaction.Amount")]
        is_mit = get(body, "isMIT") is True
        raw_expiry = get(body, "expiryDateUtc")
        expiry = _parse_expiry(raw_expiry)
        if raw_expiry is not None and (expiry is None or (is_mit and expiry <= datetime.now(UTC))):
            errors["ExpiryDateUtc"] = [invalid("ExpiryDateUtc")]
        if errors:
            return 400, v400(errors)
        assert amount is not None
        key, external_id, text = (
            str(get(body, "idempotencyKey")),
            str(get(body, "orderId")),
            canonical(body),
        )
        with self.state.lock:
            seen = self.state.evaluate_keys.get(key)
            if seen is not None and seen[0] != text:
                return 409, failure("The idempotency key was used with a different payload", "409")
            if seen is not None and self.config.evaluate_replay_conflict:
                # The knob: a replay is refused although the order exists and goes on.
                self.state.evaluate_requests.append(body)
                self.state.count("evaluate_replay", key)
                return 409, failure("The idempotency key was already used", "409")
            # Same key and body: replay. Same merchant orderId under a new key: FlexCharge
            # matches retries by orderId (§13), so answer with that order's current state.
            order = (
                self.state.orders.get(seen[1]) if seen else self.state.find_external(external_id)
            )
            if order is None:
                order = self._new_order(body, key, external_id, amount, is_mit, raw_expiry)
                self.orders.add(order)
                response = order.evaluate_response
            elif seen is not None:
                response = order.evaluate_response
            else:
                response = _evaluate_body(order.id, get(body, "senseKey"), _current_status(order))
            self.state.evaluate_requests.append(body)
            if seen is None:
                self.state.evaluate_keys[key] = (text, order.id)
                self.state.count("evaluate", key)
                self.state.count("evaluate_order_id", external_id)
            else:
                self.state.count("evaluate_replay", key)
            return 200, response

    def _new_order(
        self,
        body: dict[str, Any],
        key: str,
        external_id: str,
        amount: int,
        is_mit: bool,
        expiry: Any,
    ) -> Order:
        card_number = str(get(body, "paymentMethod", "cardNumber") or "")
        if get(body, "paymentMethod", "token") is True:
            vaulted = self.state.tokens.get(card_number)
            # An unknown token (e.g. vaulted before an emulator restart) just has no card rule.
            card_scenario = vaulted.scenario if vaulted else None
        else:
            card_scenario = scenarios.card_rule(card_number)
        managed = is_mit and expiry is not None
        fate = scenarios.fate(card_scenario, amount)
        status = scenarios.evaluate_status(fate, managed)
        billing = get(body, "billingInformation")
        order = Order(
            id=self.state.new_order_id(),
            external_order_id=external_id,
            idempotency_key=key,
            amount=amount,
            currency=str(get(body, "transaction", "currency")).upper(),
            fate=fate,
            managed=managed,
            is_mit=is_mit,
            status={"SUBMITTED": DRAFT, "APPROVED": COMPLETED}.get(status, CANCELLED),
            outcome=status,
            expiry_date=expiry if managed else None,
            payer={k: get(body, "payer", k) for k in ("id", "email", "phone")},
            billing={k: get(billing, k) for k in BILLING_FIELDS}
            if isinstance(billing, dict)
            else None,
        )
        order.evaluate_response = _evaluate_body(order.id, get(body, "senseKey"), status)
        return order


def _current_status(order: Order) -> str:
    if order.pending:
        return "SUBMITTED"
    return "APPROVED" if order.status in (COMPLETED, RETURNED) else "DECLINED"


def _evaluate_body(order_id: str, sense_key: Any, status: str) -> dict[str, Any]:
    """Exactly the observed §6.4 envelope: orderSessionKey == orderId == FlexCharge's id."""
    return {
        "orderSessionKey": order_id,
        "senseKey": sense_key,
        "orderId": order_id,
        "success": True,
        "result": "Success",
        "status": status,
        "statusCode": None,
        "errors": [],
        "customProperties": {},
    }


def _brand(digits: str) -> str | None:
    """Spreedly-style card_type from the leading digits (the sandbox sent null; invented)."""
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in {"51", "52", "53", "54", "55"} or "2221" <= digits[:4] <= "2720":
        return "master"
    if digits[:2] in {"34", "37"}:
        return "american_express"
    if digits.startswith(("6011", "65")):
        return "discover"
    return None
