"""No card data, key or token in error reports, frame locals, logs or rows (security item 4).

A failing ``vault_card`` is driven through ten ways ``/tokenize`` can fail.
Each time Django's error report (text and HTML, DEBUG on and off), a
Sentry-like capture of every frame's locals (containers walked, everything
else ``repr``-ed), the exception's text and the log hold no PAN (in any
grouping), CVV, key, secret or bearer token.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests
import responses
from django.test import override_settings
from django.utils import timezone
from django.views.debug import ExceptionReporter

from django_flexcharge.evaluations import send_evaluation
from django_flexcharge.exceptions import FlexChargeError
from django_flexcharge.models import FlexChargeOrder, VaultedCard
from django_flexcharge.redaction import Secret, redact, redact_text
from django_flexcharge.services import vault_card
from django_flexcharge.types import Card
from tests.conftest import API, token_body

PAN = "4000002760003184"
CVV = "8642"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2VjcmV0LXNpZ25hdHVyZQ"
APP_KEY, APP_SECRET, TOKENIZATION_KEY = "app-key-5bd1c0", "app-secret-9f2e77", "tok-key-31aa07"
KEYS = {
    "FLEXCHARGE_APP_KEY": APP_KEY,
    "FLEXCHARGE_APP_SECRET": APP_SECRET,
    "FLEXCHARGE_TOKENIZATION_KEY": TOKENIZATION_KEY,
}
SPACED, DASHED = "4000 0027 6000 3184", "4000-0027-6000-3184"
TOKENIZE = API + "tokenize"

#: (name, what /tokenize answers): a status and JSON, a raw body, or an exception.
FAILURES: list[tuple[str, dict[str, Any]]] = [
    ("400 echoes the PAN", {"status": 400, "json": {
        "title": "One or more validation errors occurred.",
        "errors": {"payment_method.credit_card.number": [f"'{PAN}' is not valid"]}}}),
    ("400 echoes it with spaces", {"status": 400, "json": {
        "title": f"Card {SPACED} refused (cvv {CVV})"}}),
    ("422 echoes it with dashes", {"status": 422, "json": {
        "responseMessage": f"bad card {DASHED}", "responseCode": "C1"}}),
    ("200 without a token echoes the card", {"status": 200, "json": {
        "success": True, "status": "SUCCESS", "result": f"number={PAN} cvv={CVV}",
        "transaction": {"payment_method": {"number": SPACED}}}}),
    ("200 envelope failure", {"status": 200, "json": {
        "success": False, "errors": [{"item1": f"Card {PAN}/{CVV} rejected", "item2": "card"}]}}),
    ("401 echoes the bearer", {"status": 401, "json": {
        "title": f"invalid token: Bearer {BEARER}"}}),
    ("500 echoes the secret and the tokenization key", {"status": 500, "json": {
        "title": f"config error {APP_SECRET} environment={TOKENIZATION_KEY} key={APP_KEY}"}}),
    ("200 that is not JSON", {"status": 200, "body": f"<html>{PAN} {CVV}</html>"}),
    ("connection error naming the URL", {"body": requests.ConnectionError(
        f"HTTPSConnectionPool: {TOKENIZE}?mid=x&environment={TOKENIZATION_KEY} failed")}),
    ("timeout", {"body": requests.ReadTimeout(f"read timed out: environment={TOKENIZATION_KEY}")}),
    ("token endpoint echoes the credentials", {"token": {"status": 400, "json": {
        "title": f"AppKey {APP_KEY} / AppSecret {APP_SECRET} invalid"}}}),
]  # fmt: skip
FORBIDDEN = [
    re.compile(r"(?<!\d)" + r"[ -]?".join(PAN) + r"(?!\d)"),
    re.compile(rf"(?<![0-9A-Za-z]){CVV}(?![0-9A-Za-z])"),
    *(re.compile(re.escape(value)) for value in (BEARER, APP_KEY, APP_SECRET, TOKENIZATION_KEY)),
]


def leaks(text: str) -> list[str]:
    return [pattern.pattern for pattern in FORBIDDEN if pattern.search(text)]


def make_card() -> Card:
    return Card(
        number=PAN,
        cvv=CVV,
        exp_month=9,
        exp_year=timezone.now().year + 3,
        first_name="Jane",
        last_name="Doe",
    )


def failed_vault(card: Card) -> FlexChargeError:
    """Call ``vault_card`` and return what it raised (this frame holds only ``card``)."""
    try:
        vault_card(card, email="jane@example.com")
    except FlexChargeError as err:
        return err
    raise AssertionError("vault_card did not fail")


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    """The exception and those it reports (cause, unsuppressed context), as reporters do."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def walk(value: Any, depth: int = 0) -> Iterator[str]:
    """What a tracker serialises: containers item by item, strings as they are, else repr."""
    if depth > 6:
        return
    if isinstance(value, str | bytes):
        yield value if isinstance(value, str) else value.decode("utf-8", "replace")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk(key, depth + 1)
            yield from walk(item, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from walk(item, depth + 1)
    else:
        yield repr(value)


def frame_locals(exc: BaseException) -> str:
    parts = []
    for err in chain(exc):
        tb = err.__traceback__
        while tb is not None:
            for name, value in tb.tb_frame.f_locals.items():
                parts.append(name)
                parts.extend(walk(value))
            tb = tb.tb_next
    return "\n".join(parts)


def register(rsps: responses.RequestsMock, failure: dict[str, Any]) -> None:
    token = failure.get("token")
    if token:
        rsps.add(responses.POST, API + "oauth2/token", **token)
    else:
        rsps.add(responses.POST, API + "oauth2/token", json={**token_body(), "accessToken": BEARER})
    if "token" not in failure:
        rsps.add(responses.POST, TOKENIZE, **failure)


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["DEBUG off", "DEBUG on"])
@pytest.mark.parametrize(("name", "failure"), FAILURES, ids=[name for name, _ in FAILURES])
def test_a_failing_vault_card_leaks_nothing(name, failure, debug, caplog):
    card = make_card()
    with (
        override_settings(DEBUG=debug, **KEYS),
        responses.RequestsMock(assert_all_requests_are_fired=False) as rsps,
    ):
        register(rsps, failure)
        exc = failed_vault(card)
        reporter = ExceptionReporter(None, type(exc), exc, exc.__traceback__)
        report = reporter.get_traceback_text() + reporter.get_traceback_html()
    assert leaks(report) == [], "Django's error report"
    assert leaks(frame_locals(exc)) == [], "frame locals"
    assert leaks(str(exc) + repr(exc) + repr(getattr(exc, "response", ""))) == []
    assert leaks(repr(getattr(exc, "errors", ""))) == []
    assert leaks(caplog.text) == [], "log"
    assert not VaultedCard.objects.exists()
    assert sys.exc_info() == (None, None, None)


