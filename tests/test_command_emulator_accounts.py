"""``flexcharge_emulator --all-accounts``: each account of the site as a merchant of its own."""

from __future__ import annotations

import io
import os
import signal

import pytest
import requests
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_flexcharge.management.commands.flexcharge_emulator import (
    account_merchants,
    defaults_from_settings,
)
from flexcharge_emulator import EmulatorConfig, MultiEmulator
from tests.factories import B_KEY, BRAND_B

EMULATOR = "http://127.0.0.1:8765/v1/"
REAL = {
    **BRAND_B,
    "MID": "0c0c0c0c-1111-4222-8333-444455556666",
    "API_URL": "https://api.flex-charge.com/v1/",
}


@override_settings(
    FLEXCHARGE_API_URL=EMULATOR, FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B, "real": REAL}
)
def test_each_account_on_the_emulator_is_a_merchant_with_its_own_keys_and_webhook_url():
    default = defaults_from_settings()
    merchants, skipped = account_merchants(default, "http://127.0.0.1:8000")
    [brand_b] = merchants
    assert (brand_b.app_key, brand_b.app_secret, brand_b.mid) == (
        "b-app-key",
        "b-app-secret",
        BRAND_B["MID"],
    )
    assert brand_b.tokenization_key == "b-tokenization-key"
    assert brand_b.subscriber_key == B_KEY != default.subscriber_key
    assert brand_b.webhook_url == "http://127.0.0.1:8000/flexcharge/webhook/brand-b/"
    # An account pointing at FlexCharge holds real credentials: never copied.
    assert skipped == ["real: its API_URL is not the emulator (real credentials)"]
    assert all("b-app-secret" not in reason for reason in skipped)


@override_settings(FLEXCHARGE_API_URL=EMULATOR, FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B})
def test_the_merchants_it_builds_each_get_a_token_at_one_url():
    default = EmulatorConfig(**{**defaults_from_settings().__dict__, "port": 0})
    merchants, _ = account_merchants(default, None)
    with MultiEmulator([default, *merchants]) as emulator:
        for app_key, secret in (
            (default.app_key, default.app_secret),
            ("b-app-key", "b-app-secret"),
        ):
            answer = requests.post(
                emulator.base_url + "oauth2/token",
                json={"AppKey": app_key, "AppSecret": secret},
                timeout=5,
            )
            assert answer.status_code == 200, app_key
        assert emulator.merchant(BRAND_B["MID"]).config.app_key == "b-app-key"


def test_the_option_is_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        call_command("flexcharge_emulator", "--help")
    assert "--all-accounts" in capsys.readouterr().out


class _StopWhenServing(io.StringIO):
    """The command's output; once it prints the control token (the last line before it
    waits), it asks the process to stop, as Ctrl-C would."""

    def write(self, text: str) -> int:
        written = super().write(text)
        if "control token" in text:
            os.kill(os.getpid(), signal.SIGINT)
        return written


@override_settings(
    FLEXCHARGE_API_URL=EMULATOR, FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B, "real": REAL}
)
def test_the_command_serves_every_account_until_interrupted(capsys):
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under a shell's background job
    out, err = _StopWhenServing(), io.StringIO()
    call_command("flexcharge_emulator", "--all-accounts", "--port", "0", stdout=out, stderr=err)
    text = out.getvalue()
    assert "FlexCharge emulator listening on http://127.0.0.1:" in text
    assert f"merchant {BRAND_B['MID']}: webhooks to " in text
    assert REAL["MID"] not in text  # an account pointing at FlexCharge is never served
    assert "Not served: real: its API_URL is not the emulator" in err.getvalue()
    # Stopped cleanly: Ctrl-C is handled as before the command again.
    assert signal.getsignal(signal.SIGINT) is before


def test_two_accounts_with_one_mid_are_refused(settings):
    settings.FLEXCHARGE_API_URL = EMULATOR
    settings.FLEXCHARGE_ACCOUNTS = {"twin": {**BRAND_B, "MID": settings.FLEXCHARGE_MID}}
    with pytest.raises(CommandError, match="its own FLEXCHARGE MID"):
        call_command("flexcharge_emulator", "--all-accounts", "--port", "0")
