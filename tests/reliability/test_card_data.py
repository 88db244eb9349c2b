"""Card data (test PANs and CVVs) never lands in the database, the logs or an error text.

Three layers:

* a guard on the models: no field of ``django_flexcharge`` is named like a card
  number or security code, so a new one fails here before it stores anything;
* the card paths run with every test card through ``responses`` (vault, evaluate,
  transmit; successes, refusals that echo the card back, 5xx, timeouts, refused
  connections), capturing every log record at DEBUG and every exception with its
  chain, then scanning those and the database;
* the session scan: the watch in ``conftest.py`` saw every log record, database
  write and ``FlexChargeError`` of the whole run, and scanned the database after
  each test here; the last test of the session reads it.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import traceback
from collections.abc import Iterator

import pytest
import requests
import responses
from django.apps import apps
from django.conf import settings as django_settings
from django.utils import timezone

from django_flexcharge import services
from django_flexcharge.client import FlexChargeClient, set_client
from django_flexcharge.evaluations import send_evaluation
from django_flexcharge.exceptions import FlexChargeError
from django_flexcharge.models import FlexChargeOrder, Transmission
from django_flexcharge.transmissions import send_transmission
from django_flexcharge.types import Card
from tests.conftest import API, TEST_CVVS, TEST_PANS, make_payment
from tests.reliability.carddata import WatchHandler, find_card_data, scan_database
from tests.reliability.conftest import WATCH, record
from tests.reliability.harness import amount_for

pytestmark = pytest.mark.reliability

KEY = django_settings.FLEXCHARGE_TOKENIZATION_KEY
#: Name parts a field that holds card data would have.
CARD_WORDS = {
    "number",
    "pan",
    "cvv",
    "cvv2",
    "cvc",
    "cvc2",
    "cid",
    "verification",
    "security",
    "cardnumber",
    "primary",
}


def words(name: str) -> set[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return {part for part in re.split(r"[_\W]+", spaced.lower()) if part}


def test_no_model_field_can_hold_a_pan_or_a_cvv():
    checked = []
    for model in apps.get_app_config("django_flexcharge").get_models():
        for field in model._meta.get_fields():
            names = {field.name, getattr(field, "db_column", None) or ""}
            for name in names:
                assert not words(name) & CARD_WORDS, f"{model.__name__}.{name} looks like card data"
            checked.append(f"{model.__name__}.{field.name}")
    assert len(checked) > 40  # every model was looked at
    assert not words("card_number") - CARD_WORDS - {"card"}  # the guard itself works


def test_the_detectors_find_what_they_look_for():
    assert find_card_data("pan 4111 1111 1111 1111 end") == ["PAN 4111 1111 1111 1111"]
    assert find_card_data('{"verification_value": "737"}') == ['CVV verification_value": "737']
    assert find_card_data("order 123, 999 items, cvv_result_code M") == []


# --- the card paths, with every test card -----------------------------------------------------


class Captured:
    """Every log record (root at DEBUG) and every exception text with its chain."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.errors: list[str] = []

    def error(self, err: BaseException) -> None:
        text = "".join(traceback.format_exception(err))  # the chain: __cause__, __context__
        if isinstance(err, FlexChargeError):
            text += f"\n{err!r} {getattr(err, 'response', '')} {getattr(err, 'errors', '')}"
        self.errors.append(text)


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()

    class Lines(WatchHandler):
        def emit(self, record: logging.LogRecord) -> None:
            capture.lines.append(f"{record.name} {self.format(record)}")

    handler = Lines(WATCH)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield capture
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def card_for(pan: str, cvv: str) -> Card:
    return Card(
        number=pan,
        cvv=cvv,
        exp_month=12,
        exp_year=timezone.now().year + 2,
        first_name="Jane",
        last_name="Doe",
    )


def tokenized(token: str) -> dict:
    return {"transaction": {"payment_method": {"token": token, "number": None}}, "success": True}


