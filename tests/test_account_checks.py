"""System checks of FLEXCHARGE_ACCOUNTS and FLEXCHARGE_ACCOUNT_LOADER (E060-E066, W061-W062)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_flexcharge.account_checks import (
    check_account_credentials_deploy,
    check_account_loader,
    check_accounts,
)
from tests.factories import BRAND_B


def ids(messages) -> list[str]:
    return [m.id.rsplit(".", 1)[1] for m in messages]


@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B})
def test_a_complete_account_passes():
    assert check_accounts() == []


def test_no_accounts_no_messages():
    assert check_accounts() == []


@pytest.mark.parametrize(
    ("accounts", "expected", "named"),
    [
        (["brand-b"], "E060", "list"),
        ({"default": {}}, "E060", "'default'"),
        ({"brand-b": "x"}, "E060", "'brand-b'"),
        ({"a/b": {}}, "E060", "'a/b'"),
        ({"brand-b": {**BRAND_B, "FLEXCHARGE_MID": "x"}}, "E060", "'FLEXCHARGE_MID'"),
        ({"brand-b": {**BRAND_B, "MIT_EXPIRY_DAYS": 7}}, "E065", "'brand-b'"),
        ({"brand-b": {**BRAND_B, "WEBHOOK_SUBSCRIBER_KEYS": ["%%%"]}}, "E063", "'brand-b'"),
        ({"brand-b": {**BRAND_B, "DECLINE_MAX_AGE": "soon"}}, "E064", "DECLINE_MAX_AGE"),
    ],
)
def test_errors_name_the_account(accounts, expected, named):
    with override_settings(FLEXCHARGE_ACCOUNTS=accounts):
        messages = check_accounts()
    assert expected in ids(messages)
    assert any(named in m.msg for m in messages)


@override_settings(
    FLEXCHARGE_ACCOUNTS={"brand-b": {"SITE_ID": "s"}}, FLEXCHARGE_APP_SECRET="", FLEXCHARGE_MID=""
)
def test_missing_credentials_are_a_warning_naming_the_account_and_an_error_on_deploy():
    [message] = check_accounts()
    assert message.id == "django_flexcharge.W061"
    assert "'brand-b'" in message.msg
    assert "APP_SECRET" in message.msg
    [error] = check_account_credentials_deploy()
    assert error.id == "django_flexcharge.E061"
    assert "'brand-b'" in error.msg


@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B})
def test_a_complete_account_passes_the_deploy_check():
    assert check_account_credentials_deploy() == []


@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": {"SITE_ID": "s"}})
def test_an_account_on_the_default_credentials_is_a_warning():
    [message] = check_accounts()
    assert message.id == "django_flexcharge.W062"
    assert "APP_KEY or MID" in message.msg


@pytest.mark.parametrize(
    ("path", "problem"),
    [("tests.no_such.loader", "cannot be imported"), ("tests.test_account_checks.ids", None)],
)
def test_loader_check(path, problem):
    with override_settings(FLEXCHARGE_ACCOUNT_LOADER=path):
        messages = check_account_loader()
    if problem is None:
        assert messages == []
    else:
        assert ids(messages) == ["E066"]
        assert problem in messages[0].msg


@override_settings(FLEXCHARGE_ACCOUNT_LOADER="django_flexcharge.accounts.DEFAULT")
def test_loader_that_is_not_callable():
    assert "is not callable" in check_account_loader()[0].msg