@pytest.mark.django_db
def test_an_echo_in_an_evaluate_error_never_reaches_last_error(
    mocked, payer, billing, subscription, django_capture_on_commit_callbacks, settings
):
    from django_flexcharge.services import evaluate_declined_payment
    from tests.conftest import make_payment
    from tests.factories import make_vaulted

    settings.FLEXCHARGE_APP_SECRET = APP_SECRET
    with django_capture_on_commit_callbacks(execute=False):
        order = evaluate_declined_payment(
            make_payment(), card=make_vaulted(), payer=payer, billing=billing
        )
    mocked.add(
        responses.POST,
        API + "evaluate",
        status=400,
        json={
            "title": f"card {DASHED} with secret {APP_SECRET}",
            "errors": {"card": [f"{SPACED} invalid", f"Bearer {BEARER}"]},
        },
    )
    assert send_evaluation(order.pk) == "failed"
    order = FlexChargeOrder.objects.get(pk=order.pk)
    stored = f"{order.last_error} {order.api_errors} {order.response_payload}"
    assert leaks(stored) == []
    assert "[redacted]" in order.last_error


def test_a_secret_shows_nothing_and_cannot_be_pickled():
    import pickle

    secret = Secret({"number": PAN})
    assert PAN not in repr(secret) + str(secret) + f"{secret}" + repr([secret])
    assert secret.reveal() == {"number": PAN}
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_the_card_type_shows_only_its_last_four():
    card = make_card()
    assert leaks(repr(card) + str(card) + repr([card])) == []
    assert "3184" in repr(card)


