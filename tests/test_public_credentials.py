"""The emulator's public credentials never leave this machine (issue: security item 2)."""

from __future__ import annotations

import pytest
import responses

from django_flexcharge import public_credentials
from django_flexcharge.client import FlexChargeClient
from django_flexcharge.exceptions import FlexChargeConfigurationError
from django_flexcharge.public_credentials import is_loopback_host, is_loopback_url
from django_flexcharge.testing import CONTROL_TOKEN_HEADER
from flexcharge_emulator import Emulator, EmulatorConfig
from flexcharge_emulator import config as emulator_config
from flexcharge_emulator.config import (
    DEFAULT_APP_KEY,
    DEFAULT_APP_SECRET,
    DEFAULT_TOKENIZATION_KEY,
)
from flexcharge_emulator.control import TOKEN_HEADER

API = "https://api-sandbox.flex-charge.com/v1/"
CARD_BODY = {"payment_method": {"credit_card": {"number": "4111111111111111"}}}


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"app_key": DEFAULT_APP_KEY}, "FLEXCHARGE_APP_KEY"),
        ({"app_secret": DEFAULT_APP_SECRET}, "FLEXCHARGE_APP_SECRET"),
    ],
)
def test_the_client_never_sends_the_public_app_credentials_to_flexcharge(overrides, setting):
    client = FlexChargeClient(api_url=API, **overrides)
    with responses.RequestsMock() as rsps:  # any request would fail the test: none registered
        with pytest.raises(FlexChargeConfigurationError) as caught:
            client.get_token()
        assert len(rsps.calls) == 0
    assert caught.value.setting == setting
    assert DEFAULT_APP_SECRET not in str(caught.value)


def test_the_client_never_sends_the_public_tokenization_key_to_flexcharge(settings):
    settings.FLEXCHARGE_TOKENIZATION_KEY = DEFAULT_TOKENIZATION_KEY
    with responses.RequestsMock() as rsps:
        with pytest.raises(FlexChargeConfigurationError) as caught:
            FlexChargeClient(api_url=API).tokenize(CARD_BODY)
        assert len(rsps.calls) == 0
    assert caught.value.setting == "FLEXCHARGE_TOKENIZATION_KEY"


def test_the_public_credentials_work_against_the_emulator():
    with Emulator(EmulatorConfig(rescue_delay=None, expire_delay=None)) as emu:
        client = FlexChargeClient(
            api_url=emu.base_url,
            app_key=DEFAULT_APP_KEY,
            app_secret=DEFAULT_APP_SECRET,
            mid=emu.config.mid,
            tokenization_key=DEFAULT_TOKENIZATION_KEY,
        )
        assert client.get_token()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10:8765", True),
        ("localhost", True),
        ("[::1]:8765", True),
        ("::1", True),
        ("api.flex-charge.com", False),
        ("127.0.0.1.nip.io", False),
        ("localhost.evil.example", False),
        ("10.0.0.1", False),
        ("", False),
    ],
)
def test_loopback_means_this_machine_only(host, loopback):
    assert is_loopback_host(host) is loopback
    assert emulator_config.is_loopback_host(host) is loopback  # the emulator's own copy agrees
    if host != "::1":  # a bare IPv6 address is no URL host
        assert is_loopback_url(f"http://{host}/v1/") is loopback


def test_the_apps_copies_of_the_emulators_public_values_equal_the_emulators():
    """The app keeps its own copy (the emulator is not installed in production): no drift."""
    assert public_credentials.public_values() == {
        "FLEXCHARGE_APP_KEY": emulator_config.DEFAULT_APP_KEY,
        "FLEXCHARGE_APP_SECRET": emulator_config.DEFAULT_APP_SECRET,
        "FLEXCHARGE_TOKENIZATION_KEY": emulator_config.DEFAULT_TOKENIZATION_KEY,
        "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS": emulator_config.DEFAULT_SUBSCRIBER_KEY,
    }
    assert public_credentials.LOOPBACK_NAMES == emulator_config.LOOPBACK_NAMES
    assert CONTROL_TOKEN_HEADER == TOKEN_HEADER