def echo_400(pan: str, cvv: str) -> dict:
    """A refusal that repeats what it was sent, as some validators do."""
    return {
        "TraceId": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
        "PaymentMethod.CreditCard.Number": [f"The value '{pan}' is not valid for Number."],
        "PaymentMethod.CreditCard.VerificationValue": [f"cvv {cvv} is not accepted"],
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
@pytest.mark.parametrize(("pan", "cvv"), [(p, TEST_CVVS[i % 3]) for i, p in enumerate(TEST_PANS)])
def test_vault_evaluate_and_transmit_keep_card_data_out_of_logs_errors_and_tables(
    pan, cvv, captured, payer, billing, django_capture_on_commit_callbacks
):
    card = card_for(pan, cvv)
    url = f"/v1/tokenize?mid={django_settings.FLEXCHARGE_MID}&environment={KEY}"
    answers = [
        (200, tokenized("tok-ok")),
        (400, echo_400(pan, cvv)),
        (422, {"success": False, "errors": [{"item1": f"card {pan} cvv {cvv} refused"}]}),
        (500, f"<html>stack trace with {pan} and cvv={cvv}</html>"),
        # What requests/urllib3 really say: the URL (with the key), never the body.
        requests.ReadTimeout("HTTPSConnectionPool(host='x', port=443): Read timed out."),
        requests.ConnectionError(f"Max retries exceeded with url: {url} (Caused by ...)"),
        (200, {"success": True, "transaction": {"payment_method": {}}, "echo": pan}),
        (200, tokenized("tok-eval")),  # for the decline below
    ]

    def tokenize(request):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            return answer
        status, body = answer
        return status, {}, body if isinstance(body, str) else json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, API + "oauth2/token", json={"accessToken": "t", "expires": 0})
        mock.add_callback(responses.POST, API + "tokenize", callback=tokenize)
        outcomes = []
        for _ in range(7):
            try:
                outcomes.append(services.vault_card(card, email=payer.email).token)
            except FlexChargeError as err:
                captured.error(err)
                outcomes.append(type(err).__name__)

        # A decline with the typed card: vaulted (the one network call), stored, then sent;
        # an approval with it: only its metadata is kept. Each fails once, then goes through.
        mock.add(responses.POST, API + "evaluate", status=503, json={"message": "busy"})
        mock.add(responses.POST, API + "evaluate", json={"status": "SUBMITTED", "orderId": "fc"})
        mock.add(responses.POST, API + "transmit", status=500, body=f"cvv {cvv}")
        mock.add(responses.POST, API + "transmit", json={"transmitId": "t-1"})
        with django_capture_on_commit_callbacks(execute=True):
            order = services.evaluate_declined_payment(
                make_payment("CARD-1", amount=amount_for(1)),
                card=card,
                payer=payer,
                billing=billing,
            )
            row = services.transmit_approved_payment(
                make_payment("CARD-2", response_code="00"), card=card, payer=payer, billing=billing
            )
        FlexChargeOrder.objects.filter(pk=order.pk).update(next_attempt_at=None)
        Transmission.objects.filter(pk=row.pk).update(next_attempt_at=None)
        send_evaluation(order.pk)
        send_transmission(row.pk)
        sent = {c.request.url.split("?")[0]: c.request.body or b"" for c in mock.calls}

    # The card really went through these paths: to /tokenize, and only there.
    assert [u for u, body in sent.items() if find_card_data(body.decode())] == [API + "tokenize"]
    assert outcomes[0] == "tok-ok"
    assert outcomes[1:] == [
        "FlexChargeAPIError",
        "FlexChargeAPIError",
        "FlexChargeServerError",
        "FlexChargeTimeout",
        "FlexChargeConnectionError",
        "FlexChargeAPIError",
    ]
    order.refresh_from_db()
    row.refresh_from_db()
    assert (order.status, row.status) == ("pending", "sent")

    # ... and left nothing behind.
    assert captured.lines, "nothing was logged"
    assert [hit for line in captured.lines for hit in find_card_data(line)] == []
    assert [hit for text in captured.errors for hit in find_card_data(text)] == []
    findings, scanned = scan_database()
    assert findings == []
    assert scanned > 0
    record(
        f"card data/{pan[:4]}...{pan[-4:]}",
        log_records=len(captured.lines),
        exceptions=len(captured.errors),
        database_values=scanned,
        card_data_found=0,
    )


@pytest.mark.django_db
def test_the_tokenization_key_is_in_no_log_line_and_no_error_chain(captured, card, settings):
    # /tokenize authenticates with the key in the query string. A refused connection's
    # requests/urllib3 error repeats the URL; the app keeps only the class name, and must
    # not chain that error either: a host's error reporter prints the whole chain.
    client = FlexChargeClient(api_url=f"http://127.0.0.1:{closed_port()}/v1/", timeout=(0.5, 0.5))
    set_client(client)

    with pytest.raises(FlexChargeError) as raised:
        services.vault_card(card)

    captured.error(raised.value)
    ours = [line for line in captured.lines if line.startswith("django_flexcharge")]
    assert ours, "the failure was not logged"
    assert not [line for line in ours if KEY in line]
    assert not [text for text in captured.errors if KEY in text]
    assert not [hit for text in captured.errors + ours for hit in find_card_data(text)]


# --- the whole session ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_session_left_no_card_data_anywhere():
    """Runs last (conftest moves it there): what the watch saw during the whole session."""
    findings, scanned = scan_database()
    WATCH.findings.extend(f"database at the end: {hit}" for hit in findings)
    record(
        "card data/the whole session",
        log_records=WATCH.log_records,
        database_writes=WATCH.db_writes,
        flexcharge_errors=WATCH.exceptions,
        database_scans=WATCH.db_scans + 1,
        database_values_scanned=WATCH.values_scanned + scanned,
        findings=len(WATCH.findings),
    )
    assert WATCH.log_records > 0
    assert WATCH.db_writes > 0
    assert WATCH.exceptions > 0
    assert WATCH.findings == []
