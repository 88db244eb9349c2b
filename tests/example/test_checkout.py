"""Checkout: the card is vaulted while the processor authorizes it; never stored.

The approved-checkout tests need ``transactional_db``: the vault call runs in a
worker thread with its own database connection, which cannot see rows inside
the test's transaction.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.urls import reverse
from shop.billing import authorize_and_vault
from shop.models import Charge, Subscription

from django_flexcharge.exceptions import FlexChargeServerError
from django_flexcharge.models import Transmission, VaultedCard

from .conftest import checkout_data

RESCUE_CARD = "4000002760003184"


def database_text() -> str:
    """Every row of every table as text, sessions decoded: where a leaked PAN would show."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            # Table names come from the database's own catalogue, not from input.
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            chunks.extend(" ".join(map(str, row)) for row in cursor.fetchall())
    chunks.extend(str(session.get_decoded()) for session in Session.objects.all())
    return "\n".join(chunks)


def page_order_id(response) -> str:
    match = re.search(r"order (INV-\d{6})", response.content.decode())
    assert match, "the checkout page shows its order id"
    return match.group(1)


def test_checkout_page_loads_sensejs_for_its_order_and_keeps_the_order_id(customer_client, plan):
    url = reverse("checkout", args=[plan.slug])
    page = customer_client.get(url)
    html = page.content.decode()
    order_id = page_order_id(page)
    assert f'"{order_id}"' in html  # handed to SenseJS as a JS string
    assert 'name="flexcharge_sense_key"' in html
    assert "sensejs.flexfactor.io/widget.js" in html
    assert page_order_id(customer_client.get(url)) == order_id  # a reload keeps it


@pytest.mark.django_db(transaction=True)
def test_approved_checkout_activates_the_subscription_and_queues_a_transmission(
    customer_client, customer, plan, flexcharge
):
    url = reverse("checkout", args=[plan.slug])
    order_id = page_order_id(customer_client.get(url))

    response = customer_client.post(url, checkout_data(RESCUE_CARD))

    assert response.status_code == 302
    assert response["Location"] == reverse("account")
    subscription = Subscription.objects.get(user=customer)
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.payment_number == 1
    assert subscription.card.last4 == "3184"
    assert subscription.card.customer == customer
    charge = Charge.objects.get(subscription=subscription)
    assert (charge.order_id, charge.status, charge.is_mit) == (order_id, "approved", False)
    assert Transmission.objects.filter(order_id=order_id).exists()
    # The sense key the page posted went to /tokenize with the card.
    [tokenize] = flexcharge.calls_to("tokenize")
    assert tokenize["body"]["payment_method"]["sense_key"] == "sense-key-from-the-browser"
    assert tokenize["body"]["payment_method"]["email"] == "jane@example.com"


@pytest.mark.django_db(transaction=True)
def test_the_card_number_never_reaches_the_database(customer_client, plan):
    url = reverse("checkout", args=[plan.slug])
    customer_client.get(url)
    customer_client.post(url, checkout_data("4000000000000002"))  # declined
    customer_client.post(url, checkout_data("4111 1111 1111 1112"))  # fails Luhn
    customer_client.post(url, checkout_data(RESCUE_CARD))  # approved, vaulted, transmitted
    assert Subscription.objects.count() == 1

    text = database_text()
    for pan in ("4000000000000002", "4111111111111112", RESCUE_CARD):
        assert pan not in text


@pytest.mark.django_db(transaction=True)
def test_declined_checkout_shows_an_error_and_starts_nothing(customer_client, customer, plan):
    url = reverse("checkout", args=[plan.slug])
    first_order = page_order_id(customer_client.get(url))

    response = customer_client.post(url, checkout_data("4000000000000002"))

    assert response.status_code == 200
    assert "Your card was declined (Do not honor)" in response.content.decode()
    assert not Subscription.objects.exists()
    charge = Charge.objects.get(order_id=first_order)
    assert (charge.status, charge.response_code, charge.subscription) == ("declined", "05", None)
    assert not VaultedCard.objects.exists()  # vaulted in parallel, then dropped
    assert not Transmission.objects.exists()
    assert page_order_id(response) != first_order  # the next attempt is a new order


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("card_number", "4111111111111112", "fails the Luhn check"),
        ("card_number", "1234", "must be 12 to 19 digits"),
        ("cvv", "12a", "must be 3 or 4 digits"),
        ("zipcode", "ABCDE", "must be 5 or 9 digits for US"),
        ("state", "", "is required for US addresses"),
        ("country_code", "U1", "ISO-3166"),
    ],
)
def test_validation_errors_name_the_field(customer_client, plan, flexcharge, field, value, message):
    url = reverse("checkout", args=[plan.slug])
    response = customer_client.post(url, checkout_data(**{field: value}))

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not Charge.objects.exists()
    assert flexcharge.calls_to("tokenize") == []


def test_a_form_with_errors_does_not_echo_the_card_number_or_cvv(customer_client, plan):
    url = reverse("checkout", args=[plan.slug])
    response = customer_client.post(url, checkout_data(RESCUE_CARD, cvv="9876", zipcode="X"))
    html = response.content.decode()
    assert "must be 5 or 9 digits" in html
    assert RESCUE_CARD not in html
    assert "9876" not in html


@pytest.mark.django_db(transaction=True)
def test_a_vault_failure_does_not_lose_the_sale(customer_client, customer, plan, flexcharge):
    flexcharge.queue("tokenize", FlexChargeServerError("FlexCharge is down", status=503))
    url = reverse("checkout", args=[plan.slug])
    customer_client.get(url)

    response = customer_client.post(url, checkout_data())

    assert response.status_code == 302
    subscription = Subscription.objects.get(user=customer)
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.card is None  # its declined renewals cannot be rescued


def test_vaulting_refuses_to_run_inside_a_transaction(customer, plan):
    from django_flexcharge.types import Card

    card = Card(
        number=RESCUE_CARD, cvv="123", exp_month=1, exp_year=2099, first_name="J", last_name="D"
    )
    # The test itself runs inside a transaction, like a view under ATOMIC_REQUESTS.
    with pytest.raises(RuntimeError, match=r"transaction\.atomic"):
        authorize_and_vault(card, user=customer, plan=plan, order_id="INV-000001")
