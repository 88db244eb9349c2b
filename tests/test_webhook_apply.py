"""webhooks.py without HTTP: parsing, the status rules, refunds, duplicates, re-apply."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from django_flexcharge import order_state, signals, webhooks
from django_flexcharge.conf import conf
from django_flexcharge.exceptions import FlexChargeWebhookError
from django_flexcharge.models import FlexChargeOrder, Refund, StatusChange, WebhookEvent
from django_flexcharge.signing import sign_headers
from django_flexcharge.testing import meta_headers, post_webhook, signed_webhook
from django_flexcharge.webhook_event_data import PayloadError, parse_payload
from tests.factories import webhook_order as make_order

Status = FlexChargeOrder.Status
Stored = WebhookEvent.Status
T0 = timezone.now().replace(microsecond=0)

pytestmark = pytest.mark.django_db


def receive(event="order.completed", **kwargs) -> WebhookEvent:
    kwargs.setdefault("order_id", "fc-0001")
    kwargs.setdefault("external_order_id", "INV-1001")
    body, headers = signed_webhook(event, **kwargs)
    return webhooks.receive(body, headers, "testserver")


def status_of(order: FlexChargeOrder) -> str:
    order.refresh_from_db()
    return order.status


# --- event -> status ---


@pytest.mark.parametrize(
    ("event", "before", "after"),
    [
        ("order.completed", Status.PENDING, Status.APPROVED),
        ("order.completed", Status.QUEUED, Status.APPROVED),
        ("order.expired", Status.PENDING, Status.EXPIRED),
        ("order.cancelled", Status.PENDING, Status.CANCELLED),
        # Without amounts: refunded, by how much is for GET /orders/{id} to say.
        ("order.refunded", Status.APPROVED, Status.PARTIALLY_REFUNDED),
    ],
)
def test_each_order_event_moves_the_order_to_its_status(event, before, after):
    order = make_order(status=before)

    stored = receive(event)

    assert stored.status == Stored.APPLIED
    assert status_of(order) == after
    assert stored.order == order


def test_an_applied_event_records_its_time_and_confirmation_on_the_order():
    order = make_order()

    receive(timestamp=T0, confirmation_id="22ACD1D9")

    order.refresh_from_db()
    assert (order.last_event_at, order.confirmation_id) == (T0, "22ACD1D9")


def test_signals_carry_the_webhook_event(signal_log, django_capture_on_commit_callbacks):
    make_order()

    with django_capture_on_commit_callbacks(execute=True):
        stored = receive()

    assert signal_log.names() == ["order_status_changed", "order_approved"]
    kwargs = signal_log.calls[0][2]
    assert kwargs["event"] == stored
    assert kwargs["previous_status"] == Status.PENDING


def test_the_stored_event_keeps_what_flexcharge_sent():
    make_order()

    stored = receive(timestamp=T0, confirmation_id="22ACD1D9", is_resent=True)

    stored.refresh_from_db()
    assert stored.event == "order.completed"
    assert (stored.order_session_key, stored.external_order_id) == ("fc-0001", "INV-1001")
    assert (stored.timestamp, stored.is_resent, stored.is_test_mode) == (T0, True, True)
    assert '"ConfirmationId":"22ACD1D9"' in stored.body
    assert stored.processed_at is not None


# --- rules that change nothing ---


def test_expired_after_approved_stays_approved(signal_log, django_capture_on_commit_callbacks):
    order = make_order()
    receive(timestamp=T0)

    with django_capture_on_commit_callbacks(execute=True):
        late = receive("order.expired", timestamp=T0 + dt.timedelta(days=20))

    assert status_of(order) == Status.APPROVED
    assert late.status == Stored.IGNORED
    assert late.error == "order is approved; order.expired cannot change it"
    assert signal_log.calls == []


@pytest.mark.parametrize("terminal", [Status.EXPIRED, Status.CANCELLED, Status.DECLINED])
def test_a_terminal_order_never_reopens(terminal):
    order = make_order(status=terminal)

    stored = receive("order.completed")

    assert status_of(order) == terminal
    assert stored.status == Stored.IGNORED


def test_an_event_older_than_the_last_applied_one_is_ignored():
    order = make_order()
    receive("order.completed", timestamp=T0)

    older = receive("order.refunded", timestamp=T0 - dt.timedelta(minutes=5))

    assert older.status == Stored.IGNORED
    assert "older" in older.error
    assert status_of(order) == Status.APPROVED


def test_a_redelivered_event_is_a_duplicate_and_signals_once(
    signal_log, django_capture_on_commit_callbacks
):
    make_order()

    with django_capture_on_commit_callbacks(execute=True):
        first = receive(timestamp=T0)
        again = receive(timestamp=T0, is_resent=True)
        third = receive(timestamp=T0, is_resent=False)

    assert first.status == Stored.APPLIED
    assert (again.status, third.status) == (Stored.DUPLICATE, Stored.DUPLICATE)
    assert again.error == f"already applied by event #{first.pk}"
    assert signal_log.names() == ["order_status_changed", "order_approved"]


#: PostgreSQL: the order's UPDATE, the event and its history row in one statement.
FIRST_DELIVERY = {"postgresql": ["WITH"], "sqlite": ["UPDATE", "INSERT", "INSERT"]}


def data_statements(queries) -> list[str]:
    skip = ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT")
    return [q["sql"].split()[0] for q in queries if not q["sql"].startswith(skip)]


def test_a_first_delivery_costs_two_or_three_statements_whatever_the_table_size():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for n in range(50):
        make_order(order_id=f"INV-{n}", order_session_key=f"fc-{n}")
    make_order()
    with CaptureQueriesContext(connection) as queries:
        stored = receive()
    assert stored.status == Stored.APPLIED
    # UPDATE order ... WHERE status = 'pending' RETURNING, INSERT the event (applied),
    # INSERT its status change (the order's timeline); on PostgreSQL the first two
    # are one statement (WITH source AS (UPDATE ...) INSERT ...).
    assert data_statements(queries) == FIRST_DELIVERY[connection.vendor]


def test_an_event_applied_meanwhile_by_an_admin_is_not_overwritten(admin_user):
    # The short cut skips re-reading the event row only while the order still
    # allows the transition; once someone applied the event, it reads it again.
    make_order()
    body, headers = signed_webhook(
        "order.completed", order_id="fc-0001", external_order_id="INV-1001"
    )
    payload = parse_payload(body)
    event = webhooks.store_event(headers["x-fc-nonce"], body, payload, "")
    assert webhooks.reapply_event(event, admin_user).status == Stored.APPLIED
    stale = WebhookEvent.objects.get(pk=event.pk)
    stale.status = Stored.RECEIVED
    result = webhooks._apply(stale, payload, fresh=True)
    assert result.status == Stored.APPLIED
    assert WebhookEvent.objects.get(pk=event.pk).status == Stored.APPLIED


def test_a_resent_first_delivery_is_applied_not_taken_for_a_duplicate():
    order = make_order()

    stored = receive(is_resent=True)

    assert stored.status == Stored.APPLIED
    assert status_of(order) == Status.APPROVED


def test_an_event_for_an_already_reached_status_is_ignored():
    make_order(status=Status.CANCELLED)

    stored = receive("order.cancelled")

    assert stored.status == Stored.IGNORED
    assert stored.error == "order is already cancelled"


# --- finding the order ---


def test_an_order_known_only_by_our_id_learns_flexcharges_id():
    order = make_order(order_session_key=None)

    stored = receive(order_id="fc-new")

    order.refresh_from_db()
    assert order.order_session_key == "fc-new"
    assert order.status == Status.APPROVED
    assert stored.order == order


def test_an_order_is_found_by_flexcharges_id_whatever_external_id_says():
    order = make_order()

    receive(external_order_id="something-else")

    assert status_of(order) == Status.APPROVED


def test_an_order_id_contradicting_the_known_flexcharge_id_changes_nothing():
    order = make_order()

    stored = receive(order_id="fc-other")

    assert stored.status == Stored.IGNORED
    assert "differs" in stored.error
    order.refresh_from_db()
    assert (order.status, order.order_session_key) == (Status.PENDING, "fc-0001")


def test_an_unknown_order_is_stored_as_ignored():
    stored = receive(order_id="fc-x", external_order_id="INV-x")

    assert stored.status == Stored.IGNORED
    assert stored.order is None
    assert "no order matches" in stored.error


def test_an_event_the_app_does_not_act_on_is_linked_to_its_order():
    order = make_order()

    stored = receive("payment.chargeback.received", event_data={"Amount": 19.99})

    assert (stored.status, stored.order) == (Stored.IGNORED, order)
    assert status_of(order) == Status.PENDING


# --- refunds ---


def refund(order: FlexChargeOrder, event_data=None, **kwargs) -> WebhookEvent:
    return receive("order.refunded", event_data=event_data, **kwargs)


@pytest.fixture
def sync_tasks(monkeypatch) -> list[int]:
    """The orders whose refunded total a webhook asked a task to read (enqueued on commit)."""
    enqueued: list[int] = []
    monkeypatch.setattr(
        webhooks, "enqueue_on_commit", lambda task, pk, **kw: enqueued.append((task.name, pk))
    )
    return enqueued


def assert_unknown(order: FlexChargeOrder, status: str, at_least: int, sync_tasks) -> None:
    order.refresh_from_db()
    assert (order.status, order.refunded_amount, order.refunded_amount_unknown) == (
        status,
        at_least,
        True,
    )
    assert sync_tasks[-1] == ("sync_refunded_total", order.pk)


def test_a_refund_without_amounts_is_recorded_as_an_unknown_amount(
    sync_tasks, signal_log, django_capture_on_commit_callbacks
):
    # E.g. a partial refund made in FlexCharge's portal: never invent "in full".
    order = make_order(status=Status.APPROVED)

    with django_capture_on_commit_callbacks(execute=True):
        stored = refund(order)

    assert stored.status == Stored.APPLIED
    assert_unknown(order, Status.PARTIALLY_REFUNDED, 0, sync_tasks)
    assert signal_log.names() == ["order_status_changed", "order_refunded"]


def test_the_emulators_refund_shape_is_read(sync_tasks):
    order = make_order(status=Status.APPROVED)

    refund(order, {"RefundAmount": 19.99, "TotalRefundedAmount": 19.99, "Currency": "USD"})

    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.REFUNDED, 1999)
    assert (order.refunded_amount_unknown, sync_tasks) == (False, [])


def test_a_smaller_total_is_a_partial_refund(signal_log, django_capture_on_commit_callbacks):
    order = make_order(status=Status.APPROVED)

    with django_capture_on_commit_callbacks(execute=True):
        refund(order, {"totalRefundedAmount": "5.00"})

    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 500)
    assert signal_log.names() == ["order_status_changed", "order_refunded"]


def test_a_further_partial_refund_raises_the_amount_without_a_status_signal(
    signal_log, django_capture_on_commit_callbacks
):
    order = make_order(status=Status.PARTIALLY_REFUNDED, refunded_amount=500)

    with django_capture_on_commit_callbacks(execute=True):
        stored = refund(order, {"TotalRefundedAmount": 12})

    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 1200)
    assert stored.status == Stored.APPLIED
    assert signal_log.calls == []


def test_two_partial_refunds_at_different_times_are_both_applied():
    order = make_order(status=Status.APPROVED)

    first = refund(order, {"TotalRefundedAmount": 5}, timestamp=T0)
    second = refund(order, {"TotalRefundedAmount": 19.99}, timestamp=T0 + dt.timedelta(hours=1))

    assert (first.status, second.status) == (Stored.APPLIED, Stored.APPLIED)
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.REFUNDED, 1999)


def test_a_total_settles_an_unknown_amount(sync_tasks):
    order = make_order(
        status=Status.PARTIALLY_REFUNDED, refunded_amount=500, refunded_amount_unknown=True
    )

    stored = refund(order, {"TotalRefundedAmount": 5})

    assert stored.status == Stored.APPLIED
    order.refresh_from_db()
    assert (order.refunded_amount, order.refunded_amount_unknown) == (500, False)
    assert sync_tasks == []


def test_a_single_refund_amount_is_a_lower_bound_of_an_unknown_total(sync_tasks):
    # Whether this 5.00 is the 7.00 already counted or a further refund, only FlexCharge knows.
    order = make_order(status=Status.PARTIALLY_REFUNDED, refunded_amount=700)

    stored = refund(order, {"RefundAmount": 5})

    assert stored.status == Stored.APPLIED
    assert_unknown(order, Status.PARTIALLY_REFUNDED, 700, sync_tasks)


def test_an_empty_currency_in_refund_data_is_no_currency():
    order = make_order(status=Status.APPROVED)

    refund(order, {"TotalRefundedAmount": 5, "Currency": ""})

    order.refresh_from_db()
    assert order.refunded_amount == 500


def test_refund_amounts_use_the_currency_exponent():
    order = make_order(status=Status.APPROVED, amount=1000, currency="JPY")

    refund(order, {"TotalRefundedAmount": 400, "Currency": "jpy"})

    order.refresh_from_db()
    assert order.refunded_amount == 400


@pytest.mark.parametrize(
    "event_data",
    [
        "5.00",
        [5],
        {"TotalRefundedAmount": "abc"},
        {"TotalRefundedAmount": True},
        {"TotalRefundedAmount": -5},
        {"TotalRefundedAmount": 0},
        {"TotalRefundedAmount": "1e999999999"},
        {"TotalRefundedAmount": "NaN"},
        {"TotalRefundedAmount": 1.234},
        {"TotalRefundedAmount": {"value": 5}},
        {"TotalRefundedAmount": 5, "Currency": "EUR"},
    ],
    ids=repr,
)
def test_refund_data_the_app_cannot_read_means_an_unknown_amount(event_data, sync_tasks):
    order = make_order(status=Status.APPROVED)

    stored = refund(order, event_data)

    assert stored.status == Stored.APPLIED
    assert_unknown(order, Status.PARTIALLY_REFUNDED, 0, sync_tasks)


def test_a_total_above_the_amount_is_a_full_refund(sync_tasks):
    order = make_order(status=Status.APPROVED)

    refund(order, {"TotalRefundedAmount": 500})

    order.refresh_from_db()
    assert (order.status, order.refunded_amount, order.refunded_amount_unknown) == (
        Status.REFUNDED,
        1999,
        False,
    )


def test_a_single_amount_covering_the_order_is_a_full_refund(sync_tasks):
    order = make_order(status=Status.APPROVED, amount=10000)

    refund(order, {"RefundAmount": 100})

    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.REFUNDED, 10000)
    assert (order.refunded_amount_unknown, sync_tasks) == (False, [])


def test_a_redelivered_refund_is_a_duplicate_not_a_second_refund(sync_tasks):
    order = make_order(status=Status.APPROVED, amount=10000)
    refund(order, {"TotalRefundedAmount": 30}, timestamp=T0)
    refund(order, {"TotalRefundedAmount": 50}, timestamp=T0 + dt.timedelta(hours=1))

    again = refund(
        order, {"TotalRefundedAmount": 50}, timestamp=T0 + dt.timedelta(hours=1), is_resent=True
    )

    assert again.status == Stored.DUPLICATE
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 5000)


def test_the_webhook_of_an_api_refund_already_recorded_keeps_the_amount(sync_tasks):
    # refund_order() recorded 30.00; FlexCharge's order.refunded for it says no amount.
    order = make_order(status=Status.PARTIALLY_REFUNDED, amount=10000, refunded_amount=3000)
    Refund.objects.create(order=order, amount=3000, currency="USD", outcome="succeeded")

    stored = refund(order, {})

    assert stored.status == Stored.APPLIED
    assert_unknown(order, Status.PARTIALLY_REFUNDED, 3000, sync_tasks)


def test_refund_totals_do_not_depend_on_pruned_events(sync_tasks):
    # Totals once summed the single amounts of stored events, which flexcharge_prune deletes.
    order = make_order(status=Status.APPROVED, amount=10000)
    refund(order, {"TotalRefundedAmount": 10}, timestamp=T0)
    WebhookEvent.objects.all().delete()

    refund(order, {"TotalRefundedAmount": 20}, timestamp=T0 + dt.timedelta(hours=1))

    order.refresh_from_db()
    assert order.refunded_amount == 2000


@pytest.mark.parametrize("before", [Status.PENDING, Status.QUEUED])
def test_a_refund_of_an_order_whose_completion_was_lost_approves_then_refunds_it(
    before, signal_log, django_capture_on_commit_callbacks
):
    # Queued with an attempt made: /evaluate went out, its answer was lost.
    order = make_order(status=before, attempts=1)

    with django_capture_on_commit_callbacks(execute=True):
        stored = refund(
            order, {"TotalRefundedAmount": 19.99}, timestamp=T0, confirmation_id="22ACD1D9"
        )

    assert (stored.status, stored.order) == (Stored.APPLIED, order)
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.REFUNDED, 1999)
    assert (order.last_event_at, order.confirmation_id) == (T0, "22ACD1D9")
    assert order.resolved_at is not None
    assert signal_log.names() == [
        "order_status_changed",
        "order_approved",
        "order_status_changed",
        "order_refunded",
    ]
    changes = [kwargs for name, _, kwargs in signal_log.calls if name == "order_status_changed"]
    assert [c["previous_status"] for c in changes] == [before, Status.APPROVED]
    assert [c["order"].status for c in changes] == [Status.APPROVED, Status.REFUNDED]
    assert all(kwargs["event"] == stored for _, _, kwargs in signal_log.calls)


def test_a_partial_refund_of_a_pending_order_approves_it_first():
    order = make_order(status=Status.PENDING, amount=10000)

    refund(order, {"RefundAmount": 25})

    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 2500)


def test_approve_then_refund_is_one_transaction(monkeypatch):
    order = make_order(status=Status.PENDING)
    real = order_state.transition

    def approve_then_fail(target, new_status, **kwargs):
        if new_status == Status.APPROVED:
            return real(target, new_status, **kwargs)
        raise RuntimeError("lost connection")

    monkeypatch.setattr(order_state, "transition", approve_then_fail)
    with pytest.raises(RuntimeError):
        refund(order)

    assert status_of(order) == Status.PENDING
    assert WebhookEvent.objects.get().status == Stored.FAILED


@pytest.mark.parametrize("terminal", [Status.EXPIRED, Status.CANCELLED, Status.DECLINED])
def test_a_refund_of_a_terminal_order_still_changes_nothing(terminal):
    order = make_order(status=terminal)

    stored = refund(order)

    assert stored.status == Stored.IGNORED
    assert status_of(order) == terminal


# --- parsing ---


def test_field_names_are_matched_ignoring_case():
    payload = parse_payload(
        b'{"event":"order.completed","orderId":"fc-1","EXTERNALORDERID":"INV-1","isTestMode":true}'
    )

    assert (payload.event, payload.order_id, payload.external_order_id) == (
        "order.completed",
        "fc-1",
        "INV-1",
    )


def test_a_byte_order_mark_and_dotnet_timestamps_are_accepted():
    payload = parse_payload(
        '\ufeff{"Event":"order.expired","OrderId":"fc-1","ExternalOrderId":"INV-1",'
        '"TimeStamp":"2023-03-20T17:16:40.8987031Z"}'.encode()
    )

    assert payload.timestamp == dt.datetime(2023, 3, 20, 17, 16, 40, 898703, tzinfo=dt.UTC)


def test_a_timestamp_without_zone_is_utc_and_missing_flags_are_tolerated():
    payload = parse_payload(
        b'{"Event":"order.expired","OrderId":"fc-1","ExternalOrderId":"INV-1",'
        b'"TimeStamp":"2024-06-01T12:00:00"}'
    )

    assert payload.timestamp == dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
    assert (payload.is_test_mode, payload.is_resent) == (None, False)


def test_one_of_the_two_order_ids_is_enough():
    payload = parse_payload(b'{"Event":"order.expired","OrderId":null,"ExternalOrderId":"INV-1"}')

    assert (payload.order_id, payload.external_order_id) == ("", "INV-1")


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        (b'{"Event":"order.refunded","ExternalOrderId":"INV-1"}', ("", "INV-1")),
        (b'{"Event":"order.completed","OrderId":"fc-1"}', ("fc-1", "")),
    ],
)
def test_either_order_id_may_be_absent(body, ids):
    payload = parse_payload(body)

    assert (payload.order_id, payload.external_order_id) == ids


@pytest.mark.parametrize(
    "body",
    [
        b'{"Event":"order.completed"}',
        b'{"Event":"order.expired","OrderId":"","ExternalOrderId":null}',
    ],
)
def test_an_order_event_needs_one_of_the_two_ids(body):
    with pytest.raises(PayloadError, match="OrderId and ExternalOrderId are both missing or empty"):
        parse_payload(body)


def test_a_payload_error_names_the_field():
    with pytest.raises(PayloadError, match="OrderId must be a string"):
        parse_payload(b'{"Event":"order.expired","OrderId":1,"ExternalOrderId":"INV-1"}')


# --- the pipeline's refusals ---


@pytest.mark.parametrize(
    ("host", "forms"),
    [
        ("testserver", ["testserver"]),
        ("testserver:8000", ["testserver:8000", "testserver"]),
        ("127.0.0.1:8000", ["127.0.0.1:8000", "127.0.0.1"]),
        ("[::1]:8000", ["[::1]:8000", "[::1]", "::1"]),
        ("[::1]", ["[::1]", "::1"]),
        ("::1", ["::1"]),
        ("host:", ["host:"]),
        ("host:abc", ["host:abc"]),
    ],
)
def test_the_host_forms_a_delivery_may_be_signed_for(host, forms):
    assert webhooks.signed_hosts(host) == forms


def test_a_delivery_signed_for_the_host_without_its_port_verifies():
    body = b'{"Event":"order.completed","OrderId":"fc-1","ExternalOrderId":"INV-1"}'
    key = conf.WEBHOOK_SUBSCRIBER_KEYS[0]

    for signed, seen in [
        ("testserver", "testserver:8000"),
        ("testserver:8000", "testserver:8000"),
        ("::1", "[::1]:8000"),
        ("[::1]", "[::1]:8000"),
    ]:
        headers = sign_headers(key, signed, body)
        assert webhooks.verify_delivery(body, headers, seen) == headers["x-fc-nonce"]


@pytest.mark.parametrize(
    ("signed", "seen"),
    [("testserver:8000", "testserver"), ("testserver:8000", "testserver:8001"), ("x", "y:80")],
)
def test_a_delivery_signed_for_another_host_or_port_is_refused(signed, seen):
    body = b'{"Event":"order.completed","OrderId":"fc-1","ExternalOrderId":"INV-1"}'
    headers = sign_headers(conf.WEBHOOK_SUBSCRIBER_KEYS[0], signed, body)

    with pytest.raises(FlexChargeWebhookError) as caught:
        webhooks.verify_delivery(body, headers, seen)

    assert caught.value.status_code == 401


def test_a_zero_tolerance_accepts_any_date_and_the_default_is_300(settings):
    body = b'{"Event":"order.completed","OrderId":"fc-1","ExternalOrderId":"INV-1"}'
    headers = sign_headers(
        conf.WEBHOOK_SUBSCRIBER_KEYS[0], "testserver", body, date="Mon, 20 Mar 2023 17:16:40 GMT"
    )
    assert conf.WEBHOOK_TOLERANCE == 300
    with pytest.raises(FlexChargeWebhookError):
        webhooks.verify_delivery(body, headers, "testserver")

    settings.FLEXCHARGE_WEBHOOK_TOLERANCE = 0

    assert webhooks.verify_delivery(body, headers, "testserver") == headers["x-fc-nonce"]


def test_an_oversized_body_is_refused_whatever_content_length_said(settings):
    settings.FLEXCHARGE_WEBHOOK_MAX_BODY = 50
    body, headers = signed_webhook("order.completed", order_id="fc-1", external_order_id="INV-1")

    with pytest.raises(FlexChargeWebhookError) as caught:
        webhooks.receive(body, headers, "testserver")

    assert caught.value.status_code == 413


def test_an_overlong_nonce_is_refused():
    body = b'{"Event":"order.completed","OrderId":"fc-1","ExternalOrderId":"INV-1"}'
    headers = sign_headers(conf.WEBHOOK_SUBSCRIBER_KEYS[0], "testserver", body, nonce="n" * 65)

    with pytest.raises(FlexChargeWebhookError) as caught:
        webhooks.receive(body, headers, "testserver")

    assert caught.value.status_code == 401
    assert not WebhookEvent.objects.exists()


def test_an_unreadable_signed_date_is_refused():
    body = b'{"Event":"order.completed","OrderId":"fc-1","ExternalOrderId":"INV-1"}'
    headers = sign_headers(
        conf.WEBHOOK_SUBSCRIBER_KEYS[0], "testserver", body, date="yesterday at noon"
    )

    with pytest.raises(FlexChargeWebhookError) as caught:
        webhooks.receive(body, headers, "testserver")

    assert caught.value.status_code == 401


def test_a_nonce_stored_by_a_racing_delivery_is_refused_at_insert():
    WebhookEvent.objects.create(nonce="n-1", body="{}")
    payload = parse_payload(b'{"Event":"order.expired","OrderId":"fc-1","ExternalOrderId":"I"}')

    with pytest.raises(FlexChargeWebhookError) as caught:
        webhooks.store_event("n-1", b"{}", payload, "")

    assert caught.value.status_code == 401
    assert WebhookEvent.objects.count() == 1


# --- failures and re-apply ---


def failing_delivery(monkeypatch, **kwargs) -> WebhookEvent:
    def broken(*args, **kwargs):
        raise RuntimeError("deadlock detected")

    with monkeypatch.context() as patch:
        patch.setattr(order_state, "transition", broken)
        with pytest.raises(RuntimeError):
            receive(**kwargs)
    return WebhookEvent.objects.get()


def test_our_failure_keeps_the_row_as_failed_and_the_order_unchanged(monkeypatch):
    order = make_order()

    stored = failing_delivery(monkeypatch)

    assert stored.status == Stored.FAILED
    assert stored.error == "RuntimeError: deadlock detected"
    assert status_of(order) == Status.PENDING


def test_reapplying_a_failed_event_applies_it_and_records_who(
    monkeypatch, admin_user, signal_log, django_capture_on_commit_callbacks
):
    order = make_order()
    stored = failing_delivery(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True):
        result = webhooks.reapply_event(stored, admin_user)

    assert (result.status, result.error) == (Stored.APPLIED, "")
    assert result.reapplied_by == admin_user
    assert result.reapplied_at is not None
    assert status_of(order) == Status.APPROVED
    assert signal_log.names() == ["order_status_changed", "order_approved"]


def test_reapplying_an_applied_event_changes_nothing(admin_user):
    make_order()
    stored = receive()

    result = webhooks.reapply_event(stored, admin_user)

    assert result.status == Stored.APPLIED
    assert result.reapplied_by is None


def test_an_event_for_an_order_created_later_applies_when_reapplied():
    early = receive(order_id="fc-9", external_order_id="INV-9")
    order = make_order(order_id="INV-9", order_session_key=None)

    result = webhooks.reapply_event(early, AnonymousUser())

    assert result.status == Stored.APPLIED
    assert result.reapplied_by is None
    order.refresh_from_db()
    assert (order.status, order.order_session_key) == (Status.APPROVED, "fc-9")


def test_reapplying_a_bad_body_stores_why_and_does_not_raise(admin_user):
    stored = WebhookEvent.objects.create(nonce="n-2", body="not json", status=Stored.FAILED)

    result = webhooks.reapply_event(stored, admin_user)

    assert (result.status, result.error) == (Stored.FAILED, "body is not JSON")


def test_events_refused_for_test_mode_apply_once_the_setting_is_fixed(settings, admin_user):
    settings.FLEXCHARGE_TEST_MODE = False
    order = make_order()
    with pytest.raises(FlexChargeWebhookError):
        receive(is_test_mode=True)
    refused = WebhookEvent.objects.get()
    assert refused.status == Stored.FAILED

    settings.FLEXCHARGE_TEST_MODE = True
    result = webhooks.reapply_event(refused, admin_user)

    assert result.status == Stored.APPLIED
    assert status_of(order) == Status.APPROVED


def test_reapplying_when_applying_fails_again_reports_the_error(monkeypatch, admin_user):
    make_order()
    stored = failing_delivery(monkeypatch)
    monkeypatch.setattr(order_state, "transition", lambda *a, **k: 1 / 0)

    result = webhooks.reapply_event(stored, admin_user)

    assert result.status == Stored.FAILED
    assert result.error.startswith("ZeroDivisionError")


@pytest.mark.django_db(transaction=True)
def test_a_failing_signal_receiver_does_not_undo_or_fail_the_applied_event():
    order = make_order()

    def receiver(**kwargs):
        raise ValueError("host bug")

    signals.order_approved.connect(receiver, weak=False)
    try:
        stored = receive()
    finally:
        signals.order_approved.disconnect(receiver)

    assert stored.status == Stored.APPLIED
    assert "signal receiver failed: ValueError: host bug" in stored.error
    stored.refresh_from_db()
    assert stored.status == Stored.APPLIED
    assert status_of(order) == Status.APPROVED


# --- one transaction: the conditional UPDATE and the careful way ---


@pytest.mark.django_db(transaction=True)
def test_a_first_delivery_is_one_transaction_of_five_statements_with_begin_and_commit(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for n in range(50):
        make_order(order_id=f"INV-{n}", order_session_key=f"fc-{n}")
    order = make_order()

    with CaptureQueriesContext(connection) as queries:
        response = post_webhook(client, order_id="fc-0001", external_order_id="INV-1001")

    assert response.json()["status"] == "applied"
    assert status_of(order) == Status.APPROVED
    # Django logs BEGIN and COMMIT on both databases (BEGIN IMMEDIATE on SQLite).
    sql = [q["sql"].split()[0] for q in queries.captured_queries]
    assert sql == ["BEGIN", *FIRST_DELIVERY[connection.vendor], "COMMIT"]
    assert len(sql) <= 5


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_update_rolls_it_back_and_keeps_the_event_with_its_error(
    client, monkeypatch, signal_log
):
    from django.db import DatabaseError

    order = make_order()
    body, headers = signed_webhook(
        "order.completed", order_id="fc-0001", external_order_id="INV-1001"
    )

    def deliver():
        return client.post(
            "/flexcharge/webhook/", data=body, content_type="text/plain", **meta_headers(headers)
        )

    def lost(*args):
        raise DatabaseError("connection lost")

    with monkeypatch.context() as patch:
        # After the order's UPDATE and the event's INSERT (and, on PostgreSQL, its history row).
        patch.setattr(order_state, "_instance", lost)
        response = deliver()

    assert response.status_code == 500
    kept = WebhookEvent.objects.get()
    assert (kept.status, kept.error) == (Stored.FAILED, "DatabaseError: connection lost")
    assert kept.order is None
    order.refresh_from_db()
    assert (order.status, order.resolved_at, order.last_event_at) == (Status.PENDING, None, None)
    assert not StatusChange.objects.exists()
    assert signal_log.calls == []

    # FlexCharge redelivers after our 500: applied once, signalled once.
    assert deliver().json()["status"] == "applied"
    assert deliver().json()["status"] == "duplicate"
    assert status_of(order) == Status.APPROVED
    assert WebhookEvent.objects.get().status == Stored.APPLIED
    assert StatusChange.objects.count() == 1
    assert signal_log.names() == ["order_status_changed", "order_approved"]


def webhook_outcome(
    order: FlexChargeOrder, event: str, signal_log, capture, **delivery
) -> dict[str, object]:
    """Deliver ``event`` to ``order``; what it did to the rows, the history and the signals."""
    signal_log.calls.clear()
    with capture(execute=True):
        stored = receive(
            event,
            order_id=order.order_session_key,
            external_order_id=order.order_id,
            **delivery,
        )
    order.refresh_from_db()
    skip = {"id", "order_id", "order_session_key", "idempotency_key", "request_payload"}
    skip |= {"created", "updated", "declined_at", "resolved_at"}
    row = {f.name: getattr(order, f.attname) for f in order._meta.concrete_fields}
    history = [
        (
            c.previous,
            c.status,
            c.cause,
            c.event_id == stored.pk,
            abs(c.at - order.updated).total_seconds() < 5,
        )
        for c in StatusChange.objects.filter(order=order)
    ]
    return {
        "order": {k: v for k, v in row.items() if k not in skip},
        "resolved": order.resolved_at is not None and order.resolved_at <= order.updated,
        "event": (stored.status, stored.error, stored.order_id == order.pk),
        "history": history,
        "signals": [
            (
                name,
                kwargs["order"].status,
                kwargs["order"].pk == order.pk,
                kwargs["event"] == stored,
            )
            for name, _, kwargs in signal_log.calls
        ],
    }


@pytest.mark.parametrize("event", ["order.completed", "order.expired", "order.cancelled"])
@pytest.mark.parametrize("before", Status.values)
@pytest.mark.parametrize("last_event", ["none", "earlier", "later"])
def test_the_conditional_update_and_the_careful_way_do_the_same(
    event, before, last_event, monkeypatch, signal_log, django_capture_on_commit_callbacks
):
    last = {
        "none": None,
        "earlier": T0 - dt.timedelta(minutes=1),
        "later": T0 + dt.timedelta(seconds=1),
    }
    orders = [
        make_order(
            order_id=f"INV-{way}",
            order_session_key=f"fc-{way}",
            status=before,
            attempts=1,
            last_event_at=last[last_event],
        )
        for way in ("fast", "careful")
    ]
    taken = []
    real = order_state.change_held

    def spy(*args, **kwargs):
        change = real(*args, **kwargs)
        taken.append(change is not None)
        return change

    delivery = {"timestamp": T0, "confirmation_id": "C0NF1RM"}
    monkeypatch.setattr(order_state, "change_held", spy)
    fast = webhook_outcome(
        orders[0], event, signal_log, django_capture_on_commit_callbacks, **delivery
    )
    monkeypatch.setattr(order_state, "change_held", lambda *a, **k: None)
    careful = webhook_outcome(
        orders[1], event, signal_log, django_capture_on_commit_callbacks, **delivery
    )

    assert fast == careful
    # The conditional UPDATE took exactly the cases the table allows from pending.
    assert taken == [before == Status.PENDING and last_event != "later"]
