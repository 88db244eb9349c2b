"""Errors that point at the fix: FlexCharge's answers mapped to the setting behind them,
the base URL tried (never a key), and log lines without empty fields."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
import requests
import responses
from django.conf import settings as django_settings
from django.test import override_settings

from django_flexcharge.client import FlexChargeClient
from django_flexcharge.error_hints import base_url, log_fields
from django_flexcharge.exceptions import (
    FlexChargeAPIError,
    FlexChargeAuthError,
    FlexChargeConnectionError,
    FlexChargeNotFound,
    FlexChargeTimeout,
)
from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.payloads import tokenize_body
from django_flexcharge.services import evaluate_declined_payment
from flexcharge_emulator import Emulator
from tests.conftest import API, make_payment
from tests.factories import make_vaulted, site_emulator_config


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    config = site_emulator_config(
        webhook_url=None,
    )
    with Emulator(config) as emu, override_settings(FLEXCHARGE_API_URL=emu.base_url):
        yield emu


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_wrong_tokenization_key_names_the_setting_not_the_key(emulator, card):
    wrong_key = "wrong-tokenization-key-4711"
    with (
        override_settings(FLEXCHARGE_TOKENIZATION_KEY=wrong_key),
        pytest.raises(FlexChargeAPIError) as exc,
    ):
        FlexChargeClient().tokenize(tokenize_body(card, email="a@example.com"))
    text = str(exc.value)
    assert "The Environment is invalid." in text  # FlexCharge's own words stay
    assert "FLEXCHARGE_TOKENIZATION_KEY" in text
    assert emulator.base_url in text
    assert wrong_key not in text
    assert card.number not in text


def test_refused_app_key_names_both_credential_settings(emulator):
    with (
        override_settings(FLEXCHARGE_APP_SECRET="not-the-secret-xyz"),
        pytest.raises(FlexChargeAuthError) as exc,
    ):
        FlexChargeClient().get_token()
    text = str(exc.value)
    assert "FLEXCHARGE_APP_KEY / FLEXCHARGE_APP_SECRET" in text
    assert "not-the-secret-xyz" not in text


def test_a_wrong_mid_on_tokenize_names_flexcharge_mid(emulator, card):
    with (
        override_settings(FLEXCHARGE_MID="00000000-0000-0000-0000-000000000000"),
        pytest.raises(FlexChargeAPIError, match="refused FLEXCHARGE_MID"),
    ):
        FlexChargeClient().tokenize(tokenize_body(card, email="a@example.com"))


def test_a_404_on_an_endpoint_shows_the_base_url_and_names_the_api_url_setting(mocked):
    mocked.add(responses.POST, API + "transmit", status=404)
    with pytest.raises(FlexChargeNotFound) as exc:
        FlexChargeClient().transmit({})
    assert f"{API} has no /transmit: check FLEXCHARGE_API_URL" in str(exc.value)


def test_a_404_for_an_order_says_flexcharge_does_not_know_it(mocked):
    mocked.add(responses.GET, API + "orders/fc-1", status=404, json={})
    with pytest.raises(FlexChargeNotFound, match=f"FlexCharge at {API} does not know this order"):
        FlexChargeClient().get_order("fc-1")


def test_nothing_listening_on_loopback_suggests_starting_the_emulator():
    url = f"http://127.0.0.1:{free_port()}/v1/"
    with override_settings(FLEXCHARGE_API_URL=url), pytest.raises(FlexChargeConnectionError) as exc:
        FlexChargeClient().get_token()
    assert f"nothing answered at FLEXCHARGE_API_URL {url}" in str(exc.value)
    assert "flexcharge_emulator" in str(exc.value)


def test_a_timeout_shows_the_url_tried_without_the_query_string(mocked):
    mocked.add(responses.POST, API + "tokenize", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(FlexChargeTimeout) as exc:
        FlexChargeClient().tokenize({})
    assert f"{API}tokenize timed out (ReadTimeout, FLEXCHARGE_TIMEOUT)" in str(exc.value)
    assert django_settings.FLEXCHARGE_TOKENIZATION_KEY not in str(exc.value)


def test_the_base_url_shown_never_holds_user_info_or_a_query():
    assert base_url("https://user:pw@api.example.com/v1/?k=s#x") == "https://api.example.com/v1/"


def test_error_log_lines_drop_empty_fields(mocked, caplog):
    mocked.add(responses.POST, API + "transmit", status=500, body="")
    with caplog.at_level(logging.WARNING, "django_flexcharge.client"), pytest.raises(Exception):
        FlexChargeClient().transmit({})
    (line,) = [r.getMessage() for r in caplog.records if "error 500" in r.getMessage()]
    assert line == "FlexCharge POST /transmit error 500"
    assert log_fields(code="2001", trace="", x=None) == " code=2001"


@pytest.mark.django_db
def test_a_workers_last_error_names_the_setting_to_fix(
    emulator, payer, billing, subscription, django_capture_on_commit_callbacks
):
    with (
        override_settings(FLEXCHARGE_APP_KEY="a-key-the-emulator-does-not-know"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        order = evaluate_declined_payment(
            make_payment(), card=make_vaulted(), payer=payer, billing=billing,
            subscription=subscription,
        )  # fmt: skip
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.QUEUED
    assert "FLEXCHARGE_APP_KEY / FLEXCHARGE_APP_SECRET" in order.last_error
    assert "a-key-the-emulator-does-not-know" not in order.last_error
