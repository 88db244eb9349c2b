"""FlexChargeClient: every endpoint, both error shapes, the token, timeouts, no card data leaked."""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal

import pytest
import requests
import responses
from django.test import override_settings

from django_flexcharge import client as client_module
from django_flexcharge.client import FlexChargeClient, dumps, get_client, set_client
from django_flexcharge.exceptions import (
    FlexChargeAPIError,
    FlexChargeAuthError,
    FlexChargeConflict,
    FlexChargeConnectionError,
    FlexChargeNotFound,
    FlexChargeRateLimited,
    FlexChargeServerError,
    FlexChargeTimeout,
)
from django_flexcharge.payloads import tokenize_body
from tests.conftest import API, token_body

TOKEN_URL = API + "oauth2/token"


@pytest.fixture
def client() -> FlexChargeClient:
    return FlexChargeClient()


def auth_header(call) -> str | None:
    return call.request.headers.get("Authorization")


# --- endpoints ---


def test_tokenize_sends_mid_and_key_in_the_query_and_the_bearer(mocked, client, card):
    mocked.add(responses.POST, API + "tokenize", json={"transaction": {}})
    client.tokenize(tokenize_body(card))
    call = mocked.calls[-1]
    assert "mid=d9d0b5fd-9433-44d3-8051-63fee28768e8" in call.request.url
    assert "environment=test-tokenization-key" in call.request.url
    # §4 tolerates a bearer and §18.1 lets a server 401 any call without one.
    assert auth_header(call) == "Bearer tok-1"
    assert [c.request.url for c in mocked.calls] == [TOKEN_URL, call.request.url]


def test_a_401_on_tokenize_renews_the_token_and_retries_once_without_leaking_the_card(client, card):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, TOKEN_URL, json=token_body("tok-1"))
        rsps.add(responses.POST, TOKEN_URL, json=token_body("tok-2"))
        rsps.add(responses.POST, API + "tokenize", status=401)
        rsps.add(responses.POST, API + "tokenize", json={"transaction": {"succeeded": True}})
        assert client.tokenize(tokenize_body(card)) == {"transaction": {"succeeded": True}}
        calls = [c for c in rsps.calls if c.request.url.split("?")[0].endswith("tokenize")]
        assert [auth_header(c) for c in calls] == ["Bearer tok-1", "Bearer tok-2"]
    with responses.RequestsMock() as rsps:
        rsps.add(
            responses.POST,
            API + "tokenize",
            status=401,
            json={"message": f"bad card {card.number} cvv {card.cvv}"},
        )
        rsps.add(responses.POST, TOKEN_URL, json=token_body("tok-3"))
        with pytest.raises(FlexChargeAuthError) as exc:
            client.tokenize(tokenize_body(card))
        assert sum(c.request.url.split("?")[0].endswith("tokenize") for c in rsps.calls) == 2
    assert card.number not in repr(exc.value.response) + str(exc.value)


@pytest.mark.parametrize(
    ("method", "args", "verb", "path", "sent"),
    [
        ("transmit", ({"isDeclined": False},), "POST", "transmit", {"isDeclined": False}),
        ("evaluate", ({"isDeclined": True},), "POST", "evaluate", {"isDeclined": True}),
        ("outcome", ("fc-1",), "POST", "outcome", {"orderSessionKey": "fc-1"}),
        ("get_order", ("fc-1",), "GET", "orders/fc-1", None),
        ("cancel", ("fc-1",), "POST", "orders/fc-1/cancel", {}),
        ("external_cancel", ("INV-1",), "POST", "orders/INV-1/external-cancel", {}),
        ("get_order", ("a/b?c#d",), "GET", "orders/a%2Fb%3Fc%23d", None),
        ("cancel", ("a/b c",), "POST", "orders/a%2Fb%20c/cancel", {}),
        (
            "external_cancel",
            ("INV/2026 #7",),
            "POST",
            "orders/INV%2F2026%20%237/external-cancel",
            {},
        ),
    ],
)
def test_each_endpoint_sends_its_body_with_the_bearer_token(
    mocked, client, method, args, verb, path, sent
):
    mocked.add(verb, API + path, json={"success": True, "status": "OK"})
    assert getattr(client, method)(*args) == {"success": True, "status": "OK"}
    call = mocked.calls[-1]
    assert auth_header(call) == "Bearer tok-1"
    assert call.request.headers["Content-Type"] == "application/json"
    assert (json.loads(call.request.body) if call.request.body else None) == sent
    assert call.request.path_url == "/v1/" + path  # ids percent-encoded as one segment


