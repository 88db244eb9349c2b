"""The local FlexCharge emulator, exercised over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import http.client
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from django_flexcharge import signing
from django_flexcharge.client import FlexChargeClient
from django_flexcharge.testing import EmulatorControl
from flexcharge_emulator import (
    NOT_RESCUED_CARD,
    RESCUE_CARD,
    Emulator,
    EmulatorConfig,
    webhook_host,
)
from tests.emulator_helpers import (
    CONFIG,
    Receiver,
    card_body,
    evaluate_body,
    make_emulator,
    session_for,
    submit,
)

TRACE_ID = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def emu() -> Iterator[Emulator]:
    emulator = make_emulator()
    yield emulator
    emulator.stop()


def submit_body(emulator: Emulator, body: dict[str, Any]) -> str:
    """Evaluate ``body``; its orderSessionKey."""
    response = session_for(emulator).post(emulator.base_url + "evaluate", json=body)
    return str(response.json()["orderSessionKey"])


def tokenize(
    emulator: Emulator, pan: str = RESCUE_CARD, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(
        emulator.base_url + "tokenize",
        params={"mid": CONFIG.mid, "environment": CONFIG.tokenization_key},
        json=card_body(pan),
        headers=headers,
    )


def client_for(emulator: Emulator) -> FlexChargeClient:
    """The package's own client, pointed at ``emulator``."""
    return FlexChargeClient(
        api_url=emulator.base_url,
        app_key=CONFIG.app_key,
        app_secret=CONFIG.app_secret,
        mid=CONFIG.mid,
        tokenization_key=CONFIG.tokenization_key,
    )


