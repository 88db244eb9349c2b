"""Fuzzing the webhook view: over 10,000 generated requests, never a 500, never a forged change.

The view is called directly (``RequestFactory`` + ``WebhookView.as_view()``),
skipping the middleware stack, so the volume fits the time budget; one test
goes through the full stack with Django's test client. After every request
the test checks what the database says: an unsigned, tampered, stale or
replayed request stores nothing and changes no order; a signed body the app
refuses (400) stores a failed event and changes no order.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
from collections import Counter
from collections.abc import Iterator
from email.utils import format_datetime, formatdate
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client, RequestFactory
from hypothesis import HealthCheck, assume, currently_in_test_context, given, settings
from hypothesis import strategies as st

from django_flexcharge.models import FlexChargeOrder, WebhookEvent
from django_flexcharge.signing import sign_headers
from django_flexcharge.testing import meta_headers
from django_flexcharge.views import WebhookView
from tests.factories import make_order
from tests.reliability.carddata import find_card_data
from tests.reliability.conftest import record

pytestmark = [pytest.mark.reliability, pytest.mark.django_db]

URL = "/flexcharge/webhook/"
HOST = "testserver"
KEY = django_settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS[0]
OTHER_KEY = "b3RoZXIga2V5LCBub3QgdGhlIHN1YnNjcmliZXIncw=="
LIMIT = 64 * 1024
VIEW = WebhookView.as_view()
FACTORY = RequestFactory()
#: Requests sent per test; the last test checks the total.
SENT: Counter[str] = Counter()

FUZZ = settings(
    deadline=None,
    database=None,
    # Repeatable in CI; FC_FUZZ_RANDOM=1 explores new inputs on every run.
    derandomize=os.environ.get("FC_FUZZ_RANDOM") != "1",
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

EVENTS = (
    "order.completed",
    "order.expired",
    "order.cancelled",
    "order.refunded",
    "order.capturerequired",
    "payment.chargeback.received",
    "",
    "ORDER.COMPLETED",
    "x" * 65,
)
FIELDS = (
    "Event",
    "TimeStamp",
    "EventData",
    "ExternalOrderId",
    "OrderId",
    "ConfirmationId",
    "IsTestMode",
    "IsResent",
)
CONTENT_TYPES = (
    "text/plain; charset=utf-8",
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "text/plain; charset=utf-16",
    "",
    "garbage/\u00ff; charset=nope",
)
#: Generated requests per test (hypothesis examples), over 10,000 in all.
EXAMPLES = {
    "unsigned": 3000,
    "tampered": 1600,
    "signed garbage": 1800,
    "signed json": 2600,
    "sizes": 800,
    "full stack": 400,
}


#: FC_FUZZ_SCALE=0.1 for a quick local run (the 10,000 check then skips).
SCALE = float(os.environ.get("FC_FUZZ_SCALE", "1"))


def fuzz(name: str) -> settings:
    return settings(FUZZ, max_examples=max(1, round(EXAMPLES[name] * SCALE)))


FC_HEADERS = ("x-fc-nonce", "x-fc-date", "x-fc-authorization", "x-fc-content-sha512")

latin1 = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=90)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["19.99", "-1", "1e400", "NaN", "0.001", " 5.00 ", "\x00"])
)
# One level of nesting is enough to put every JSON type where a field is expected
# (and hypothesis draws flat values several times faster than recursive ones).
json_values = (
    json_scalars
    | st.lists(json_scalars, max_size=3)
    | st.dictionaries(
        st.sampled_from(["", "a", "Amount", "TotalRefundedAmount", "Currency", "Event"]),
        json_scalars,
        max_size=3,
    )
)
timestamps = st.sampled_from(
    [
        "2026-01-02T10:11:12.123456Z",
        "2026-01-02T10:11:12.1234567Z",
        "2026-01-02T10:11:12",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59.999999Z",
        "2026-13-45T99:99:99Z",
        "yesterday",
    ]
) | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())


#: The ids of the ``orders`` fixture, plus unknown and empty ones.
SESSION_KEYS = ("fc-fuzz-p", "fc-fuzz-a", "fc-unknown", "")
ORDER_IDS = ("FUZZ-P", "FUZZ-A", "FUZZ-Q", "NOPE-1", "")


def good_value(field: str) -> st.SearchStrategy:
    return {
        "Event": st.sampled_from(EVENTS),
        "TimeStamp": timestamps,
        "EventData": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "TotalRefundedAmount": json_scalars,
                "RefundAmount": json_scalars,
                "Currency": st.sampled_from(["USD", "usd", "EUR", "", "XXX"]) | json_scalars,
            },
        ),
        "ExternalOrderId": st.sampled_from(ORDER_IDS),
        "OrderId": st.sampled_from(SESSION_KEYS),
        "ConfirmationId": st.sampled_from(["22ACD1D9", "", "y" * 33]),
        "IsTestMode": st.booleans(),
        "IsResent": st.booleans(),
    }[field]


def payload_objects() -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects with FlexCharge's fields in any casing, each right, wrong-typed or absent."""
    parts = []
    for field in FIELDS:
        name = st.sampled_from([field, field.lower(), field.upper()])
        value = st.one_of(st.just(...), good_value(field), json_values)
        parts.append(st.tuples(name, value))
    return st.tuples(*parts).map(lambda pairs: {k: v for k, v in pairs if v is not ...})