def test_cancel_sends_an_idempotency_key_when_given(mocked, client):
    mocked.add(responses.POST, API + "orders/fc-1/cancel", body="")
    assert client.cancel("fc-1", idempotency_key="k-1") == {}
    assert json.loads(mocked.calls[-1].request.body) == {"idempotencyKey": "k-1"}


def test_list_orders_passes_query_parameters(mocked, client):
    mocked.add(responses.GET, API + "orders", json={"items": [], "hasNextPage": False})
    client.list_orders(pageSize=50, pageNumber=2)
    assert "pageSize=50" in mocked.calls[-1].request.url
    assert "pageNumber=2" in mocked.calls[-1].request.url


@pytest.mark.parametrize(
    ("currency", "amount", "text"),
    [("USD", 1999, "19.99"), ("USD", 1200, "12.00"), ("JPY", 500, "500"), ("KWD", 1234, "1.234")],
)
def test_refund_amounts_go_in_major_units_as_exact_json_numbers(
    mocked, client, currency, amount, text
):
    mocked.add(responses.POST, API + "orders/fc-1/refund", json={"status": "SUCCESS"})
    client.refund("fc-1", amount, currency, message="sorry")
    body = mocked.calls[-1].request.body.decode()
    assert body == '{"amountToRefund":' + text + ',"refundMessage":"sorry"}'
    assert json.loads(body, parse_float=Decimal)["amountToRefund"] == Decimal(text)


def test_refund_percent_encodes_the_id_in_its_path(mocked, client):
    mocked.add(responses.POST, API + "orders/INV%2F2026%20%237/refund", json={"status": "SUCCESS"})
    assert client.refund("INV/2026 #7", 100, "USD") == {"status": "SUCCESS"}
    assert mocked.calls[-1].request.path_url == "/v1/orders/INV%2F2026%20%237/refund"


def test_dumps_writes_decimals_as_numbers_not_strings():
    assert dumps({"a": Decimal("0.10"), "b": [Decimal("3")]}) == b'{"a":0.10,"b":[3]}'


def test_a_json_list_answer_is_wrapped(mocked, client):
    mocked.add(responses.GET, API + "orders", json=[{"id": 1}])
    assert client.list_orders() == {"data": [{"id": 1}]}


def test_a_2xx_answer_that_is_not_json_is_an_error(mocked, client):
    mocked.add(responses.POST, API + "evaluate", body="<html>gateway</html>")
    with pytest.raises(FlexChargeAPIError, match="not JSON"):
        client.evaluate({})


# --- error shapes ---


def test_the_flattened_400_becomes_field_errors_and_a_trace_id(mocked, client):
    mocked.add(
        responses.POST,
        API + "evaluate",
        status=400,
        json={
            "TraceId": ["00-bf5a1c0e-01"],
            "IdempotencyKey": ["The IdempotencyKey field is required."],
            "Transaction.Id": ["The Id field is required."],
        },
    )
    with pytest.raises(FlexChargeAPIError) as exc:
        client.evaluate({})
    err = exc.value
    assert err.status == 400
    assert err.trace_id == "00-bf5a1c0e-01"
    assert err.errors == {
        "IdempotencyKey": ["The IdempotencyKey field is required."],
        "Transaction.Id": ["The Id field is required."],
    }
    assert not err.retryable
    assert "HTTP 400" in str(err)
    assert "Transaction.Id" in str(err)
    assert "00-bf5a1c0e-01" in str(err)


