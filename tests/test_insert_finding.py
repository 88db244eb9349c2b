"""insert_finding: a new row's INSERT and a SELECT in one round trip, and the savepoint
a caller's transaction needs sent with them."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from django_flexcharge.insert_finding import insert_finding, one_trip_savepoint
from django_flexcharge.inserts import one_statement
from django_flexcharge.models import FlexChargeOrder
from tests.factories import make_order

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="a data-modifying WITH: PostgreSQL"
    ),
]

LOOK = 'SELECT 1 FROM "django_flexcharge_flexchargeorder" WHERE "email" = %s'


def test_insert_finding_stores_the_row_and_says_whether_the_select_found_one():
    make_order("INV-X", session_key=None, email="x@example.com")
    assert one_statement(FlexChargeOrder)

    order = make_order("INV-Y", session_key=None, save=False)
    assert insert_finding(order, LOOK, ["x@example.com"]) is True
    assert FlexChargeOrder.objects.get(pk=order.pk).order_id == "INV-Y"

    other = make_order("INV-Z", session_key=None, save=False)
    assert insert_finding(other, LOOK, ["nobody@example.com"]) is False
    assert FlexChargeOrder.objects.filter(order_id="INV-Z").exists()


def test_in_a_transaction_a_repeat_is_raised_and_the_transaction_goes_on():
    assert one_trip_savepoint()
    make_order("INV-R", session_key=None, email="r@example.com")
    with transaction.atomic():
        first = make_order("INV-S", session_key=None, save=False)
        assert insert_finding(first, LOOK, ["r@example.com"], savepoint=True) is True
        again = make_order("INV-S", session_key=None, save=False)
        with pytest.raises(IntegrityError):
            insert_finding(again, LOOK, ["r@example.com"], savepoint=True)
        assert FlexChargeOrder.objects.filter(order_id="INV-S").count() == 1  # still usable
    assert FlexChargeOrder.objects.filter(order_id="INV-S").count() == 1
