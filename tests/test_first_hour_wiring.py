"""Wiring mistakes caught on day one: the webhook URL not routed, the emulator's
``--site-url``/``--webhook-url``/``--help``, its SenseJS stand-in, and commands that fail
on bad input with a CommandError instead of a traceback."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command
from django.template import Context, Template
from django.test import override_settings
from django.urls import clear_url_caches

from django_flexcharge import checks
from django_flexcharge import conf as conf_module
from django_flexcharge.management.commands import flexcharge_emulator as emulator_command
from flexcharge_emulator import Emulator, EmulatorConfig
from flexcharge_emulator import sensejs as sensejs_standin

urlpatterns: list[Any] = []  # a ROOT_URLCONF that forgot include("django_flexcharge.urls")


@pytest.fixture
def served(emulator_served: list[EmulatorConfig]) -> list[EmulatorConfig]:
    return emulator_served


def test_a_site_without_the_webhook_route_gets_a_warning():
    assert checks.check_webhook_routed() == []
    with override_settings(ROOT_URLCONF=__name__):
        clear_url_caches()
        try:
            (message,) = checks.check_webhook_routed()
        finally:
            clear_url_caches()
    assert message.id == "django_flexcharge.W022"
    assert 'include("django_flexcharge.urls")' in message.hint


def test_site_url_gets_the_webhook_path_added(served):
    call_command("flexcharge_emulator", "--site-url", "http://127.0.0.1:9000/")
    assert served[0].webhook_url == "http://127.0.0.1:9000/flexcharge/webhook/"


def test_a_webhook_url_without_a_path_is_warned_about(served):
    err = StringIO()
    call_command("flexcharge_emulator", "--webhook-url", "http://127.0.0.1:8000", stderr=err)
    assert served[0].webhook_url == "http://127.0.0.1:8000"
    assert "has no path" in err.getvalue()
    assert "--site-url http://127.0.0.1:8000" in err.getvalue()


@override_settings(FLEXCHARGE_API_URL="http://127.0.0.1:8765/v1/")
def test_a_full_webhook_url_is_used_as_given_without_warning(served):
    err = StringIO()
    call_command("flexcharge_emulator", "--webhook-url", "http://h:1/hooks/fc/", stderr=err)
    assert served[0].webhook_url == "http://h:1/hooks/fc/"
    assert err.getvalue() == ""


def test_help_shows_defaults_and_every_options_meaning_but_no_secret(settings):
    parser = emulator_command.Command().create_parser("manage.py", "flexcharge_emulator")
    dests = {
        "host", "port", "site_url", "webhook_url", "app_key", "app_secret", "mid", "site_id",
        "tokenization_key", "subscriber_key", "rescue_delay", "expire_delay", "token_ttl",
        "webhook_max_attempts",
    }  # fmt: skip
    ours = [a for a in parser._actions if a.dest in dests]
    assert len(ours) == len(dests)
    for action in ours:
        assert len(action.help or "") > 20, f"{action.option_strings} has no meaning"
    out = " ".join(parser.format_help().split())
    assert "(default: 8765)" in out
    assert "(default: http://127.0.0.1:8000)" in out
    assert "SITE_URL + /flexcharge/webhook/" in out
    for secret in (settings.FLEXCHARGE_APP_SECRET, settings.FLEXCHARGE_TOKENIZATION_KEY):
        assert secret not in out


def test_the_standalone_emulator_warns_about_a_webhook_url_without_a_path():
    from flexcharge_emulator.__main__ import webhook_url_problem

    assert "has no path" in webhook_url_problem("http://127.0.0.1:8000/")
    assert webhook_url_problem("http://127.0.0.1:8000/flexcharge/webhook/") == ""
    assert "not an absolute" in webhook_url_problem("127.0.0.1:8000/flexcharge/webhook/")


def test_the_emulator_serves_a_sensejs_stand_in_that_yields_a_sense_key():
    with Emulator(EmulatorConfig()) as emu:
        emu.set_faults(error_rate=1.0)  # faults are for the API, never the script
        response = requests.get(emu.url + sensejs_standin.PATH, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/javascript")
    assert "w.fc = fc" in response.text
    assert "flexcharge:sensekey" in response.text
    assert conf_module.EMULATOR_SENSEJS_PATH == sensejs_standin.PATH


def test_the_tag_loads_the_stand_in_when_the_api_is_the_emulator():
    tag = Template("{% load flexcharge %}{% flexcharge_sensejs %}")
    with override_settings(FLEXCHARGE_API_URL="http://127.0.0.1:8765/v1/"):
        assert '"http://127.0.0.1:8765/sensejs/widget.js"' in tag.render(Context())
    with override_settings(
        FLEXCHARGE_API_URL="http://127.0.0.1:8765/v1/",
        FLEXCHARGE_SENSEJS_URL="https://sensejs.example.com/w.js",
    ):
        assert "127.0.0.1:8765/sensejs" not in tag.render(Context())  # an explicit URL wins
    assert '"https://sensejs.flexfactor.io/widget.js"' in tag.render(Context())


def test_send_test_webhook_with_a_key_that_is_not_base64_is_a_command_error():
    with pytest.raises(CommandError, match="--key is not valid base64"):
        call_command(
            "flexcharge_send_test_webhook", "http://127.0.0.1:1/flexcharge/webhook/",
            "--key", "not base64",
        )  # fmt: skip


@override_settings(FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS=[])
def test_send_test_webhook_without_any_key_is_a_command_error():
    with pytest.raises(CommandError, match="FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS is not set"):
        call_command("flexcharge_send_test_webhook", "http://127.0.0.1:1/flexcharge/webhook/")


@pytest.mark.django_db
def test_sync_of_an_unknown_order_is_a_command_error():
    err = StringIO()
    with pytest.raises(CommandError, match="No FlexCharge order with order id 'NOPE'"):
        call_command("flexcharge_sync", "--order", "NOPE", stdout=StringIO(), stderr=err)
    assert "NOPE: no such FlexCharge order" in err.getvalue()


@override_settings(ROOT_URLCONF="tests.no_such_urlconf_module")
def test_a_broken_urlconf_is_left_to_djangos_own_url_check():
    clear_url_caches()
    try:
        assert checks.check_webhook_routed() == []
    finally:
        clear_url_caches()


def test_without_the_route_the_emulator_uses_the_default_webhook_path(served, settings):
    settings.ROOT_URLCONF = __name__
    settings.FLEXCHARGE_API_URL = "http://127.0.0.1:8765/v1/"  # the site's keys are used
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = ["c2l0ZS1rZXktMDEyMzQ1Njc4OWFiY2RlZg=="]
    clear_url_caches()
    try:
        call_command("flexcharge_emulator")
    finally:
        clear_url_caches()
    assert served[0].webhook_url == "http://127.0.0.1:8000/flexcharge/webhook/"
    assert served[0].subscriber_key == "c2l0ZS1rZXktMDEyMzQ1Njc4OWFiY2RlZg=="


def test_the_standalone_emulator_parses_site_url_and_warns(monkeypatch, capsys):
    from flexcharge_emulator import __main__ as standalone

    seen: list[EmulatorConfig] = []
    monkeypatch.setattr(standalone, "serve", lambda config, announce, **more: seen.append(config))
    monkeypatch.setattr(standalone.logging, "basicConfig", lambda **kwargs: None)
    assert standalone.main(["--site-url", "http://127.0.0.1:9000", "--port", "0"]) == 0
    assert seen[0].webhook_url == "http://127.0.0.1:9000/flexcharge/webhook/"
    assert standalone.main(["--webhook-url", "http://127.0.0.1:9000/"]) == 0
    assert "warning: webhook URL http://127.0.0.1:9000/ has no path" in capsys.readouterr().err
    assert standalone.main([]) == 0
    assert seen[2].webhook_url is None  # no site: webhooks are only recorded