def test_the_older_nested_400_shape_is_read_too(mocked, client):
    mocked.add(
        responses.POST,
        API + "evaluate",
        status=400,
        json={
            "status": "400",
            "errors": {"OrderId": ["Merchant's orderId is required"], "TraceId": ["00-t-01"]},
        },
    )
    with pytest.raises(FlexChargeAPIError) as exc:
        client.evaluate({})
    assert exc.value.errors == {"OrderId": ["Merchant's orderId is required"]}
    assert exc.value.trace_id == "00-t-01"


def test_a_business_failure_envelope_is_an_error_with_its_code(mocked, client):
    mocked.add(
        responses.POST,
        API + "orders/fc-1/refund",
        json={
            "responseCode": "2001",
            "responseMessage": "Amount to refund (1.00) is greater than maximum",
            "success": False,
            "status": "FAILED",
            "errors": [{"item1": "greater than maximum", "item2": "2001", "item3": "2001"}],
        },
    )
    with pytest.raises(FlexChargeAPIError) as exc:
        client.refund("fc-1", 100, "USD")
    assert (exc.value.status, exc.value.code) == (200, "2001")
    assert exc.value.errors == {"2001": ["greater than maximum"]}
    assert str(exc.value).startswith("Amount to refund (1.00)")


def test_a_declined_evaluation_is_an_answer_not_an_error(mocked, client):
    mocked.add(responses.POST, API + "evaluate", json={"success": False, "status": "DECLINED"})
    assert client.evaluate({})["status"] == "DECLINED"


@pytest.mark.parametrize(
    "status", ["SUBMITTED", "APPROVED", "DECLINED", "CHALLENGE", "CAPTUREREQUIRED", "PROCESSING"]
)
def test_an_evaluate_result_status_with_errors_listed_is_still_an_answer(mocked, client, status):
    answer = {
        "success": False,
        "status": status,
        "errors": [{"item1": "not eligible", "item2": "x"}],
    }
    mocked.add(responses.POST, API + "evaluate", json=answer)
    assert client.evaluate({}) == answer


@pytest.mark.parametrize("status", ["EXPIRED", "CANCELLED", "NOTFOUND", "declined", "PROCESSING"])
def test_an_outcome_result_status_with_errors_listed_is_still_an_answer(mocked, client, status):
    answer = {"success": False, "status": status, "errors": [{"item1": "why", "item2": "x"}]}
    mocked.add(responses.POST, API + "outcome", json=answer)
    assert client.outcome("fc-1") == answer


@pytest.mark.parametrize(
    ("method", "args", "path", "status"),
    [
        ("evaluate", ({},), "evaluate", "FAILED"),
        ("evaluate", ({},), "evaluate", ""),
        ("evaluate", ({},), "evaluate", "EXPIRED"),  # an outcome status, not an evaluate one
        ("outcome", ("fc-1",), "outcome", "FAILED"),
        ("refund", ("fc-1", 100, "USD"), "orders/fc-1/refund", "FAILED"),
        ("refund", ("fc-1", 100, "USD"), "orders/fc-1/refund", "DECLINED"),  # per endpoint
        ("cancel", ("fc-1",), "orders/fc-1/cancel", "DECLINED"),
    ],
)
def test_other_failure_envelopes_with_errors_stay_errors(
    mocked, client, method, args, path, status
):
    answer = {"success": False, "status": status, "errors": [{"item1": "no", "item2": "E1"}]}
    mocked.add(responses.POST, API + path, json=answer)
    with pytest.raises(FlexChargeAPIError) as exc:
        getattr(client, method)(*args)
    assert exc.value.errors == {"E1": ["no"]}


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (404, FlexChargeNotFound, False),
        (409, FlexChargeConflict, False),
        (429, FlexChargeRateLimited, True),
        (500, FlexChargeServerError, True),
        (503, FlexChargeServerError, True),
    ],
)
def test_http_statuses_map_to_error_classes(mocked, client, status, kind, retryable):
    mocked.add(responses.GET, API + "orders/x", status=status, json={})
    with pytest.raises(kind) as exc:
        client.get_order("x")
    assert exc.value.retryable is retryable
    assert exc.value.status == status


def test_retry_after_is_read_from_the_header(mocked, client):
    mocked.add(responses.POST, API + "evaluate", status=429, json={}, headers={"Retry-After": "12"})
    with pytest.raises(FlexChargeRateLimited) as exc:
        client.evaluate({})
    assert exc.value.retry_after == 12


