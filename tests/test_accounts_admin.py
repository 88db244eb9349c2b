"""The admin with several FlexCharge accounts: an account column and filter on every list."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from tests.factories import BRAND_B, make_order

pytestmark = pytest.mark.django_db

LISTS = ("flexchargeorder", "transmission", "webhookevent", "refund", "vaultedcard")


@pytest.mark.parametrize("model", LISTS)
@override_settings(FLEXCHARGE_ACCOUNTS={})
def test_one_account_sites_see_no_account_column(admin_client, model):
    page = admin_client.get(reverse(f"admin:django_flexcharge_{model}_changelist"))
    assert page.status_code == 200
    assert "account" not in page.context["cl"].list_display
    assert "account" not in page.context["cl"].list_filter


@pytest.mark.parametrize("model", LISTS)
@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B})
def test_several_accounts_add_a_column_and_a_filter(admin_client, model):
    make_order("INV-A", session_key="fc-a")  # rows, so the list renders its columns
    page = admin_client.get(reverse(f"admin:django_flexcharge_{model}_changelist"))
    assert "account" in page.context["cl"].list_display
    assert page.context["cl"].list_filter[0] == "account"
    if model == "flexchargeorder":
        html = page.content.decode()
        assert "column-account" in html
        assert "?account=default" in html  # the filter's choice


@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B})
def test_the_filter_shows_one_accounts_orders(admin_client):
    make_order("INV-A", session_key="fc-a")
    make_order("INV-B", account="brand-b", session_key="fc-b")
    url = reverse("admin:django_flexcharge_flexchargeorder_changelist")
    page = admin_client.get(url, {"account": "brand-b"})
    assert [o.order_id for o in page.context["cl"].result_list] == ["INV-B"]
    page = admin_client.get(url)
    assert {o.order_id for o in page.context["cl"].result_list} == {"INV-A", "INV-B"}
