"""Settings checked for what they are: one test per wrong-typed setting (E020), GUIDs (E021),
and no secret needed to develop (W001 in development, E001 only under ``check --deploy``)."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.template import Context, Template
from django.test import override_settings

from django_flexcharge import checks
from django_flexcharge.client import FlexChargeClient
from django_flexcharge.conf import conf
from django_flexcharge.exceptions import FlexChargeConfigurationError
from django_flexcharge.setting_types import SettingTypeError

CREDENTIALS = {
    "FLEXCHARGE_APP_KEY": "",
    "FLEXCHARGE_APP_SECRET": "",
    "FLEXCHARGE_MID": "",
    "FLEXCHARGE_SITE_ID": "",
    "FLEXCHARGE_TOKENIZATION_KEY": "",
    "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS": [],
}


def type_errors() -> list[str]:
    return [m.msg for m in checks.check_setting_types() if m.id == "django_flexcharge.E020"]


def assert_one_type_error(setting: str, expected: str, found: str) -> str:
    (message,) = type_errors()
    assert message.startswith(f"{setting} must be {expected}")
    assert f"found {found}" in message
    return message


# --- one test per wrong-typed setting ---------------------------------------------------------


@override_settings(FLEXCHARGE_TEST_MODE="False")
def test_test_mode_false_as_a_string_is_an_error_not_true():
    assert_one_type_error("FLEXCHARGE_TEST_MODE", "a bool", "str 'False'")
    with pytest.raises(SettingTypeError, match=r"env\.bool\('FLEXCHARGE_TEST_MODE'\)"):
        conf.TEST_MODE  # noqa: B018 - the property is what is tested


@override_settings(FLEXCHARGE_MIT_EXPIRY_DAYS="twenty")
def test_mit_expiry_days_as_a_word_is_a_type_error_not_a_range_error():
    assert_one_type_error("FLEXCHARGE_MIT_EXPIRY_DAYS", "an int", "str 'twenty'")
    ids = [m.id for m in checks.check_expiry_and_window()]
    assert "django_flexcharge.E005" not in ids


@override_settings(FLEXCHARGE_MAX_ATTEMPTS="lots")
def test_max_attempts_as_a_word_is_an_error_before_any_worker_runs():
    assert_one_type_error("FLEXCHARGE_MAX_ATTEMPTS", "an int", "str 'lots'")
    with pytest.raises(FlexChargeConfigurationError) as exc:
        conf.MAX_ATTEMPTS  # noqa: B018
    assert exc.value.setting == "FLEXCHARGE_MAX_ATTEMPTS"


@override_settings(FLEXCHARGE_DECLINE_MAX_AGE="24h")
def test_decline_max_age_as_a_string_is_an_error():
    assert_one_type_error("FLEXCHARGE_DECLINE_MAX_AGE", "a number", "str '24h'")
    assert "django_flexcharge.E006" not in [m.id for m in checks.check_expiry_and_window()]


@override_settings(FLEXCHARGE_TIMEOUT="3,30")
def test_timeout_as_a_string_is_an_error_with_the_env_tuple_hint():
    assert_one_type_error("FLEXCHARGE_TIMEOUT", "a (connect, read) tuple", "str '3,30'")
    (message,) = [m for m in checks.check_setting_types() if m.id.endswith("E020")]
    assert "env.tuple('FLEXCHARGE_TIMEOUT', cast=float)" in message.hint


@override_settings(FLEXCHARGE_TIMEOUT=(3, 30, 5))
def test_timeout_of_three_numbers_is_an_error():
    assert_one_type_error("FLEXCHARGE_TIMEOUT", "a (connect, read) tuple", "tuple")


@override_settings(FLEXCHARGE_WEBHOOK_MAX_BODY=65.5)
def test_webhook_max_body_as_a_float_is_an_error():
    assert_one_type_error("FLEXCHARGE_WEBHOOK_MAX_BODY", "an int", "float 65.5")


@override_settings(FLEXCHARGE_RETRY_BASE_DELAY="2")
def test_retry_base_delay_as_a_string_is_an_error():
    assert_one_type_error("FLEXCHARGE_RETRY_BASE_DELAY", "a number", "str '2'")


@override_settings(FLEXCHARGE_RETRY_MAX_DELAY=True)
def test_retry_max_delay_as_a_bool_is_an_error():
    assert_one_type_error("FLEXCHARGE_RETRY_MAX_DELAY", "a number", "bool True")


@override_settings(FLEXCHARGE_API_URL=["https://api-sandbox.flex-charge.com/v1/"])
def test_api_url_as_a_list_is_an_error():
    assert_one_type_error("FLEXCHARGE_API_URL", "a string", "list")


@override_settings(FLEXCHARGE_SENSEJS_URL=42)
def test_sensejs_url_as_a_number_is_an_error():
    assert_one_type_error("FLEXCHARGE_SENSEJS_URL", "a string", "int 42")


@override_settings(FLEXCHARGE_SENSEJS_INVOKE=("order",))
def test_sensejs_invoke_as_a_tuple_is_an_error():
    assert_one_type_error("FLEXCHARGE_SENSEJS_INVOKE", "a string", "tuple")


@override_settings(FLEXCHARGE_SENSEJS_KEY_EVENT=1)
def test_sensejs_key_event_as_a_number_is_an_error():
    assert_one_type_error("FLEXCHARGE_SENSEJS_KEY_EVENT", "a string", "int 1")


@override_settings(FLEXCHARGE_SENSEJS_KEY_GLOBAL=False)
def test_sensejs_key_global_as_a_bool_is_an_error():
    assert_one_type_error("FLEXCHARGE_SENSEJS_KEY_GLOBAL", "a string", "bool False")


@override_settings(FLEXCHARGE_WEBHOOK_HOST=["shop.example.com"])
def test_webhook_host_as_a_list_is_an_error():
    assert_one_type_error("FLEXCHARGE_WEBHOOK_HOST", "a string", "list")


@override_settings(FLEXCHARGE_TASK_BACKEND=None, FLEXCHARGE_TASK_QUEUE=5)
def test_task_queue_as_a_number_is_an_error_and_none_means_default():
    assert conf.TASK_BACKEND == "default"
    assert_one_type_error("FLEXCHARGE_TASK_QUEUE", "a string", "int 5")


@pytest.mark.parametrize(
    "setting", ["FLEXCHARGE_APP_KEY", "FLEXCHARGE_APP_SECRET", "FLEXCHARGE_TOKENIZATION_KEY"]
)
def test_a_secret_of_the_wrong_type_is_named_but_its_value_never_shown(setting):
    secret = 918273645546372819
    with override_settings(**{setting: secret}):
        message = assert_one_type_error(setting, "a string", "int.")
        assert str(secret) not in message
        with pytest.raises(SettingTypeError) as exc:
            getattr(conf, setting.removeprefix("FLEXCHARGE_"))
        assert str(secret) not in str(exc.value)


@pytest.mark.parametrize("setting", ["FLEXCHARGE_MID", "FLEXCHARGE_SITE_ID"])
def test_a_mid_or_site_id_that_is_not_a_guid_is_an_error(setting):
    with override_settings(**{setting: "merchant-42"}):
        (message,) = checks.check_setting_types()
    assert message.id == "django_flexcharge.E021"
    assert message.msg.startswith(f"{setting} must be a GUID")
    assert "merchant-42" not in message.msg


def test_right_types_from_django_environ_pass():
    with override_settings(
        FLEXCHARGE_TEST_MODE=False,
        FLEXCHARGE_TIMEOUT=(2.0, 10.0),
        FLEXCHARGE_DECLINE_MAX_AGE=12,
        FLEXCHARGE_WEBHOOK_TOLERANCE=None,
        FLEXCHARGE_MID="D9D0B5FD-9433-44D3-8051-63FEE28768E8",
    ):
        assert checks.check_setting_types() == []
        assert conf.TEST_MODE is False
        assert conf.TIMEOUT == (2.0, 10.0)
        assert conf.WEBHOOK_TOLERANCE == 0


def test_a_wrong_type_stops_manage_py_check_in_every_mode():
    with override_settings(FLEXCHARGE_MAX_ATTEMPTS="lots"), pytest.raises(SystemCheckError) as exc:
        call_command("check")
    assert "django_flexcharge.E020" in str(exc.value)


# --- no secrets needed to develop --------------------------------------------------------------


@override_settings(**CREDENTIALS)
def test_missing_credentials_are_warnings_that_say_how_to_develop_locally():
    messages = [m for m in run_checks() if m.id.startswith("django_flexcharge.")]
    assert all(not m.is_serious() for m in messages), messages
    (warning,) = [m for m in messages if m.id == "django_flexcharge.W001"]
    for name in ("FLEXCHARGE_APP_KEY", "FLEXCHARGE_APP_SECRET", "FLEXCHARGE_MID"):
        assert name in warning.msg
    assert "flexcharge_emulator" in warning.hint
    call_command("check")  # warnings only: check, migrate, runserver, test go on


@override_settings(**CREDENTIALS)
def test_check_deploy_fails_naming_each_missing_setting():
    with pytest.raises(SystemCheckError) as exc:
        call_command("check", deploy=True)
    for name in CREDENTIALS:
        assert f"django_flexcharge.E001) {name} is not set." in str(exc.value)


@override_settings(FLEXCHARGE_APP_KEY="", FLEXCHARGE_TOKENIZATION_KEY="")
def test_the_calls_that_need_a_credential_raise_naming_it():
    client = FlexChargeClient()
    with pytest.raises(FlexChargeConfigurationError) as exc:
        client.get_token()
    assert exc.value.setting == "FLEXCHARGE_APP_KEY"
    assert "flexcharge_emulator" in str(exc.value)
    with pytest.raises(FlexChargeConfigurationError) as exc:
        FlexChargeClient(app_key="k", app_secret="s").tokenize({"payment_method": {}})
    assert exc.value.setting == "FLEXCHARGE_TOKENIZATION_KEY"


@override_settings(FLEXCHARGE_MID="", FLEXCHARGE_SITE_ID="")
def test_the_tag_renders_a_comment_without_mid_and_site_id():
    html = Template("{% load flexcharge %}{% flexcharge_sensejs %}").render(Context())
    assert html.startswith("<!--")
    assert "<script" not in html


@pytest.mark.parametrize(
    "overrides",
    [
        {"FLEXCHARGE_API_URL": 8765},
        {"FLEXCHARGE_TASK_BACKEND": ["default"]},
        {"FLEXCHARGE_MIT_EXPIRY_DAYS": "21", "FLEXCHARGE_DECLINE_MAX_AGE": "24"},
        {"FLEXCHARGE_TIMEOUT": [3, "30"]},
    ],
)
def test_every_check_copes_with_wrong_types_and_only_e020_reports_them(overrides):
    with override_settings(**overrides):
        ours = [m for m in run_checks() if m.id.startswith("django_flexcharge.")]
    assert {m.id for m in ours if m.is_serious()} == {"django_flexcharge.E020"}
    assert len([m for m in ours if m.id.endswith("E020")]) == len(overrides)


@override_settings(FLEXCHARGE_TIMEOUT=5)
def test_one_number_is_both_timeouts():
    assert conf.TIMEOUT == (5.0, 5.0)
    assert checks.check_setting_types() == []


def test_a_long_value_is_shortened_in_the_message():
    with override_settings(FLEXCHARGE_MAX_ATTEMPTS="x" * 100):
        (message,) = type_errors()
    assert "xxx..." in message
    assert "x" * 60 not in message
