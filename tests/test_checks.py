"""System checks: every id in checks.py, each with a hint, and once through ``manage.py check``."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_flexcharge import checks

VALID_KEY = (
    "XRmKBxG5uvt1qWzqvp+T6CAbTo0MB89GTxXZD5cHA56RP7Mj4NbnHQOR1Y8uorUU9YQz8ujaVRUdm9vTSkPZSw=="
)
ALL_CHECKS = (
    checks.check_credentials,
    checks.check_credentials_deploy,
    checks.check_setting_types,
    checks.check_webhook_routed,
    checks.check_webhook_keys,
    checks.check_expiry_and_window,
    checks.check_urls,
    checks.check_task_backend,
    checks.check_installed_apps,
    checks.check_refund_vocabularies,
)


def ids() -> list[str]:
    return [message.id for check in ALL_CHECKS for message in check()]


def test_the_test_settings_pass_every_check_but_the_immediate_backend_warning():
    assert ids() == ["django_flexcharge.W011"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"FLEXCHARGE_APP_KEY": ""}, "W001"),
        ({"FLEXCHARGE_SITE_ID": None}, "W001"),
        ({"FLEXCHARGE_MID": "12345"}, "E021"),
        ({"FLEXCHARGE_MAX_ATTEMPTS": "lots"}, "E020"),
        ({"FLEXCHARGE_TOKENIZATION_KEY": ""}, "W002"),
        ({"FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS": []}, "W003"),
        ({"FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS": [VALID_KEY, "not base64!"]}, "E004"),
        ({"FLEXCHARGE_MIT_EXPIRY_DAYS": 7}, "E005"),
        ({"FLEXCHARGE_MIT_EXPIRY_DAYS": "three weeks"}, "E020"),
        ({"FLEXCHARGE_DECLINE_MAX_AGE": 48}, "E006"),
        ({"FLEXCHARGE_DECLINE_MAX_AGE": 0}, "E006"),
        ({"FLEXCHARGE_TIMEOUT": (0, 30)}, "E007"),
        ({"FLEXCHARGE_TIMEOUT": "fast"}, "E020"),
        ({"FLEXCHARGE_API_URL": "http://api.example.com/v1/"}, "E008"),
        ({"FLEXCHARGE_SENSEJS_URL": "widget.js"}, "E008"),
        (
            {"FLEXCHARGE_API_URL": "https://api.flex-charge.com/v1/", "FLEXCHARGE_TEST_MODE": True},
            "E009",
        ),
        ({"FLEXCHARGE_TASK_BACKEND": "nope"}, "E010"),
        ({"DEBUG": False}, "W011"),
    ],
)
def test_each_misconfiguration_is_reported_by_id_with_a_hint(overrides, expected):
    with override_settings(**overrides):
        messages = [m for check in ALL_CHECKS for m in check() if m.id.endswith(expected)]
    assert len(messages) == 1
    assert messages[0].id == f"django_flexcharge.{expected}"
    assert messages[0].hint


def test_plain_http_is_allowed_on_loopback_for_the_emulator():
    with override_settings(FLEXCHARGE_API_URL="http://127.0.0.1:8765/v1/"):
        assert "django_flexcharge.E008" not in ids()


def test_production_without_an_explicit_test_mode_is_fine():
    with override_settings(FLEXCHARGE_API_URL="https://api.flex-charge.com/v1/"):
        assert "django_flexcharge.E009" not in ids()


def test_the_immediate_backend_is_fine_in_debug():
    with override_settings(DEBUG=True):
        assert "django_flexcharge.W011" not in ids()


def test_a_missing_rest_framework_is_reported(monkeypatch):
    monkeypatch.setattr(checks.apps, "is_installed", lambda name: name != "rest_framework")
    (message,) = checks.check_installed_apps()
    assert message.id == "django_flexcharge.E012"
    assert message.hint


def test_manage_py_check_reports_the_ids():
    call_command("check")  # the test settings are clean (W011 is silenced there)
    with (
        override_settings(FLEXCHARGE_APP_KEY="", FLEXCHARGE_MIT_EXPIRY_DAYS=7),
        pytest.raises(SystemCheckError) as exc,
    ):
        call_command("check")
    assert "django_flexcharge.W001" in str(exc.value)
    assert "django_flexcharge.E005" in str(exc.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"FLEXCHARGE_REFUND_APPROVED_WORDS": "SUCCESS"}, "E050"),
        ({"FLEXCHARGE_REFUND_APPROVED_CODES": [0]}, "E050"),
        ({"FLEXCHARGE_ORDER_REFUNDED_FIELDS": "refundedAmount"}, "E050"),
        ({"FLEXCHARGE_REFUND_DECLINED_WORDS": ["declined", "success"]}, "E051"),
        ({"FLEXCHARGE_ORDER_AMOUNT_UNITS": "cents"}, "E052"),
        ({"FLEXCHARGE_REFUND_APPROVED_WORDS": []}, "E053"),
    ],
)
def test_refund_vocabulary_settings_are_checked(overrides, expected):
    with override_settings(**overrides):
        messages = checks.check_refund_vocabularies()
    assert [m.id for m in messages] == [f"django_flexcharge.{expected}"]
    assert messages[0].hint
