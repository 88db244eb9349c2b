"""Migration 0004_accounts on a database holding rows of the schema before it."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

APP = "django_flexcharge"
TARGET = (APP, "0004_accounts")


def _previous(executor: MigrationExecutor) -> list[tuple[str, str]]:
    # Whatever 0004_accounts depends on in this app (renumbered at merges).
    parents = executor.loader.graph.node_map[TARGET].parents
    return [node.key for node in parents if node.key[0] == APP]


@pytest.mark.django_db(transaction=True)
def test_existing_rows_become_the_default_accounts_and_ids_are_unique_per_account():
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes(APP)
    before = _previous(executor)
    executor.migrate(before)
    old = executor.loader.project_state(before[0]).apps
    now = timezone.now()
    card = old.get_model(APP, "VaultedCard").objects.create(
        token="tok-old", last4="3184", exp_month=9, exp_year=2030
    )
    order = old.get_model(APP, "FlexChargeOrder").objects.create(
        order_id="INV-OLD",
        order_session_key="fc-old",
        amount=1999,
        currency="USD",
        card=card,
        status="approved",
        idempotency_key=uuid.uuid4(),
    )
    old.get_model(APP, "Transmission").objects.create(
        order_id="INV-OLD", transaction_id="ch_1", amount=1999, currency="USD", payload={}
    )
    old.get_model(APP, "WebhookEvent").objects.create(
        event="order.completed", nonce="n-old", body="{}", received_at=now
    )
    old.get_model(APP, "Refund").objects.create(order=order, amount=100, currency="USD")
    old.get_model(APP, "CallAttempt").objects.create(order=order, endpoint="POST evaluate")

    executor = MigrationExecutor(connection)
    executor.migrate([TARGET])
    new = executor.loader.project_state(TARGET).apps
    models = ("VaultedCard", "FlexChargeOrder", "Transmission", "WebhookEvent", "Refund")
    for name in (*models, "CallAttempt"):
        accounts = list(new.get_model(APP, name).objects.values_list("account", flat=True))
        assert accounts == ["default"], name
    Order = new.get_model(APP, "FlexChargeOrder")
    # The same host order id (and FlexCharge id) is fine under another account...
    Order.objects.create(
        account="brand-b",
        order_id="INV-OLD",
        order_session_key="fc-old",
        amount=500,
        currency="USD",
        idempotency_key=uuid.uuid4(),
    )
    # ...but still unique within one.
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(
            order_id="INV-OLD", amount=500, currency="USD", idempotency_key=uuid.uuid4()
        )
    Event = new.get_model(APP, "WebhookEvent")
    Event.objects.create(account="brand-b", event="x", nonce="n-old", body="{}")
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(event="x", nonce="n-old", body="{}")

    # Back to where the test database was.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(leaves)