PAYLOADS = payload_objects()


def encode(data: Any, encoding: str) -> bytes:
    text = json.dumps(data, ensure_ascii=encoding == "ascii", allow_nan=True)
    return text.encode("utf-8" if encoding == "ascii" else encoding, errors="replace")


def call(
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    content_type: str = "text/plain; charset=utf-8",
    test: str,
    **meta: Any,
) -> tuple[int, str, Writes]:
    """POST through the view alone; (status code, answer's status, what it wrote)."""
    # Hypothesis also draws constants from the suite's source, the test PANs among
    # them. FlexCharge sends no card data; a body carrying a test PAN would be stored
    # as received and trip the session's card-data watch for the fuzzer's own input.
    if currently_in_test_context():
        assume(not find_card_data(body.decode("utf-8", "replace")))
    SENT[test] += 1
    request = FACTORY.generic(
        "POST", URL, data=body, content_type=content_type, HTTP_HOST=HOST, **meta
    )
    for name, value in meta_headers(headers or {}).items():
        request.META[name] = value
    writes = Writes()
    with connection.execute_wrapper(writes):
        response = VIEW(request)
    return response.status_code, response.data.get("status"), writes


def signed(body: bytes, **kwargs: Any) -> dict[str, str]:
    return sign_headers(kwargs.pop("key", KEY), kwargs.pop("host", HOST), body, **kwargs)