def raw_request(emulator: Emulator, method: str, path: str, token: str = "") -> int:
    """Send ``path`` byte for byte (``requests`` would normalise its escapes); the status."""
    host, port = emulator.base_url.split("//")[1].split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        headers = {"Content-Type": "application/json", "Content-Length": "2"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        connection.request(method, path, body=b"{}", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_token_needs_valid_credentials_and_expires_in_milliseconds(emu: Emulator) -> None:
    url = emu.base_url + "oauth2/token"
    assert requests.post(url, json={"AppKey": "x", "AppSecret": "y"}).status_code == 400
    assert requests.post(url, json={}).status_code == 400
    response = requests.post(url, json={"appkey": CONFIG.app_key, "APPSECRET": CONFIG.app_secret})
    assert response.status_code == 200
    body = response.json()
    now_ms = time.time() * 1000
    assert abs(body["expires"] - (now_ms + 600_000)) < 5_000
    claims = jwt_claims(body["accessToken"])
    assert claims["exp"] * 1000 == body["expires"]
    assert claims["custom:mid"] == CONFIG.mid
    assert claims["sub"] == body["id"]
    assert body["success"] is True
    assert body["errors"] == []
    assert body["customProperties"] == {}
    assert body["refreshToken"]
    assert emu.state.token_requests == 1


def test_api_refuses_missing_unknown_and_expired_bearer() -> None:
    with make_emulator() as emu:
        url = emu.base_url + "orders"
        assert requests.get(url).status_code == 401
        assert requests.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
        token = session_for(emu).headers["Authorization"].split()[1]
        assert requests.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert requests.get(url, headers={"Authorization": token}).status_code == 200  # bare
        with make_emulator() as other:  # a token from another emulator is unknown there
            foreign = requests.get(other.base_url + "orders", headers={"Authorization": token})
            assert foreign.status_code == 401
    # Expiry on its own emulator: a 1 s token checked on a loaded machine only after it lapsed.
    with make_emulator(token_ttl=1) as emu:
        token = session_for(emu).headers["Authorization"].split()[1]
        time.sleep(2.1)
        assert (
            requests.get(emu.base_url + "orders", headers={"Authorization": token}).status_code
            == 401
        )


def test_expire_tokens_forces_reauthentication(emu: Emulator) -> None:
    session = session_for(emu)
    assert session.get(emu.base_url + "orders").status_code == 200
    EmulatorControl.of(emu).post("tokens/expire")
    assert session.get(emu.base_url + "orders").status_code == 401


def _leaves(value: object) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_leaves(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_leaves(v) for v in value)) if value else set()
    return {str(value)}


def test_tokenize_accepts_both_shapes_and_never_echoes_the_pan(emu: Emulator) -> None:
    snake = tokenize(emu)
    assert snake.status_code == 200
    method = snake.json()["transaction"]["payment_method"]
    assert method["last_four_digits"] == "3184"
    assert method["first_six_digits"].startswith("400000")
    assert (method["month"], method["year"]) == (9, 2030)
    assert method["number"] is None
    assert method["verification_value"] is None
    assert RESCUE_CARD not in snake.text
    # The CVV as a value anywhere in the answer (a substring test would trip on random ids).
    assert "999" not in _leaves(snake.json())
    camel = requests.post(
        emu.base_url + "tokenize",
        params={"mid": CONFIG.mid, "environment": CONFIG.tokenization_key},
        json={
            "paymentMethod": {
                "creditCard": {
                    "firstName": "Jo",
                    "lastName": "Doe",
                    "number": "4111111111111111",
                    "verificationValue": "",
                    "month": "03",
                    "year": "2031",
                }
            }
        },
    )
    assert camel.status_code == 200
    assert camel.json()["transaction"]["payment_method"]["last_four_digits"] == "1111"
    assert set(emu.state.tokens) == {
        method["token"],
        camel.json()["transaction"]["payment_method"]["token"],
    }
    assert emu.state.tokens[method["token"]].scenario == "rescued"


def test_tokenize_takes_a_bearer_or_none_and_the_client_sends_one(emu: Emulator) -> None:
    # /tokenize is "open": mid + environment are its credential, a bearer is tolerated.
    assert tokenize(emu).status_code == 200
    bearer = session_for(emu).headers["Authorization"]
    assert tokenize(emu, headers={"Authorization": bearer}).status_code == 200
    tokens_before = emu.state.token_requests
    answer = client_for(emu).tokenize(card_body())
    assert answer["transaction"]["payment_method"]["token"] in emu.state.tokens
    assert emu.state.token_requests == tokens_before + 1  # the client got a bearer for it
    assert len(emu.state.tokens) == 3


def test_tokenize_with_wrong_mid_or_environment_is_a_flattened_400(emu: Emulator) -> None:
    response = requests.post(
        emu.base_url + "tokenize", params={"mid": "other", "environment": "x"}, json={}
    )
    assert response.status_code == 400
    body = response.json()
    assert TRACE_ID.match(body["TraceId"][0])
    assert {"Mid", "Environment", "PaymentMethod.CreditCard"} <= set(body)
    assert emu.state.tokens == {}


def test_evaluate_missing_fields_answer_the_flattened_400(emu: Emulator) -> None:
    response = session_for(emu).post(emu.base_url + "evaluate", json={"transaction": {}})
    assert response.status_code == 400
    body = response.json()
    assert TRACE_ID.match(body.pop("TraceId")[0])
    assert body["IdempotencyKey"] == ["The IdempotencyKey field is required."]
    assert set(body) == {
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
    }
    assert emu.state.orders == {}


@pytest.mark.parametrize("expiry", ["", "not a date", "2020-01-01T00:00:00Z"])
def test_evaluate_rejects_an_invalid_or_past_expiry(emu: Emulator, expiry: str) -> None:
    body = evaluate_body()
    body["expiryDateUtc"] = expiry
    response = session_for(emu).post(emu.base_url + "evaluate", json=body)
    assert response.status_code == 400
    assert response.json()["ExpiryDateUtc"] == ["The field ExpiryDateUtc is invalid."]


def test_managed_mit_is_submitted_then_rescued_with_a_signed_webhook(receiver: Receiver) -> None:
    with make_emulator(rescue_delay=0.3, webhook_url=receiver.url) as emu:
        session = session_for(emu)
        token = tokenize(emu).json()["transaction"]["payment_method"]["token"]
        body = evaluate_body(card=token, token=True)
        body["PaymentMethod"] = body.pop("paymentMethod")  # property names are case-insensitive
        response = session.post(emu.base_url + "evaluate", json=body)
        assert response.status_code == 200
        data = response.json()
        key = data["orderSessionKey"]
        assert data == {
            "orderSessionKey": key,
            "senseKey": None,
            "orderId": key,
            "success": True,
            "result": "Success",
            "status": "SUBMITTED",
            "statusCode": None,
            "errors": [],
            "customProperties": {},
        }
        order = session.get(emu.base_url + f"orders/{key}").json()
        assert order["status"] in (0, 4)
        assert order["externalOrderId"] == body["orderId"]
        assert order["amount"] == 1999
        assert order["currencyCode"] == "USD"
        deadline = time.monotonic() + 3
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        order = session.get(emu.base_url + f"orders/{key}").json()
        assert (order["status"], order["statusName"]) == (7, "COMPLETED")
        assert emu.flush_webhooks(2)

    delivery = receiver.requests[0]
    headers, raw = delivery["headers"], delivery["body"]
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Host"] == webhook_host(receiver.url) == receiver.url.split("/")[2]
    lower = {k.lower(): v for k, v in headers.items()}
    assert signing.verify(raw, lower, webhook_host(receiver.url), [CONFIG.subscriber_key])
    assert not signing.verify(raw, lower, "127.0.0.1", [CONFIG.subscriber_key])
    payload = json.loads(raw)
    assert list(payload) == [
        "Event",
        "TimeStamp",
        "EventData",
        "ExternalOrderId",
        "OrderId",
        "ConfirmationId",
        "IsTestMode",
        "IsResent",
    ]
    assert payload["Event"] == "order.completed"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", payload["TimeStamp"])
    assert payload["OrderId"] == key
    assert payload["ExternalOrderId"] == body["orderId"]
    assert re.fullmatch(r"[0-9A-F]{8}", payload["ConfirmationId"])
    assert payload["IsTestMode"] is True
    assert payload["IsResent"] is False
    assert b": " not in raw  # compact, like FlexCharge's sample


def test_webhook_is_redelivered_after_a_500_with_is_resent(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    with make_emulator(webhook_url=receiver.url, webhook_backoff=0.05) as emu:
        key = submit(emu, session_for(emu))
        emu.approve(key)
        assert emu.flush_webhooks(3)
        attempts = [(d["status"], d["resent"], d["attempt"]) for d in emu.state.deliveries]
    assert attempts == [(500, False, 1), (503, True, 2), (200, True, 3)]
    assert [p["IsResent"] for p in receiver.payloads()] == [False, True, True]
    assert len({r["headers"]["x-fc-nonce"] for r in receiver.requests}) == 3
    for request in receiver.requests:
        lower = {k.lower(): v for k, v in request["headers"].items()}
        assert signing.verify(
            request["body"], lower, webhook_host(receiver.url), [CONFIG.subscriber_key]
        )
    assert {p["TimeStamp"] for p in receiver.payloads()} == {receiver.payloads()[0]["TimeStamp"]}


def test_webhook_redelivery_survives_a_site_that_is_down() -> None:
    with make_emulator(
        webhook_url="http://127.0.0.1:9/hook/", webhook_backoff=0.01, webhook_max_attempts=3
    ) as emu:
        key = submit(emu, session_for(emu))
        emu.expire(key)
        assert emu.flush_webhooks(3)
        assert [(d["status"], d["resent"]) for d in emu.state.deliveries] == [
            (None, False),
            (None, True),
            (None, True),
        ]
        assert emu.state.events[0]["Event"] == "order.expired"


def test_same_key_same_body_replays_and_a_different_body_conflicts(emu: Emulator) -> None:
    session = session_for(emu)
    body = evaluate_body()
    first = session.post(emu.base_url + "evaluate", json=body).json()
    replay = session.post(emu.base_url + "evaluate", json=dict(reversed(body.items())))
    assert replay.status_code == 200
    assert replay.json() == first
    changed = {**body, "transaction": {**body["transaction"], "amount": 2999}}
    assert session.post(emu.base_url + "evaluate", json=changed).status_code == 409
    assert len(emu.state.orders) == 1
    key = body["idempotencyKey"]
    assert emu.state.count_by_idempotency_key("evaluate") == {key: 1}
    assert emu.state.count_by_idempotency_key("evaluate_replay") == {key: 1}


def test_a_known_order_id_under_a_new_key_returns_the_existing_order(emu: Emulator) -> None:
    session = session_for(emu)
    body = evaluate_body()
    first = session.post(emu.base_url + "evaluate", json=body).json()
    again = session.post(emu.base_url + "evaluate", json={**body, "idempotencyKey": "k2"}).json()
    assert again["orderSessionKey"] == first["orderSessionKey"]
    assert again["status"] == "SUBMITTED"
    assert len(emu.state.orders) == 1
    assert emu.state.count_by_idempotency_key("evaluate_order_id") == {body["orderId"]: 2}


def test_scenario_rules(emu: Emulator) -> None:
    session = session_for(emu)

    def status(**kwargs: Any) -> str:
        return session.post(emu.base_url + "evaluate", json=evaluate_body(**kwargs)).json()[
            "status"
        ]

    assert status(managed=False) == "APPROVED"
    assert status(managed=False, card=NOT_RESCUED_CARD, amount=1000) == "DECLINED"
    assert status(managed=False, card="4111111111111111", amount=1013) == "DECLINED"
    assert status(managed=False, card="4111111111111111", amount=1066) == "DECLINED"
    assert status(card="4111111111111111", amount=1066) == "DECLINED"  # not eligible
    assert status(card=RESCUE_CARD, amount=1013) == "SUBMITTED"  # card wins over amount
    fates = {o.fate for o in emu.state.orders.values()}
    assert fates == {"rescued", "expired", "not_eligible"}
    approved = [o for o in emu.state.orders.values() if o.outcome == "APPROVED"]
    assert len(approved) == 1
    assert approved[0].status == 7


def test_expiry_is_cancelled_status_with_expired_flag_and_order_expired() -> None:
    with make_emulator(expire_delay=0.2) as emu:
        session = session_for(emu)
        body = evaluate_body(card="4111111111111111", amount=1013)
        key = session.post(emu.base_url + "evaluate", json=body).json()["orderSessionKey"]
        deadline = time.monotonic() + 3
        while emu.state.orders[key].pending and time.monotonic() < deadline:
            time.sleep(0.02)
        order = session.get(emu.base_url + f"orders/{key}").json()
        assert (order["status"], order["statusName"], order["expired"]) == (2, "CANCELLED", True)
        assert order["outcome"] == "EXPIRED"
        outcome = session.post(emu.base_url + "outcome", json={"orderSessionKey": key}).json()
        assert outcome["status"] == "EXPIRED"
        assert outcome["confirmationId"] == order["referenceNumber"]
        assert [e["Event"] for e in emu.state.events] == ["order.expired"]
        missing = session.post(emu.base_url + "outcome", json={"orderSessionKey": "nope"}).json()
        assert missing["status"] == "NOTFOUND"
        assert session.get(emu.base_url + "orders/nope").status_code == 404


def test_refund_is_capped_with_failed_2001_and_a_full_refund_emits_order_refunded(
    emu: Emulator,
) -> None:
    session = session_for(emu)
    key = submit(emu, session)
    refund_url = emu.base_url + f"orders/{key}/refund"
    pending = session.post(refund_url, json={"amountToRefund": 1.00}).json()
    assert pending == {
        "responseCode": "2001",
        "responseMessage": "Amount to refund (1.00) is greater than maximum refund amount in (0.00))",
        "transactionId": None,
        "success": False,
        "result": None,
        "status": "FAILED",
        "statusCode": None,
        "errors": [
            {
                "item1": "Amount to refund (1.00) is greater than maximum refund amount in (0.00))",
                "item2": "2001",
                "item3": "2001",
                "item4": True,
            }
        ],
        "customProperties": {},
    }
    emu.approve(key)
    too_much = session.post(refund_url, json={"amountToRefund": 25})
    assert too_much.status_code == 200
    assert too_much.json()["status"] == "FAILED"
    assert "maximum refund amount in (19.99))" in too_much.json()["responseMessage"]
    part = session.post(refund_url, json={"amountToRefund": "10.00"}).json()
    assert part["status"] == "SUCCESS"
    assert part["success"] is True
    assert session.get(emu.base_url + f"orders/{key}").json()["status"] == 7
    rest = session.post(refund_url, json={"amountToRefund": 9.99}).json()
    assert rest["status"] == "SUCCESS"
    order = session.get(emu.base_url + f"orders/{key}").json()
    assert (order["status"], order["refundedAmount"]) == (6, 1999)
    assert session.post(refund_url, json={"amountToRefund": 0.01}).json()["responseCode"] == "2001"
    assert session.post(refund_url, json={}).status_code == 400
    events = [e for e in emu.state.events if e["Event"] == "order.refunded"]
    assert len(events) == 1
    assert events[0]["EventData"]["TotalRefundedAmount"] == 19.99


def test_cancel_is_idempotent_and_only_for_pending_orders(emu: Emulator) -> None:
    session = session_for(emu)
    body = evaluate_body()
    key = session.post(emu.base_url + "evaluate", json=body).json()["orderSessionKey"]
    cancel = emu.base_url + f"orders/{key}/cancel"
    first = session.post(cancel, json={"idempotencyKey": "c1"})
    assert (first.status_code, first.json()) == (200, {})
    assert session.post(cancel, json={"idempotencyKey": "c1"}).json() == {}
    assert session.post(cancel).json() == {}
    external = session.post(emu.base_url + f"orders/{body['orderId']}/external-cancel")
    assert (external.status_code, external.json()) == (200, {})
    other = submit(emu, session)
    reused = session.post(emu.base_url + f"orders/{other}/cancel", json={"idempotencyKey": "c1"})
    assert reused.status_code == 409
    order = session.get(emu.base_url + f"orders/{key}").json()
    assert (order["status"], order["outcome"]) == (2, "CANCELLED")
    assert [e["Event"] for e in emu.state.events] == ["order.cancelled"]
    emu.approve(other)
    refused = session.post(emu.base_url + f"orders/{other}/cancel")
    assert refused.status_code == 400
    assert refused.json()["success"] is False
    assert session.post(emu.base_url + "orders/unknown/external-cancel").status_code == 404


def test_transmit_is_recorded_and_counted(emu: Emulator) -> None:
    session = session_for(emu)
    body = evaluate_body()
    del body["idempotencyKey"]
    response = session.post(emu.base_url + "transmit", json=body)
    assert response.status_code == 200
    assert response.json()["transmitId"]
    session.post(emu.base_url + "transmit", json=body)
    assert emu.state.count_by_idempotency_key("transmit") == {f"{body['orderId']}:ch_1": 2}
    bad = session.post(emu.base_url + "transmit", json={"orderId": "x"})
    assert bad.status_code == 400
    assert "PaymentMethod" in bad.json()
    assert len(emu.state.transmits) == 2


def test_injected_faults_change_nothing(emu: Emulator) -> None:
    session = session_for(emu)
    body = evaluate_body()
    emu.set_faults(error_rate=1.0, error_codes=(503,), retry_after=2)
    failed = session.post(emu.base_url + "evaluate", json=body)
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "2"
    assert EmulatorControl.of(emu).get("state").status_code == 200  # control unaffected
    emu.set_faults(error_rate=1.0, error_codes=(429,))
    assert session.post(emu.base_url + "evaluate", json=body).headers["Retry-After"] == "1"
    emu.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        session.post(emu.base_url + "evaluate", json=body)
    emu.set_faults(hang=5.0, paths=["evaluate"])
    assert session.get(emu.base_url + "orders").status_code == 200  # other paths unaffected
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.post(emu.base_url + "evaluate", json=body, timeout=0.3)
    assert time.monotonic() - started < 2
    assert emu.state.orders == {}
    assert emu.state.evaluate_requests == []
    assert emu.state.count_by_idempotency_key("evaluate") == {}
    emu.set_faults(error_rate=1.0, times=1)
    assert session.post(emu.base_url + "evaluate", json=body).status_code >= 500
    assert session.post(emu.base_url + "evaluate", json=body).status_code == 200
    assert emu.state.count_by_idempotency_key("evaluate") == {body["idempotencyKey"]: 1}


def test_latency_and_dropped_responses_still_process() -> None:
    with make_emulator() as emu:
        session = session_for(emu)
        emu.set_faults(latency=0.2, paths="orders")
        started = time.monotonic()
        assert session.get(emu.base_url + "orders").status_code == 200
        assert time.monotonic() - started >= 0.2
        emu.set_faults(drop_response_rate=1.0, paths=["/v1/evaluate"])
        body = evaluate_body()
        with pytest.raises(requests.ConnectionError):
            session.post(emu.base_url + "evaluate", json=body)
        emu.reset_faults()
        replay = session.post(emu.base_url + "evaluate", json=body)
        assert replay.json()["orderSessionKey"] in emu.state.orders
        assert emu.state.count_by_idempotency_key("evaluate_replay") == {body["idempotencyKey"]: 1}


def test_control_endpoints_over_http(emu: Emulator) -> None:
    session = session_for(emu)
    control = EmulatorControl.of(emu)
    body = evaluate_body()
    key = session.post(emu.base_url + "evaluate", json=body).json()["orderSessionKey"]
    assert control.post(f"orders/{key}/approve").json()["status"] == 7
    assert control.post(f"orders/{key}/expire").status_code == 409
    assert control.post("orders/nope/approve").status_code == 404
    event = control.post(f"orders/{key}/webhooks", json={"event": "payment.chargeback.received"})
    assert event.status_code == 200
    faults = control.post("faults", json={"error_rate": 1, "paths": ["transmit"]})
    assert faults.json()["error_rate"] == 1.0
    assert control.post("faults", json={"bogus": 1}).status_code == 400
    state = control.get("state").json()
    assert state["counts"]["orders"] == 1
    assert state["token_requests"] == 1
    assert state["orders"][0]["statusName"] == "COMPLETED"
    assert state["idempotency"]["evaluate"] == {body["idempotencyKey"]: 1}
    assert [e for e in state["faults"]["paths"]] == ["transmit"]
    assert control.delete("faults").json()["error_rate"] == 0.0
    assert control.post("webhooks/flush?timeout=1").json() == {"flushed": True}
    assert control.post("reset").json() == {"reset": True}
    assert emu.state.orders == {}
    assert emu.state.events == []
    assert session.get(emu.base_url + "orders").status_code == 200  # tokens survive a reset


def test_orders_list_is_paged(emu: Emulator) -> None:
    session = session_for(emu)
    for _ in range(3):
        session.post(emu.base_url + "evaluate", json=evaluate_body(managed=False))
    page = session.get(emu.base_url + "orders", params={"pageSize": 2, "pageNumber": 2}).json()
    assert len(page["results"]) == 1
    assert (page["totalItemCount"], page["pageCount"], page["firstItemOnPage"]) == (3, 2, 3)
    assert page["isLastPage"]
    assert page["hasPreviousPage"]
    assert not page["hasNextPage"]
    empty = session.get(emu.base_url + "orders", params={"status": 4}).json()
    assert empty["totalItemCount"] == 0


@pytest.mark.parametrize("order_id", ["INV/2026 #7", "50% off?", "a b/c"])
def test_ids_with_reserved_characters_reach_their_order_through_the_client(
    emu: Emulator, order_id: str
) -> None:
    client = client_for(emu)
    body = evaluate_body()
    body["orderId"] = order_id
    answer = client.evaluate(body)
    key = answer["orderSessionKey"]
    assert answer["status"] == "SUBMITTED"
    assert emu.state.orders[key].external_order_id == order_id
    assert client.external_cancel(order_id) == {}
    order = client.get_order(key)
    assert (order["status"], order["outcome"], order["externalOrderId"]) == (
        2,
        "CANCELLED",
        order_id,
    )
    assert [e["Event"] for e in emu.state.events] == ["order.cancelled"]


def test_percent_encoded_path_segments_are_decoded_before_routing(emu: Emulator) -> None:
    token = session_for(emu).headers["Authorization"].split()[1]
    body = evaluate_body()
    body["orderId"] = "INV/2026 #7"
    key = submit_body(emu, body)
    # Every segment decoded, as ASP.NET does; an encoded "/" stays inside its segment.
    assert raw_request(emu, "GET", f"/v1/%6Frders/{key}", token) == 200
    assert raw_request(emu, "GET", f"/v1/orders/{key}%2Fcancel", token) == 404  # one id
    assert raw_request(emu, "POST", "/v1/orders/INV%2F2026%20%237/external%2Dcancel", token) == 200
    assert emu.state.orders[key].outcome == "CANCELLED"
    assert raw_request(emu, "POST", "/v1/orders/INV%2F2026/external-cancel", token) == 404


def test_unknown_paths_and_methods(emu: Emulator) -> None:
    assert requests.get(emu.base_url + "nothing").status_code == 404
    assert requests.get(emu.base_url + "evaluate").status_code == 405
    bad_json = session_for(emu).post(
        emu.base_url + "evaluate", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert "TraceId" in bad_json.json()


def test_runs_as_a_separate_process() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flexcharge_emulator",
            "--port",
            "0",
            "--rescue-delay",
            "never",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = re.search(r"(http://\S+/v1/)", line).group(1)  # type: ignore[union-attr]
        token = requests.post(
            base_url + "oauth2/token",
            json={"AppKey": CONFIG.app_key, "AppSecret": CONFIG.app_secret},
            timeout=5,
        )
        assert token.status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


def test_stop_is_clean_and_repeatable() -> None:
    before = threading.active_count()
    for _ in range(5):
        emulator = make_emulator()
        session = session_for(emulator)  # leaves an idle keep-alive connection open
        session.get(emulator.base_url + "orders")
        emulator.stop()
        emulator.stop()
    time.sleep(0.1)
    assert threading.active_count() <= before + 1


def test_concurrent_duplicates_create_one_order(emu: Emulator) -> None:
    session_for(emu)  # count the token request once
    body = evaluate_body()
    token = session_for(emu).headers["Authorization"]
    keys: list[str] = []

    def send() -> None:
        response = requests.post(
            emu.base_url + "evaluate", json=body, headers={"Authorization": token}
        )
        keys.append(response.json()["orderSessionKey"])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1
    assert len(emu.state.orders) == 1
    assert emu.state.count_by_idempotency_key("evaluate_replay") == {body["idempotencyKey"]: 7}


def test_management_command_takes_credentials_from_settings(
    settings: Any, emulator_served: list[EmulatorConfig]
) -> None:
    from django.core.management import call_command

    settings.FLEXCHARGE_API_URL = "http://127.0.0.1:8765/v1/"  # the site uses the emulator
    settings.FLEXCHARGE_APP_KEY = "site-app-key"
    site_key, old_key = "c2l0ZS1rZXktMDEyMzQ1Njc4OQ==", "b2xkLWtleS0wMTIzNDU2Nzg5"
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [" ", site_key, old_key]
    seen = emulator_served
    call_command("flexcharge_emulator", "--port", "0", "--rescue-delay", "never")
    config = seen[0]
    assert config.app_key == "site-app-key"
    assert config.mid == settings.FLEXCHARGE_MID
    assert config.tokenization_key == settings.FLEXCHARGE_TOKENIZATION_KEY
    assert config.subscriber_key == site_key  # the first usable one
    assert config.webhook_url == "http://127.0.0.1:8000/flexcharge/webhook/"
    assert (config.port, config.rescue_delay, config.expire_delay) == (0, None, 4.0)
    call_command("flexcharge_emulator", "--webhook-url", "", "--expire-delay", "0.5")
    assert seen[1].webhook_url is None
    assert (seen[1].port, seen[1].expire_delay) == (8765, 0.5)
