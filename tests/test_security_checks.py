"""System checks of the security settings: every message names the setting, never a secret."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_flexcharge import security_checks
from flexcharge_emulator.config import (
    DEFAULT_APP_KEY,
    DEFAULT_APP_SECRET,
    DEFAULT_SUBSCRIBER_KEY,
    DEFAULT_TOKENIZATION_KEY,
)
from tests.signing_vectors import OFFICIAL, OTHER_KEY

VALID = OFFICIAL["key"]
SETTING = "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS"
EVERY_CHECK = (
    security_checks.check_public_credentials,
    security_checks.check_webhook_host,
    security_checks.check_webhook_tolerance,
    security_checks.check_emulator_in_production,
)


def key_messages(value):
    with override_settings(FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS=value):
        return security_checks.webhook_key_messages()


def all_messages(**overrides):
    # The test settings allow '*' (Django's test client): a deploy check finds that.
    overrides.setdefault("ALLOWED_HOSTS", ["testserver"])
    with override_settings(**overrides):
        return [m for check in EVERY_CHECK for m in check()]


def test_the_test_settings_raise_no_security_message():
    assert all_messages() == []
    assert key_messages([VALID, OTHER_KEY]) == []


@pytest.mark.parametrize(
    ("value", "check_id", "says"),
    [
        ([VALID, " "], "E013", f"{SETTING}[1] is blank"),
        ([VALID, ""], "E013", f"{SETTING}[1] is blank"),
        (["c2hvcnQ=", VALID], "E013", f"{SETTING}[0] decodes to 5 bytes (at least 16 needed)"),
        ([VALID, "not base64!"], "E004", f"{SETTING}[1] is not valid base64"),
        ([VALID, 42], "E014", f"{SETTING}[1] is a int, not a str"),
        (None, "E014", f"{SETTING} is None; expected a list of base64 subscriber keys"),
        (VALID, "E014", f"{SETTING} is a str; expected a list"),
        (f"{VALID}, {OTHER_KEY}", "E014", f"{SETTING} is a comma-separated str; expected a list"),
        (42, "E014", f"{SETTING} is a int; expected a list"),
        ({"a": VALID}, "E014", f"{SETTING} is a dict; expected a list"),
        ([], "W003", f"{SETTING} is empty"),
    ],
)
def test_each_wrong_subscriber_key_setting_is_named_with_its_form_and_position(
    value, check_id, says
):
    messages = key_messages(value)
    assert f"django_flexcharge.{check_id}" in [m.id for m in messages]
    text = " ".join(f"{m.msg} {m.hint}" for m in messages)
    assert says in text
    for secret in (VALID, OTHER_KEY, "c2hvcnQ="):
        assert secret not in text


def test_a_trailing_comma_reports_the_string_and_the_blank_entry():
    ids = sorted(m.id for m in key_messages(f"{VALID}, "))
    assert ids == ["django_flexcharge.E013", "django_flexcharge.E014"]
    assert "env.list" in " ".join(m.hint for m in key_messages(f"{VALID}, "))


def test_a_none_keys_setting_is_a_check_error_not_a_crash_of_every_command():
    with (
        override_settings(FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS=None),
        pytest.raises(SystemCheckError) as caught,
    ):
        call_command("check")
    assert "django_flexcharge.E014" in str(caught.value)
    assert "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS is None" in str(caught.value)


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("FLEXCHARGE_APP_KEY", DEFAULT_APP_KEY, "FLEXCHARGE_APP_KEY"),
        ("FLEXCHARGE_APP_SECRET", DEFAULT_APP_SECRET, "FLEXCHARGE_APP_SECRET"),
        ("FLEXCHARGE_TOKENIZATION_KEY", DEFAULT_TOKENIZATION_KEY, "FLEXCHARGE_TOKENIZATION_KEY"),
        (SETTING, [VALID, DEFAULT_SUBSCRIBER_KEY], f"{SETTING}[1]"),
    ],
)
def test_the_emulators_public_credentials_on_a_real_site_are_an_error_in_every_mode(
    setting, value, named
):
    messages = all_messages(**{setting: value})
    assert [m.id for m in messages] == ["django_flexcharge.E015"]
    assert messages[0].msg.startswith(f"{named} is the FlexCharge emulator's public value")
    assert DEFAULT_APP_SECRET not in messages[0].msg
    assert DEFAULT_SUBSCRIBER_KEY not in messages[0].msg
    # Not only under --deploy: a plain `manage.py check` fails.
    with override_settings(**{setting: value}), pytest.raises(SystemCheckError):
        call_command("check")


def test_the_emulators_credentials_are_fine_against_the_emulator():
    overrides = {
        "FLEXCHARGE_API_URL": "http://localhost:8765/v1/",
        "FLEXCHARGE_APP_KEY": DEFAULT_APP_KEY,
        "FLEXCHARGE_APP_SECRET": DEFAULT_APP_SECRET,
        "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS": [DEFAULT_SUBSCRIBER_KEY],
        "DEBUG": True,
    }
    assert all_messages(**overrides) == []


def test_a_wildcard_allowed_host_without_a_webhook_host_fails_the_deploy_check():
    messages = all_messages(ALLOWED_HOSTS=["*"], FLEXCHARGE_WEBHOOK_HOST="")
    assert [m.id for m in messages] == ["django_flexcharge.E016"]
    assert "FLEXCHARGE_WEBHOOK_HOST" in messages[0].hint
    assert all_messages(ALLOWED_HOSTS=["*"], FLEXCHARGE_WEBHOOK_HOST="billing.example.com") == []
    assert all_messages(ALLOWED_HOSTS=["billing.example.com"]) == []
    with override_settings(ALLOWED_HOSTS=["*"]), pytest.raises(SystemCheckError) as caught:
        call_command("check", "--deploy", "--tag", "security")
    assert "django_flexcharge.E016" in str(caught.value)
    call_command("check")  # only a deploy check: tests and development keep '*'


@pytest.mark.parametrize(
    ("value", "check_id"),
    [(-1, "E017"), ("five", "E017"), (True, "E017"), (0, "W017"), (None, "W017")],
)
def test_a_negative_or_mistyped_tolerance_is_an_error_and_off_is_a_warning(value, check_id):
    messages = all_messages(FLEXCHARGE_WEBHOOK_TOLERANCE=value)
    assert [m.id for m in messages] == [f"django_flexcharge.{check_id}"]
    assert "FLEXCHARGE_WEBHOOK_TOLERANCE" in messages[0].msg
    assert messages[0].hint


def test_the_emulator_api_url_with_debug_off_is_a_warning():
    messages = all_messages(FLEXCHARGE_API_URL="http://127.0.0.1:8765/v1/", DEBUG=False)
    assert [m.id for m in messages] == ["django_flexcharge.W018"]
    assert "https://api.flex-charge.com/v1/" in messages[0].hint
    assert all_messages(FLEXCHARGE_API_URL="http://127.0.0.1:8765/v1/", DEBUG=True) == []
