"""An /evaluate whose answer was lost: an error answer to the retry proves nothing.

FlexCharge's replay behaviour for /evaluate is undocumented. A 409 (or another
4xx that is not a field-validation 400) to a retry may mean "I have that order
already": the order is kept pending (the host must not charge it again) and
looked up by our order id (GET /orders?query=). Giving up after the same-day
window cancels by our id first; a refused cancel ("COMPLETED") means FlexCharge
may have charged it, so it stays pending too, and sync or a webhook approves it.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import requests
import responses
from django.core.management import call_command
from django.utils import timezone

from django_flexcharge.evaluation_errors import proves_refusal
from django_flexcharge.evaluations import send_evaluation
from django_flexcharge.exceptions import FlexChargeAPIError, FlexChargeConflict
from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.services import (
    cancel_order,
    evaluate_declined_payment,
    is_under_rescue,
    sync_order,
)
from tests.conftest import API, calls_to, make_payment
from tests.factories import make_due, make_order, make_vaulted

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
EXTERNAL_CANCEL = API + "orders/INV-100045/external-cancel"


@pytest.fixture
def queued(payer, billing, subscription, django_capture_on_commit_callbacks) -> FlexChargeOrder:
    with django_capture_on_commit_callbacks(execute=False):
        return evaluate_declined_payment(
            make_payment(),
            card=make_vaulted(),
            payer=payer,
            billing=billing,
            subscription=subscription,
        )


def lose_the_first_answer(mocked, then: dict) -> None:
    """First /evaluate times out (FlexCharge may have created the order), then ``then``."""
    mocked.add(responses.POST, API + "evaluate", body=requests.exceptions.ReadTimeout())
    mocked.add(responses.POST, API + "evaluate", **then)


def listed(*items: dict) -> dict:
    return {"results": list(items), "pageNumber": 1, "pageSize": 50, "totalItemCount": len(items)}


def remote(status: int, name: str, external: str = "INV-100045", ident: str = "fc-9") -> dict:
    return {"id": ident, "status": status, "statusName": name, "externalOrderId": external}


def retry(queued: FlexChargeOrder) -> str:
    assert send_evaluation(queued.pk) == "retry"
    make_due(queued)
    return send_evaluation(queued.pk)


# --- a 409 or other 4xx to a retry ---


def test_a_409_to_a_retry_keeps_the_order_pending_and_finds_it_by_our_order_id(
    mocked, queued, signal_log, django_capture_on_commit_callbacks
):
    lose_the_first_answer(mocked, {"status": 409, "json": {"responseMessage": "key used"}})
    mocked.add(responses.GET, API + "orders", json=listed(remote(4, "PROCESSING")))
    mocked.add(responses.GET, API + "orders/fc-9", json=remote(4, "PROCESSING"))

    with django_capture_on_commit_callbacks(execute=True):
        outcome = retry(queued)

    assert outcome == Status.PENDING
    queued.refresh_from_db()
    assert (queued.status, queued.order_session_key) == (Status.PENDING, "fc-9")
    assert "FlexCharge answered a retry" in queued.last_error
    assert queued.expiry_date is not None
    assert is_under_rescue(queued.order_id)
    assert "order_declined" not in signal_log.names()
    [lookup] = [
        c.request for c in mocked.calls if c.request.method == "GET" and "query" in c.request.url
    ]
    assert "query=INV-100045" in lookup.url


def test_a_409_to_a_retry_flexcharge_does_not_list_stays_pending_for_sync(mocked, queued):
    lose_the_first_answer(mocked, {"status": 409, "json": {}})
    mocked.add(responses.GET, API + "orders", json=listed(remote(7, "COMPLETED", "INV-other")))

    assert retry(queued) == "unconfirmed"

    queued.refresh_from_db()
    assert (queued.status, queued.order_session_key) == (Status.PENDING, None)
    assert is_under_rescue(queued.order_id)
    assert calls_to(mocked, "evaluate") == 2


def test_a_409_to_a_retry_is_kept_pending_even_when_the_lookup_fails(mocked, queued):
    lose_the_first_answer(mocked, {"status": 409, "json": {}})
    mocked.add(responses.GET, API + "orders", status=503, json={})

    assert retry(queued) == "unconfirmed"

    queued.refresh_from_db()
    assert queued.status == Status.PENDING


def test_a_409_to_a_retry_of_an_order_flexcharge_approved_approves_it(
    mocked, queued, signal_log, django_capture_on_commit_callbacks
):
    lose_the_first_answer(mocked, {"status": 422, "json": {"title": "Unprocessable"}})
    mocked.add(responses.GET, API + "orders", json=listed(remote(7, "COMPLETED")))
    mocked.add(responses.GET, API + "orders/fc-9", json=remote(7, "COMPLETED"))

    with django_capture_on_commit_callbacks(execute=True):
        assert retry(queued) == Status.APPROVED

    assert "order_approved" in signal_log.names()


def test_a_field_validation_400_to_a_retry_still_fails_the_order(mocked, queued):
    body = {"TraceId": ["00-ab-cd-01"], "Transaction.Id": ["The Id field is required."]}
    lose_the_first_answer(mocked, {"status": 400, "json": body})

    assert retry(queued) == "failed"

    queued.refresh_from_db()
    assert queued.status == Status.FAILED
    assert calls_to(mocked, "orders") == 0


def test_an_idempotency_key_400_to_a_retry_is_a_replay_answer_not_a_refusal(mocked, queued):
    body = {"IdempotencyKey": ["The IdempotencyKey was already used."]}
    lose_the_first_answer(mocked, {"status": 400, "json": body})
    mocked.add(responses.GET, API + "orders", json=listed())

    assert retry(queued) == "unconfirmed"
    queued.refresh_from_db()
    assert queued.status == Status.PENDING


def test_a_409_to_a_first_attempt_fails_the_order(mocked, queued):
    mocked.add(responses.POST, API + "evaluate", status=409, json={})

    assert send_evaluation(queued.pk) == "failed"


@pytest.mark.parametrize(
    ("error", "proves"),
    [
        (FlexChargeAPIError("x", status=400, errors={"OrderId": ["required"]}), True),
        (FlexChargeAPIError("x", status=400, errors={}), False),
        (FlexChargeAPIError("x", status=400, errors={"IdempotencyKey": ["used"]}), False),
        (FlexChargeConflict("x", status=409, errors={"OrderId": ["dup"]}), False),
        (FlexChargeAPIError("x", status=403), False),
        (FlexChargeAPIError("x", status=200, errors={"7": ["MIT off"]}), False),
    ],
)
def test_only_a_field_validation_400_proves_a_refusal(error, proves):
    assert proves_refusal(error) is proves


# --- giving up at the end of the window (issue 13 item 6) ---


def give_up(mocked, queued, **cancel) -> str:
    mocked.add(responses.POST, API + "evaluate", body=requests.exceptions.ReadTimeout())
    mocked.add(responses.POST, EXTERNAL_CANCEL, **cancel)
    assert send_evaluation(queued.pk) == "retry"
    late = timezone.now() - timedelta(hours=25)
    FlexChargeOrder.objects.filter(pk=queued.pk).update(declined_at=late, next_attempt_at=None)
    return send_evaluation(queued.pk)


def test_a_cancel_refused_as_completed_keeps_the_order_and_sync_approves_it(
    mocked, queued, signal_log, django_capture_on_commit_callbacks
):
    refused = {"success": False, "status": "FAILED", "errors": [], "responseMessage": ""}
    refused["errors"] = [{"item1": "Order in status COMPLETED cannot be cancelled", "item2": "400"}]
    mocked.add(responses.GET, API + "orders", json=listed(remote(7, "COMPLETED")))
    mocked.add(responses.GET, API + "orders/fc-9", json=remote(7, "COMPLETED"))

    with django_capture_on_commit_callbacks(execute=True):
        outcome = give_up(mocked, queued, status=400, json=refused)

    assert outcome == Status.APPROVED
    queued.refresh_from_db()
    assert (queued.status, queued.order_session_key) == (Status.APPROVED, "fc-9")
    changes = [kw for name, _, kw in signal_log.calls if name == "order_status_changed"]
    assert [c["previous_status"] for c in changes] == [Status.QUEUED, Status.PENDING]
    assert signal_log.names()[-1] == "order_approved"


def test_a_cancel_refused_while_flexcharge_cannot_be_asked_keeps_it_pending(mocked, queued):
    mocked.add(responses.GET, API + "orders", body=requests.exceptions.ConnectionError())

    outcome = give_up(mocked, queued, status=400, json={"title": "COMPLETED"})

    assert outcome == "unconfirmed"
    queued.refresh_from_db()
    assert queued.status == Status.PENDING
    assert is_under_rescue(queued.order_id)


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 404, "json": {}},
        {"status": 400, "json": {"title": "Order not found"}},
        {"status": 200, "json": {"success": False, "status": "NOTFOUND", "errors": []}},
        {"status": 400, "json": {"errors": {"OrderId": ["Order does not exist"]}}},
    ],
    ids=["404", "400-not-found", "200-NOTFOUND", "400-does-not-exist"],
)
def test_a_cancel_answered_not_found_in_any_form_fails_the_order(mocked, queued, answer):
    assert give_up(mocked, queued, **answer) == "failed"
    queued.refresh_from_db()
    assert queued.status == Status.FAILED
    assert not is_under_rescue(queued.order_id)


def test_a_cancel_flexcharge_accepts_fails_the_order(mocked, queued):
    assert give_up(mocked, queued, json={}) == "failed"


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 400, "json": {"title": "Order not found"}},
        {"status": 200, "json": {"success": False, "status": "NOTFOUND", "errors": []}},
    ],
)
def test_cancelling_a_queued_order_treats_other_not_found_answers_like_404(mocked, answer):
    order = make_order(status=Status.QUEUED, session_key=None, attempts=2)
    mocked.add(responses.POST, API + "orders/INV-1/external-cancel", **answer)

    assert cancel_order(order).status == Status.CANCELLED


def test_a_refused_cancel_of_a_queued_order_is_not_mistaken_for_not_found(mocked):
    order = make_order(status=Status.QUEUED, session_key=None, attempts=2)
    mocked.add(
        responses.POST,
        API + "orders/INV-1/external-cancel",
        status=400,
        json={"title": "COMPLETED"},
    )

    with pytest.raises(FlexChargeAPIError):
        cancel_order(order)
    order.refresh_from_db()
    assert order.status == Status.QUEUED


# --- flexcharge_sync finds what a lost answer hid ---


def test_sync_finds_a_pending_order_without_an_id_and_applies_what_flexcharge_did(
    mocked, signal_log, django_capture_on_commit_callbacks
):
    make_order("INV-100045", Status.PENDING, session_key=None, attempts=2)
    mocked.add(responses.GET, API + "orders", json=listed(remote(7, "COMPLETED")))
    mocked.add(responses.GET, API + "orders/fc-9", json=remote(7, "COMPLETED"))
    out = StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("flexcharge_sync", stdout=out, stderr=out)

    assert "1 pending -> approved" in out.getvalue()
    order = FlexChargeOrder.objects.get()
    assert (order.status, order.order_session_key) == (Status.APPROVED, "fc-9")
    assert signal_log.names() == ["order_status_changed", "order_approved"]


def test_sync_of_a_failed_order_flexcharge_charged_approves_it(
    mocked, signal_log, django_capture_on_commit_callbacks
):
    make_order("INV-100045", Status.FAILED, session_key=None, attempts=3)
    mocked.add(responses.GET, API + "orders", json=listed(remote(7, "COMPLETED")))
    mocked.add(responses.GET, API + "orders/fc-9", json=remote(7, "COMPLETED"))
    out = StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("flexcharge_sync", "--order", "INV-100045", stdout=out, stderr=out)

    assert "1 failed -> approved" in out.getvalue()
    assert signal_log.names() == ["order_status_changed", "order_approved"]


def test_sync_ignores_listed_orders_that_are_not_exactly_ours(mocked):
    make_order("INV-1", Status.PENDING, session_key=None, attempts=2)
    mocked.add(
        responses.GET,
        API + "orders",
        json=listed(remote(7, "COMPLETED", "INV-10", "fc-a"), remote(7, "COMPLETED", "INV-11")),
    )
    out = StringIO()

    call_command("flexcharge_sync", stdout=out, stderr=out)

    assert "1 not found at FlexCharge (pending, no FlexCharge id)" in out.getvalue()
    assert FlexChargeOrder.objects.get().status == Status.PENDING
    assert calls_to(mocked, "orders/fc-a") == 0


def test_sync_does_not_take_a_flexcharge_id_another_order_holds(mocked):
    make_order("INV-other", Status.APPROVED, session_key="fc-9")
    order = make_order("INV-100045", Status.PENDING, session_key=None, attempts=2)
    mocked.add(responses.GET, API + "orders", json=listed(remote(7, "COMPLETED")))

    synced = sync_order(order)

    assert (synced.status, synced.order_session_key) == (Status.PENDING, None)
    assert synced.last_synced_at is not None
    assert calls_to(mocked, "orders/fc-9") == 0