@pytest.mark.parametrize(
    "text",
    [PAN, SPACED, DASHED, "4000 0027-6000 3184", f"x{PAN}x", "5100260023585100"],
)
def test_every_grouping_of_a_card_number_is_redacted(text):
    assert redact_text(f"card {text} declined", [PAN]) == "card x[redacted]x declined".replace(
        "x[redacted]x", "x[redacted]x" if text.startswith("x") else "[redacted]"
    )


def test_numbers_that_are_not_cards_are_kept():
    text = "order 1234567890123 (HTTP 400) trace 00-4bf92f3577b34da6-01"
    assert redact_text(text) == text
    assert redact({"n": [PAN, 7, None]}, [PAN]) == {"n": ["[redacted]", 7, None]}


TYPO = PAN[:-1] + "5"  # fails Luhn: a typo of a real number, as sensitive


def refused_card(*, typo: bool = False, **fields: Any) -> FlexChargeError:
    """Build a Card that is refused; what it raised (this frame holds no number or CVV)."""
    try:
        Card(number=TYPO if typo else PAN, cvv=CVV, **{"exp_month": 9, "exp_year": 2099, **fields})
    except FlexChargeError as err:
        return err
    raise AssertionError("the card was accepted")


@pytest.mark.parametrize(
    "fields",
    [
        {"exp_year": 2001},  # expired
        {"exp_month": 13},
        {"typo": True},
        {"first_name": ""},
    ],
)
def test_a_refused_card_leaves_its_number_in_no_frame(fields):
    fields.setdefault("first_name", "Jane")
    exc = refused_card(last_name="Doe", **fields)
    text = frame_locals(exc)
    assert leaks(text) == []
    assert TYPO not in text
    assert leaks(str(exc)) == []


def test_the_card_keeps_its_dataclass_contract():
    import dataclasses

    card = Card(PAN, CVV, 9, timezone.now().year + 1, "Jane", "Doe")  # positional, as before
    assert [f.name for f in dataclasses.fields(Card)] == [
        "number", "cvv", "exp_month", "exp_year", "first_name", "last_name",
    ]  # fmt: skip
    assert dataclasses.replace(card, cvv="").cvv == ""
    assert Card(number=SPACED, cvv=CVV, exp_month=9, exp_year=2099, first_name="J", last_name="D")
    assert card == make_card().__class__(PAN, CVV, 9, card.exp_year, "Jane", "Doe")


@pytest.mark.parametrize("error", [requests.ConnectionError, requests.ReadTimeout])
def test_a_network_error_carries_no_chain_with_the_bearer_or_the_body(error):
    from django_flexcharge.client import FlexChargeClient

    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, API + "oauth2/token", json={**token_body(), "accessToken": BEARER})
        rsps.add(responses.POST, API + "evaluate", body=error("boom"))
        try:
            FlexChargeClient(api_url=API).evaluate({"orderId": "INV-1"})
        except FlexChargeError as err:
            exc = err
    assert leaks(frame_locals(exc)) == []
    assert len(list(chain(exc))) == 1


def test_identifiers_holding_digit_runs_are_never_redacted() -> None:
    """A vault token (a GUID) is stored as FlexCharge sent it: never cut by the PAN/CVV scrub."""
    from django_flexcharge.redaction import luhn_ok, redact

    crafted = ["d9d99901-2345-6789-0123-4567abcdef99"]  # the CVV between letters
    for n in range(10**7, 10**7 + 200):  # digit runs across the dashes that pass Luhn
        digits = f"{n}1234"[:12] + "5678"
        if luhn_ok(digits):
            crafted.append(f"a{digits[:8]}-{digits[8:12]}-{digits[12:]}-beef-0123456789ab")
    tokens = crafted + [str(uuid.uuid4()) for _ in range(2000)]
    for token in tokens:
        body = {"transaction": {"payment_method": {"token": token}}}
        assert redact(body, ("4000002760003184", "999")) == body, token
    assert len(crafted) > 5
    assert redact({"m": "card 4000-0027-6000-3184, cvv 999"}, ("999",)) == {
        "m": "card [redacted], cvv [redacted]"
    }