WRITE = re.compile(r'(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)
SAVEPOINT = re.compile(r'^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\s+"?(\w+)"?', re.I)


class Writes:
    """What a request wrote to the database: (statement, table) -> count.

    An ``execute_wrapper`` sees every statement the view sends, so "nothing
    changed" is checked at the source, cheaply enough for thousands of examples;
    each test also compares the orders table itself once at the end. The
    writes of a savepoint rolled back (the test's transaction holds the view's
    in savepoints) wrote nothing: the webhook tries its one-transaction path
    first and rolls it back when it does not apply. A statement
    ``WITH ... AS (UPDATE ...) INSERT ...`` counts each of its writes.
    """

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.savepoints: dict[str, int] = {}

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        savepoint = SAVEPOINT.match(sql)
        if savepoint:
            kind, name = savepoint.group(1).upper(), savepoint.group(2)
            if kind == "SAVEPOINT":
                self.savepoints[name] = len(self.log)
            elif kind == "ROLLBACK TO SAVEPOINT":
                del self.log[self.savepoints[name] :]
            return result
        head = sql.lstrip()[:6].upper()
        if head.startswith(("INSERT", "UPDATE", "DELETE")):
            match = WRITE.match(sql.lstrip())
            if match:
                self.log.append((match.group(1).split()[0].upper(), match.group(2)))
        elif head.startswith("WITH"):
            self.log += [(m.group(1).split()[0].upper(), m.group(2)) for m in WRITE.finditer(sql)]
        return result

    @property
    def seen(self) -> Counter[tuple[str, str]]:
        return Counter(self.log)

    @property
    def nothing(self) -> bool:
        return not self.seen

    @property
    def event_stored_only(self) -> bool:
        return self.seen == Counter({("INSERT", EVENTS_TABLE): 1})

    def orders_written(self) -> bool:
        return any(table == ORDERS_TABLE for _, table in self.seen)


ORDERS_TABLE = FlexChargeOrder._meta.db_table
EVENTS_TABLE = WebhookEvent._meta.db_table


def order_rows() -> list[tuple]:
    fields = ("pk", "status", "refunded_amount", "last_event_at", "order_session_key")
    return list(FlexChargeOrder.objects.order_by("pk").values_list(*fields))


@pytest.fixture
def orders() -> Iterator[dict[str, FlexChargeOrder]]:
    """Orders the generated events aim at; unchanged at the end unless an event applied."""
    made = {
        "pending": make_order("FUZZ-P", session_key="fc-fuzz-p"),
        "approved": make_order("FUZZ-A", FlexChargeOrder.Status.APPROVED, session_key="fc-fuzz-a"),
        "unknown id": make_order("FUZZ-Q", session_key=None),
    }
    before = order_rows()
    yield made
    assert order_rows() == before  # examples that applied an event restored what they changed


def restore(orders: dict[str, FlexChargeOrder]) -> None:
    """Put the orders back after a legitimately applied event, to keep fuzzing transitions."""
    WebhookEvent.objects.filter(status=WebhookEvent.Status.APPLIED).update(
        status=WebhookEvent.Status.IGNORED
    )
    for order in orders.values():
        FlexChargeOrder.objects.filter(pk=order.pk).update(
            status=order.status,
            refunded_amount=order.refunded_amount,
            order_session_key=order.order_session_key,
            last_event_at=None,
        )


# --- without a valid signature nothing happens ----------------------------------------------


@fuzz("unsigned")
@given(
    body=st.binary(max_size=2048),
    headers=st.dictionaries(
        st.sampled_from((*FC_HEADERS, "x-fc-signature", "x-forwarded-host", "authorization")),
        latin1
        | st.sampled_from(
            [
                "",
                "Signature=",
                "HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;x-fc-content-sha512&Signature=QUJD",
                formatdate(usegmt=True),
                "Fri, 31 Dec 9999 23:59:59 GMT",
                "Mon, 01 Jan 0001 00:00:00 GMT",
                "0" * 64,
            ]
        ),
        max_size=6,
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_random_unsigned_requests_are_refused_and_change_nothing(
    orders, body, headers, content_type
):
    status, answer, writes = call(body, headers, content_type=content_type, test="unsigned")

    assert (status, answer) == (401, "refused")
    assert writes.nothing, writes.seen


TAMPERINGS = (
    "body",
    "host",
    "key",
    "stale",
    "future",
    "long nonce",
    "replayed nonce",
    "no date",
    "no nonce",
    "hash only",
    "signature of another body",
)


@fuzz("tampered")
@given(
    payload=PAYLOADS,
    tampering=st.sampled_from(TAMPERINGS),
    flip=st.integers(min_value=0, max_value=10**6),
)
def test_tampered_stale_and_replayed_deliveries_are_refused(orders, payload, tampering, flip):
    body = encode(payload, "utf-8")
    now = dt.datetime.now(dt.UTC)
    sent_body, headers = body, signed(body)
    if tampering == "body":
        position = flip % (len(body) or 1)
        flipped = (body[position : position + 1] or b"\0")[0] ^ 1
        sent_body = body[:position] + bytes([flipped]) + body[position + 1 :]
    elif tampering == "host":
        headers = signed(body, host="evil.example.com")
    elif tampering == "key":
        headers = signed(body, key=OTHER_KEY)
    elif tampering == "stale":  # x-fc-date has whole seconds: keep clear of the 300 s edge
        headers = signed(body, date=format_datetime(now - dt.timedelta(seconds=305), usegmt=True))
    elif tampering == "future":
        headers = signed(body, date=format_datetime(now + dt.timedelta(seconds=305), usegmt=True))
    elif tampering == "long nonce":
        headers = signed(body, nonce="n" * 65)
    elif tampering == "replayed nonce":
        headers = signed(body, nonce=REPLAYABLE)
    elif tampering == "no date":
        headers.pop("x-fc-date")
    elif tampering == "no nonce":
        headers.pop("x-fc-nonce")
    elif tampering == "hash only":
        headers = {"x-fc-content-sha512": headers["x-fc-content-sha512"]}
    else:
        headers = signed(body + b" ")
    status, answer, writes = call(sent_body, headers, test="tampered")

    assert (status, answer) == (401, "refused"), tampering
    assert writes.nothing, (tampering, writes.seen)


REPLAYABLE = "replayable-nonce-0001"


@pytest.fixture(autouse=True)
def _one_accepted_delivery(orders):
    """A delivery already accepted, whose nonce the replay tampering reuses."""
    body = b'{"Event":"payment.chargeback.received","IsTestMode":true}'
    assert call(body, signed(body, nonce=REPLAYABLE), test="setup")[:2] == (200, "ignored")


# --- signed garbage: 400 (or 200 if it happens to be a usable event), never 500 --------------


@fuzz("signed garbage")
@given(
    raw=st.binary(max_size=4096)
    | st.text(max_size=1024).map(lambda t: t.encode("utf-8", "surrogatepass")),
    prefix=st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b" ", b"\x00"]),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_signed_bodies_that_are_not_json_are_refused_without_changes(
    orders, raw, prefix, content_type
):
    body = prefix + raw

    status, answer, writes = call(
        body, signed(body), content_type=content_type, test="signed garbage"
    )

    assert status in (200, 400), (status, answer)
    if status == 400:
        assert answer == "refused"
        assert writes.event_stored_only, writes.seen  # kept as failed, for the merchant
    if answer == "applied":
        restore(orders)


@fuzz("signed json")
@given(
    payload=PAYLOADS,
    encoding=st.sampled_from(["utf-8", "ascii", "utf-8-sig", "utf-16", "latin-1"]),
)
def test_signed_json_with_wrong_types_never_fails_and_only_valid_events_apply(
    orders, payload, encoding
):
    body = encode(payload, encoding)

    status, answer, writes = call(body, signed(body), test="signed json")

    assert status in (200, 400), (status, answer, payload)
    assert writes.seen[("INSERT", EVENTS_TABLE)] == 1
    if status == 400:
        assert writes.event_stored_only, (writes.seen, payload)
    if answer == "applied":
        assert writes.orders_written()
        restore(orders)
    elif writes.orders_written():
        # An ignored event may only teach an order FlexCharge's id (found by ours).
        assert answer in ("ignored", "duplicate"), (answer, payload)
        assert FlexChargeOrder.objects.get(pk=orders["unknown id"].pk).order_session_key
        restore(orders)


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00"]
)
def test_a_signed_timestamp_at_the_ends_of_the_calendar_is_not_a_server_error(orders, stamp):
    # Found by the test above: a TimeStamp whose UTC time falls outside year 1..9999
    # could not be stored, and the answer was 500 (FlexCharge would redeliver it for ever).
    body = json.dumps(
        {
            "Event": "order.completed",
            "TimeStamp": stamp,
            "OrderId": "fc-fuzz-p",
            "ExternalOrderId": "FUZZ-P",
        }
    ).encode()

    status, answer, writes = call(body, signed(body), test="setup")

    assert status in (200, 400), answer
    if status == 400:
        assert writes.event_stored_only
    else:
        restore(orders)


# --- sizes up to the limit and lying Content-Length headers ---------------------------------


@fuzz("sizes")
@given(
    size=st.sampled_from([0, 1, LIMIT - 1, LIMIT, LIMIT + 1, 10 * LIMIT])
    | st.integers(min_value=0, max_value=LIMIT + 64),
    seed=st.integers(min_value=0, max_value=2**32),
    sign=st.booleans(),
    json_shaped=st.booleans(),
    declared=st.sampled_from(["right", "smaller", "garbage", "negative", "huge"]),
)
def test_bodies_up_to_the_limit_and_beyond(orders, size, seed, sign, json_shaped, declared):
    rng = random.Random(seed)
    if json_shaped:
        padding = "".join(rng.choices("abcdef0123456789 ", k=max(size - 60, 0)))
        body = json.dumps({"Event": "order.capturerequired", "Pad": padding}).encode()[:size]
    else:
        body = rng.randbytes(size)
    headers = signed(body) if sign else {}
    meta = {}
    if declared == "smaller" and body:
        meta["CONTENT_LENGTH"] = str(rng.randrange(len(body)))
    elif declared == "garbage":
        meta["CONTENT_LENGTH"] = "twelve"
    elif declared == "negative":
        meta["CONTENT_LENGTH"] = "-5"
    elif declared == "huge":
        meta["CONTENT_LENGTH"] = str(10**12)
    status, answer, writes = call(body, headers, test="sizes", **meta)

    told = meta.get("CONTENT_LENGTH", str(len(body)))
    if declared == "garbage":
        assert (status, answer) == (400, "refused")
    elif told.isdigit() and int(told) > LIMIT:
        assert (status, answer) == (413, "refused")
    elif not sign:
        assert (status, answer) == (401, "refused")
    elif declared == "right":
        assert status in (200, 400)
    else:
        # A lying length changes the bytes read: refused at the signature, unless what
        # was read is still exactly what was signed (an empty body read as empty).
        assert status == 401 or (body == b"" and status == 400), (status, declared)
    if status in (401, 413) or declared == "garbage":
        assert writes.nothing
    elif status == 400:
        assert writes.event_stored_only
    else:
        assert writes.seen[("INSERT", EVENTS_TABLE)] == 1
        assert not writes.orders_written()


@pytest.mark.parametrize("length", ["twelve", "1e3", "0x10", " "])
def test_a_content_length_that_is_not_a_number_is_a_400_not_a_500(orders, length):
    # Found by the test above: Django's request.body raised ValueError (a 500) on it.
    body = b'{"Event":"order.completed"}'
    writes = Writes()

    with connection.execute_wrapper(writes):
        response = Client().post(
            URL,
            data=body,
            content_type="text/plain",
            CONTENT_LENGTH=length,
            **meta_headers(signed(body)),
        )

    assert response.status_code == 400
    assert writes.nothing


# --- the full stack: middleware, URL routing, hosts -----------------------------------------


@fuzz("full stack")
@given(
    host=st.sampled_from([HOST, "127.0.0.1:8000", "[::1]", "exa mple.com", "a" * 300, ""]) | latin1,
    body=st.binary(max_size=512),
    sign=st.booleans(),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_through_the_full_stack_nothing_fails(orders, host, body, sign, content_type):
    client = Client(raise_request_exception=True)
    headers = signed(body, host=host) if sign else {}
    SENT["full stack"] += 1
    writes = Writes()

    with connection.execute_wrapper(writes):
        # generic(): the bytes as they are (post() re-encodes them to the declared charset)
        response = client.generic(
            "POST", URL, body, content_type, HTTP_HOST=host, **meta_headers(headers)
        )

    assert response.status_code in (200, 400, 401), response.status_code
    if not sign or response.status_code == 401:
        assert writes.nothing
    assert not writes.orders_written() or response.json()["status"] == "applied"
    if writes.orders_written():
        restore(orders)


# --- how many --------------------------------------------------------------------------------


def test_more_than_ten_thousand_requests_were_generated():
    fuzzed = {name: n for name, n in SENT.items() if name != "setup"}
    if set(fuzzed) != set(EXAMPLES) or SCALE < 1:
        pytest.skip("only part of the fuzz module ran")
    record("fuzz/webhook view", requests=sum(fuzzed.values()), **fuzzed, server_errors=0)
    assert sum(fuzzed.values()) >= 10_000