def test_a_timeout_is_flexcharge_timeout(mocked, client):
    mocked.add(responses.POST, API + "evaluate", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(FlexChargeTimeout) as exc:
        client.evaluate({})
    assert exc.value.retryable
    assert "ReadTimeout" in str(exc.value)
    # Not chained: requests' frames hold the body and the bearer token.
    assert exc.value.__cause__ is None
    assert exc.value.__suppress_context__


def test_a_refused_connection_is_flexcharge_connection_error(mocked, client):
    mocked.add(responses.POST, API + "evaluate", body=requests.exceptions.ConnectionError("no"))
    with pytest.raises(FlexChargeConnectionError):
        client.evaluate({})


@override_settings(FLEXCHARGE_TIMEOUT=(1.5, 7))
def test_the_timeout_setting_is_passed_to_requests(mocked, client, monkeypatch):
    seen = []
    original = client.session.request

    def spy(*args, **kwargs):
        seen.append(kwargs["timeout"])
        return original(*args, **kwargs)

    monkeypatch.setattr(client.session, "request", spy)
    mocked.add(responses.POST, API + "evaluate", json={})
    client.evaluate({})
    assert seen[-1] == (1.5, 7.0)


def test_proxies_and_ca_bundle_come_from_the_environment_read_once_per_host(
    mocked, client, monkeypatch, tmp_path
):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    seen = []
    original = client.session.request

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(client.session, "request", spy)
    reads = []
    merge = requests.Session.merge_environment_settings

    def counted(self, *args):
        if self.trust_env:  # requests consults the environment
            reads.append(args[0])
        return merge(self, *args)

    monkeypatch.setattr(requests.Session, "merge_environment_settings", counted)
    mocked.add(responses.POST, API + "evaluate", json={})
    client.evaluate({})
    client.evaluate({})
    scheme = API.split(":")[0]
    assert seen[-1]["proxies"][scheme] == "http://proxy.invalid:3128"
    assert seen[-1]["verify"] == str(bundle)
    # The token's call and two /evaluate calls, to one host: read once, not per call.
    assert len([url for url in reads if url.startswith(API)]) == 1


def test_a_netrc_entry_for_the_api_host_never_replaces_the_bearer_token(
    mocked, client, monkeypatch, tmp_path
):
    host = API.split("/")[2].split(":")[0]
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {host} login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    mocked.add(responses.POST, API + "evaluate", json={})
    client.evaluate({})
    assert auth_header(mocked.calls[-1]).startswith("Bearer ")


def test_a_session_the_caller_gives_keeps_its_own_environment_handling():
    session = requests.Session()
    FlexChargeClient(session=session)
    assert session.trust_env is True


# --- the token ---


def test_bad_credentials_are_an_auth_error(client):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, TOKEN_URL, status=400, json={})
        with pytest.raises(FlexChargeAuthError):
            client.evaluate({})
        assert json.loads(rsps.calls[0].request.body) == {
            "AppKey": "test-app-key",
            "AppSecret": "test-app-secret",
        }


def test_a_401_renews_the_token_and_retries_once(client):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, TOKEN_URL, json=token_body("tok-1"))
        rsps.add(responses.POST, TOKEN_URL, json=token_body("tok-2"))
        rsps.add(responses.POST, API + "evaluate", status=401)
        rsps.add(responses.POST, API + "evaluate", json={"status": "SUBMITTED"})
        assert client.evaluate({})["status"] == "SUBMITTED"
        evaluates = [c for c in rsps.calls if c.request.url.endswith("evaluate")]
        assert [auth_header(c) for c in evaluates] == ["Bearer tok-1", "Bearer tok-2"]
        assert sum(c.request.url == TOKEN_URL for c in rsps.calls) == 2


def test_a_second_401_is_an_auth_error_not_a_loop(client):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, TOKEN_URL, json=token_body())
        rsps.add(responses.POST, API + "evaluate", status=401)
        with pytest.raises(FlexChargeAuthError):
            client.evaluate({})
        assert sum(c.request.url.endswith("evaluate") for c in rsps.calls) == 2


