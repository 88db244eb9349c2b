"""The rescue dashboard with several accounts: every account's figures, or one account's."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_flexcharge.models import FlexChargeOrder
from tests.factories import BRAND_B, make_order

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
URL = "admin:django_flexcharge_dashboard"


@pytest.fixture
def two_accounts():
    now = timezone.now()
    make_order("A-1", Status.APPROVED, session_key="a1", resolved_at=now)
    make_order("A-2", Status.EXPIRED, session_key="a2", resolved_at=now)
    make_order("B-1", Status.APPROVED, session_key="b1", resolved_at=now, account="brand-b")
    make_order("B-2", Status.PENDING, session_key="b2", account="brand-b")
    with override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B}):
        yield


def test_all_accounts_then_one(admin_client, two_accounts):
    html = admin_client.get(reverse(URL)).content.decode()
    assert 'data-rate="66.7"' in html  # 2 rescued of 3 finished, both accounts
    assert 'id="flexcharge-accounts"' in html
    assert 'id="flexcharge-dashboard-account"' in html  # the per-account breakdown
    html = admin_client.get(reverse(URL), {"period": 30, "account": "brand-b"}).content.decode()
    assert 'data-rate="100.0"' in html  # brand-b: 1 of 1
    assert 'aria-current="true">brand-b<' in html
    # CSV links keep the account.
    assert "period=30&amp;account=brand-b" in html
    html = admin_client.get(reverse(URL), {"account": "default"}).content.decode()
    assert 'data-rate="50.0"' in html


def test_an_unknown_account_shows_all_with_an_error(admin_client, two_accounts):
    html = admin_client.get(reverse(URL), {"account": "brand-z"}).content.decode()
    assert "there is no FlexCharge account" in html
    assert 'data-rate="66.7"' in html


def test_per_account_breakdown_and_its_csv(admin_client, two_accounts):
    export = reverse("admin:django_flexcharge_dashboard_export")
    response = admin_client.get(export, {"figure": "account", "key": "brand-b", "period": 30})
    text = b"".join(response.streaming_content).decode()
    assert [(r["order_id"], r["account"]) for r in csv.DictReader(io.StringIO(text))] == [
        ("B-1", "brand-b")
    ]
    response = admin_client.get(export, {"figure": "under_rescue", "account": "default"})
    text = b"".join(response.streaming_content).decode()
    assert list(csv.DictReader(io.StringIO(text))) == []  # B-2 is brand-b's


@override_settings(FLEXCHARGE_ACCOUNTS={})
def test_one_account_sites_see_no_switch(admin_client):
    html = admin_client.get(reverse(URL)).content.decode()
    assert 'id="flexcharge-accounts"' not in html
    assert 'id="flexcharge-dashboard-account"' not in html
