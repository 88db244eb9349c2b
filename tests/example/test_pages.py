"""The site's pages outside checkout: plans, sign-up, the staff renewal button."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from shop.models import Charge

from .conftest import stored_subscription

pytestmark = pytest.mark.django_db


def test_the_plans_page_lists_plans_with_their_price(client, plan):
    html = client.get(reverse("plans")).content.decode()
    assert "Basic" in html
    assert "9.99 USD / month" in html
    assert reverse("checkout", args=[plan.slug]) in html


def test_signup_requires_an_email_and_logs_the_customer_in(client):
    data = {"username": "sam", "password1": "a-long-pass-123", "password2": "a-long-pass-123"}
    assert "email" in client.post(reverse("signup"), data).context["form"].errors

    response = client.post(reverse("signup"), {**data, "email": "sam@example.com"})

    assert response.status_code == 302
    assert get_user_model().objects.get(username="sam").email == "sam@example.com"
    assert client.get(reverse("account")).status_code == 200


def test_checkout_needs_a_login(client, plan):
    response = client.get(reverse("checkout", args=[plan.slug]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_subscribed_customer_is_sent_to_the_account_page(customer_client, customer, plan):
    stored_subscription(customer, plan)
    response = customer_client.get(reverse("checkout", args=[plan.slug]))
    assert response["Location"] == reverse("account")


def test_a_past_due_customer_may_subscribe_again(customer_client, customer, plan):
    subscription = stored_subscription(customer, plan)
    subscription.status = "past_due"
    subscription.save()
    account = customer_client.get(reverse("account")).content.decode()
    assert reverse("checkout", args=[plan.slug]) in account
    assert customer_client.get(reverse("checkout", args=[plan.slug])).status_code == 200


def test_staff_can_run_renewals_from_the_account_page(client, customer, plan):
    stored_subscription(customer, plan)
    stored_subscription(customer, plan, "4000002760003184")
    admin = get_user_model().objects.create_user("boss", password="pw", is_staff=True)
    client.force_login(admin)

    response = client.post(reverse("run_renewals"), follow=True)

    assert "Renewal run: 1 approved, 1 rescue pending." in response.content.decode()
    assert Charge.objects.count() == 2


def test_customers_cannot_run_renewals(customer_client, customer, plan):
    stored_subscription(customer, plan)
    customer_client.post(reverse("run_renewals"))
    assert not Charge.objects.exists()