def test_the_token_is_reused_until_a_minute_before_it_expires(mocked, client, monkeypatch):
    mocked.add(responses.POST, API + "evaluate", json={})
    start = time.time()
    clock = {"now": start}
    monkeypatch.setattr(client_module.time, "time", lambda: clock["now"])
    client.evaluate({})
    clock["now"] = start + 600 - 65
    client.evaluate({})
    assert sum(c.request.url == TOKEN_URL for c in mocked.calls) == 1
    clock["now"] = start + 600 - 55
    client.evaluate({})
    assert sum(c.request.url == TOKEN_URL for c in mocked.calls) == 2


def test_eight_threads_needing_a_token_make_one_token_request(client):
    def slow_token(request):
        time.sleep(0.1)
        return 200, {}, json.dumps(token_body())

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, TOKEN_URL, callback=slow_token)
        rsps.add(responses.POST, API + "evaluate", json={})
        start = threading.Barrier(8)
        errors: list[BaseException] = []

        def call() -> None:
            start.wait()
            try:
                client.evaluate({})
            except BaseException as err:
                errors.append(err)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sum(c.request.url == TOKEN_URL for c in rsps.calls) == 1
        assert sum(c.request.url.endswith("evaluate") for c in rsps.calls) == 8


def test_the_shared_cache_is_read_once_per_token_not_once_per_call(mocked, client, monkeypatch):
    from django.core.cache import cache

    mocked.add(responses.POST, API + "evaluate", json={})
    reads: list[str] = []
    real_get = cache.get
    monkeypatch.setattr(
        cache, "get", lambda key, *a, **k: reads.append(key) or real_get(key, *a, **k)
    )
    for _ in range(5):
        client.evaluate({})
    token_reads = [key for key in reads if key == client._token_cache_key]
    assert len(token_reads) == 2  # before the token request and once under its lock
    assert sum(c.request.url == TOKEN_URL for c in mocked.calls) == 1


def test_a_token_another_process_renewed_is_picked_up_after_a_401(mocked, client):
    from django.core.cache import cache

    mocked.add(responses.POST, API + "evaluate", status=401)
    mocked.add(responses.POST, API + "evaluate", json={"status": "SUBMITTED"})
    client.get_token()  # tok-1 from the token endpoint, kept in memory too
    # Another process got a 401 for tok-1 and stored a new token in the shared cache.
    cache.set(client._token_cache_key, {"token": "tok-other", "expires": time.time() + 600})
    assert client.evaluate({})["status"] == "SUBMITTED"
    evaluates = [c for c in mocked.calls if c.request.url.endswith("evaluate")]
    assert auth_header(evaluates[-1]) == "Bearer tok-other"
    assert sum(c.request.url == TOKEN_URL for c in mocked.calls) == 1


def test_get_client_is_one_shared_client_and_set_client_replaces_it():
    first = get_client()
    assert get_client() is first
    other = FlexChargeClient()
    set_client(other)
    assert get_client() is other


# --- card data stays out of logs and errors ---


def test_no_pan_cvv_or_tokenization_key_in_logs_or_errors(client, card, caplog):
    caplog.set_level(logging.DEBUG)
    failures = [
        {"status": 400, "json": {"TraceId": ["00-x-01"], "Number": ["The Number is invalid."]}},
        {"status": 500, "body": "Internal error"},
        {
            "body": requests.exceptions.ConnectionError(
                f"{API}tokenize?environment=test-tokenization-key"
            )
        },
        {"body": requests.exceptions.ReadTimeout("read timed out")},
    ]
    messages = []
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, TOKEN_URL, json=token_body())
        for failure in failures:
            rsps.add(responses.POST, API + "tokenize", **failure)
        for _ in failures:
            with pytest.raises(FlexChargeAPIError) as exc:
                client.tokenize(tokenize_body(card))
            messages.append(str(exc.value))
            messages.append(repr(exc.value.response))
    text = caplog.text + "\n".join(messages)
    assert "tokenize" in caplog.text  # it did log
    for secret in (card.number, "999", "test-tokenization-key"):
        assert secret not in text
    assert card.number not in repr(card)
