"""FLEXCHARGE_ACCOUNTS and FLEXCHARGE_ACCOUNT_LOADER: per-account typed settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from django_flexcharge.accounts import (
    account_conf,
    account_config,
    aliases,
    clear_account_cache,
)
from django_flexcharge.conf import conf
from django_flexcharge.exceptions import FlexChargeConfigurationError

BRAND_B = {
    "APP_KEY": "b-key",
    "APP_SECRET": "b-secret",
    "MID": "b-mid",
    "SITE_ID": "b-site",
    "WEBHOOK_SUBSCRIBER_KEYS": ["YmJi"],
    "MIT_EXPIRY_DAYS": 30,
}


def test_default_is_the_flat_settings_object():
    assert conf.account("default") is conf
    assert account_conf("default").MID == conf.MID


@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B}, FLEXCHARGE_DECLINE_MAX_AGE=12)
def test_account_keys_then_flat_setting_then_default():
    brand = conf.account("brand-b")
    assert brand.MID == "b-mid"
    assert brand.FLEXCHARGE_APP_KEY == "b-key"
    assert brand.MIT_EXPIRY_DAYS == 30
    assert brand.DECLINE_MAX_AGE == 12  # flat setting
    assert brand.WEBHOOK_TOLERANCE == 300  # documented default
    assert conf.account("brand-b") is brand  # one object per alias
    assert aliases() == ["default", "brand-b"]


def test_override_settings_reaches_a_cached_account_object():
    with override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B}):
        brand = conf.account("brand-b")
        assert brand.MID == "b-mid"
    with override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": {**BRAND_B, "MID": "new"}}):
        assert brand.MID == "new"
        assert conf.account("brand-b") is brand


def test_unknown_alias_is_named():
    with pytest.raises(FlexChargeConfigurationError, match="'nope'"):
        conf.account("nope")


@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": {"FLEXCHARGE_MID": "x", "COLOR": 1}})
def test_unknown_keys_are_refused_naming_alias_and_key():
    with pytest.raises(FlexChargeConfigurationError) as info:
        conf.account("brand-b")
    message = str(info.value)
    assert "'brand-b'" in message
    assert "'COLOR'" in message
    assert "drop the FLEXCHARGE_ prefix" in message


@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": {"MID": ""}}, FLEXCHARGE_MID="")
def test_missing_credential_error_names_the_account():
    with pytest.raises(FlexChargeConfigurationError, match=r"account 'brand-b'.*FLEXCHARGE_MID"):
        _ = conf.account("brand-b").MID


CALLS: list[str] = []
MERCHANTS: dict[str, Any] = {"m-1": {"MID": "m1-mid", "APP_KEY": "m1-key"}}


def load_merchant(alias: str) -> dict[str, Any] | None:
    CALLS.append(alias)
    return MERCHANTS.get(alias)


@pytest.fixture
def loader() -> Any:
    CALLS.clear()
    with override_settings(FLEXCHARGE_ACCOUNT_LOADER="tests.test_accounts_conf.load_merchant"):
        yield
    clear_account_cache()


def test_loader_answer_is_cached_until_cleared(loader):
    assert conf.account("m-1").MID == "m1-mid"
    assert conf.account("m-1").APP_KEY == "m1-key"
    assert account_config("m-1")["MID"] == "m1-mid"
    assert CALLS == ["m-1"]  # one load, however many reads
    MERCHANTS["m-1"] = {"MID": "m1-new"}
    try:
        assert conf.account("m-1").MID == "m1-mid"
        clear_account_cache("m-1")
        assert conf.account("m-1").MID == "m1-new"
        assert CALLS == ["m-1", "m-1"]
    finally:
        MERCHANTS["m-1"] = {"MID": "m1-mid", "APP_KEY": "m1-key"}


def test_loader_unknown_alias_and_bad_config(loader):
    with pytest.raises(FlexChargeConfigurationError, match="'m-2'"):
        conf.account("m-2")
    MERCHANTS["m-bad"] = {"MIDD": "typo"}
    try:
        with pytest.raises(FlexChargeConfigurationError, match=r"'m-bad'.*'MIDD'"):
            conf.account("m-bad")
    finally:
        del MERCHANTS["m-bad"]


def test_loader_ttl_expires(loader):
    with override_settings(FLEXCHARGE_ACCOUNT_LOADER_TTL=0):
        conf.account("m-1")
        conf.account("m-1")
    assert CALLS == ["m-1", "m-1"]


@override_settings(FLEXCHARGE_ACCOUNT_LOADER="tests.no_such_module.load")
def test_loader_that_cannot_be_imported():
    with pytest.raises(FlexChargeConfigurationError, match="FLEXCHARGE_ACCOUNT_LOADER"):
        conf.account("m-1")


@override_settings(FLEXCHARGE_ACCOUNTS=["brand-b"])
def test_accounts_of_the_wrong_type():
    with pytest.raises(FlexChargeConfigurationError, match="must be a dict"):
        conf.account("brand-b")
