"""The public contract, asserted as a host that knows only the contract would use it.

Nothing here leans on the package's own test helpers for the behaviour under
test: webhooks are signed with the algorithm FlexCharge publishes (HMAC-SHA512
over ``POST\\n nonce;date;host;content-hash``), the host's settings are hostile
to a naive DRF view, and names are looked up exactly as the contract spells them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import inspect
import json
import time
import uuid
from email.utils import formatdate

import pytest
import responses as responses_lib
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import SystemCheckError
from django.template import Context, Template
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from django_flexcharge import exceptions, models, services, signals
from django_flexcharge import types as fc_types
from django_flexcharge.conf import conf
from django_flexcharge.models import FlexChargeOrder, Transmission, WebhookEvent

from .conftest import make_payment
from .factories import make_order

pytestmark = pytest.mark.django_db

KEY = "XRmKBxG5uvt1qWzqvp+T6CAbTo0MB89GTxXZD5cHA56RP7Mj4NbnHQOR1Y8uorUU9YQz8ujaVRUdm9vTSkPZSw=="
OTHER_KEY = base64.b64encode(b"another-subscriber-key-of-32-bytes!!").decode()
HOST = "testserver"


# --- a host's own FlexCharge signer (published algorithm, not the package's) ---


def fc_body(event="order.completed", *, order_id="fc-c-1", external="INV-C-1", test_mode=True):
    return json.dumps(
        {
            "Event": event,
            "TimeStamp": "2026-01-01T00:00:00.000000Z",
            "EventData": None,
            "ExternalOrderId": external,
            "OrderId": order_id,
            "ConfirmationId": "22ACD1D9",
            "IsTestMode": test_mode,
            "IsResent": False,
        },
        separators=(",", ":"),
    ).encode()


def fc_headers(body: bytes, *, key=KEY, nonce=None, date=None, host=HOST) -> dict[str, str]:
    nonce = nonce or uuid.uuid4().hex
    date = date or formatdate(time.time(), usegmt=True)
    content = base64.b64encode(hashlib.sha512(body).digest()).decode()
    to_sign = f"POST\n{nonce};{date};{host};{content}"
    mac = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha512).digest()
    return {
        "x-fc-nonce": nonce,
        "x-fc-date": date,
        "x-fc-content-sha512": content,
        "x-fc-authorization": "HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;"
        f"x-fc-content-sha512&Signature={base64.b64encode(mac).decode()}",
        "x-fc-signature": base64.b64encode(
            hmac.new(base64.b64decode(key), body, hashlib.sha512).digest()
        ).decode(),
    }


HOSTILE_REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": "1/day"},
}


@pytest.fixture
def hostile(settings):
    """A host with strict DRF defaults, LoginRequiredMiddleware and CSRF enforced."""
    settings.REST_FRAMEWORK = HOSTILE_REST_FRAMEWORK
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [KEY]
    return Client(enforce_csrf_checks=True)


def send(client, body, headers, content_type="text/plain; charset=utf-8"):
    url = reverse("django_flexcharge:webhook")
    extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    return client.post(url, data=body, content_type=content_type, **extra)


def pending(order_id="INV-C-1", session_key="fc-c-1") -> FlexChargeOrder:
    return make_order(order_id, FlexChargeOrder.Status.PENDING, session_key=session_key)


# --- §1 / §2 names and settings ---


def test_s1_the_documented_urlconf_routes_the_webhook():
    assert reverse("django_flexcharge:webhook") == "/flexcharge/webhook/"


def test_s2_defaults_of_every_setting(settings):
    for name in (
        "FLEXCHARGE_API_URL",
        "FLEXCHARGE_SENSEJS_URL",
        "FLEXCHARGE_WEBHOOK_HOST",
        "FLEXCHARGE_WEBHOOK_TOLERANCE",
        "FLEXCHARGE_MIT_EXPIRY_DAYS",
        "FLEXCHARGE_DECLINE_MAX_AGE",
        "FLEXCHARGE_TIMEOUT",
        "FLEXCHARGE_TEST_MODE",
    ):
        if hasattr(settings, name):
            delattr(settings, name)

    assert conf.API_URL == "https://api-sandbox.flex-charge.com/v1/"
    assert conf.SENSEJS_URL == "https://sensejs.flexfactor.io/widget.js"
    assert conf.WEBHOOK_HOST == ""
    assert conf.WEBHOOK_TOLERANCE == 300
    assert conf.MIT_EXPIRY_DAYS == 21
    assert conf.DECLINE_MAX_AGE == 24
    assert tuple(conf.TIMEOUT) == (3.05, 30)
    assert conf.TEST_MODE is True


@pytest.mark.parametrize(
    ("api_url", "test_mode"),
    [
        ("https://api-sandbox.flex-charge.com/v1/", True),
        ("https://api.flex-charge.com/v1/", False),
        ("https://api.flexfactor.io/v1/", False),
        ("http://127.0.0.1:8765/v1/", True),
    ],
)
def test_s2_test_mode_defaults_by_api_host(settings, api_url, test_mode):
    if hasattr(settings, "FLEXCHARGE_TEST_MODE"):
        del settings.FLEXCHARGE_TEST_MODE
    settings.FLEXCHARGE_API_URL = api_url
    assert conf.TEST_MODE is test_mode


def test_s2_settings_are_read_lazily_so_override_settings_works():
    with override_settings(FLEXCHARGE_MIT_EXPIRY_DAYS=30, FLEXCHARGE_MID="m-1"):
        assert conf.MIT_EXPIRY_DAYS == 30
        assert conf.MID == "m-1"


# --- §4 services and types ---

SIGNATURES = {
    "vault_card": "(card, *, customer=None, email='', sense_key='')",
    "transmit_approved_payment": "(payment, *, card=None, payer=None, billing=None)",
    "evaluate_declined_payment": "(payment, *, card, payer, billing, subscription=None, is_mit=True)",
    "refund_order": "(order, amount=None, *, reason='', user=None)",
    "cancel_order": "(order, *, user=None)",
    "sync_order": "(order)",
    "is_under_rescue": "(order_id)",
}


@pytest.mark.parametrize("name", SIGNATURES)
def test_s4_service_signatures_accept_the_documented_call(name):
    documented = inspect.signature(eval(f"lambda {SIGNATURES[name][1:-1]}: None"))  # noqa: S307
    actual = inspect.signature(getattr(services, name))
    for param in documented.parameters.values():
        assert param.name in actual.parameters, f"{name} lacks {param.name}"
        got = actual.parameters[param.name]
        assert got.kind == param.kind, f"{name}({param.name}) is {got.kind}, not {param.kind}"
        assert got.default == param.default, f"{name}({param.name}) default {got.default!r}"
    extra = [p for p in actual.parameters.values() if p.name not in documented.parameters]
    # Additions must not change how a documented call binds: optional and keyword-only.
    assert all(p.kind == p.KEYWORD_ONLY and p.default is not p.empty for p in extra), extra


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        ("Card", {"number", "cvv", "exp_month", "exp_year", "first_name", "last_name"}),
        (
            "Payment",
            {
                "order_id",
                "transaction_id",
                "amount",
                "currency",
                "response_code",
                "response_description",
                "processor",
                "occurred_at",
                "avs_result_code",
                "cvv_result_code",
                "cavv_result_code",
            },
        ),
        (
            "Subscription",
            {"id", "interval", "price", "currency", "payment_number", "total_payments"},
        ),
        ("Payer", set()),
        ("BillingAddress", set()),
    ],
)
def test_s4_inputs_are_dataclasses_with_the_named_fields(cls, fields):
    klass = getattr(fc_types, cls)
    assert dataclasses.is_dataclass(klass)
    assert fields <= {f.name for f in dataclasses.fields(klass)}


def test_s4_bad_input_names_the_field_before_anything_is_stored(card, payer, billing):
    with responses_lib.RequestsMock() as no_network:
        with pytest.raises(exceptions.FlexChargeValidationError, match="amount"):
            services.evaluate_declined_payment(
                make_payment(amount=-5), card=card, payer=payer, billing=billing
            )
        assert not no_network.calls
    assert not FlexChargeOrder.objects.exists()


# --- §5 signals ---

#: The vault's answer as FlexCharge documents it (card metadata under transaction.payment_method).
TOKENIZE_ANSWER = {
    "transaction": {
        "succeeded": True,
        "payment_method": {
            "token": "d3e10716-6aac-4eb8-a74d-c1a3027f1d96",
            "last_four_digits": "3184",
            "first_six_digits": "40000027",
            "card_type": None,
            "first_name": "Jane",
            "last_name": "Doe",
            "month": 9,
            "year": 2030,
            "number": None,
            "verification_value": None,
        },
    },
    "cardBinInfo": None,
    "success": True,
    "result": None,
    "status": None,
    "statusCode": None,
    "errors": [],
    "customProperties": {},
}


def test_s5_host_signals_record_the_work(card, payer, billing, mocked, api):
    mocked.add(responses_lib.POST, api + "tokenize", json=TOKENIZE_ANSWER)
    signals.payment_approved.send(sender=object, payment=make_payment("INV-A-1"))
    assert Transmission.objects.filter(order_id="INV-A-1").exists()

    signals.payment_declined.send(
        sender=object,
        payment=make_payment("INV-D-1"),
        card=card,
        payer=payer,
        billing=billing,
        is_mit=True,
    )
    assert FlexChargeOrder.objects.filter(order_id="INV-D-1").exists()


def test_s5_app_signals_once_per_real_change_after_commit_with_the_kwargs(
    hostile, django_capture_on_commit_callbacks
):
    order = pending()
    seen: list[tuple[str, dict]] = []

    def listen(name):
        def receiver(sender, **kwargs):
            seen.append((name, kwargs))

        return receiver

    receivers = {name: listen(name) for name in ("order_status_changed", "order_approved")}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    try:
        body = fc_body()
        headers = fc_headers(body)
        with django_capture_on_commit_callbacks(execute=True):
            assert send(hostile, body, headers).status_code == 200
            assert seen == []  # not before the transaction commits
        with django_capture_on_commit_callbacks(execute=True):
            assert send(hostile, body, headers).status_code == 200  # a duplicate
            other = fc_headers(body)
            assert send(hostile, body, other).status_code == 200  # same event, new nonce
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver)

    assert [name for name, _ in seen] == ["order_status_changed", "order_approved"]
    changed, approved = seen[0][1], seen[1][1]
    assert {"order", "previous_status", "event"} <= set(changed)
    assert changed["order"].pk == order.pk
    assert changed["previous_status"] == FlexChargeOrder.Status.PENDING
    assert isinstance(changed["event"], WebhookEvent)
    assert {"order", "event"} <= set(approved)


# --- §6 models ---


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("VaultedCard", {"token", "last4", "bin", "brand", "email", "customer", "created"}),
        (
            "FlexChargeOrder",
            {
                "order_id",
                "order_session_key",
                "status",
                "amount",
                "currency",
                "refunded_amount",
                "card",
                "expiry_date",
                "idempotency_key",
            },
        ),
        ("Transmission", {"payload", "status", "attempts", "last_error"}),
        ("WebhookEvent", {"event", "nonce", "body", "status", "error"}),
        ("Refund", {"order", "amount", "reason", "outcome"}),
    ],
)
def test_s6_models_carry_the_named_fields(model, fields):
    names = {f.name for f in getattr(models, model)._meta.get_fields()}
    assert fields <= names


def test_s6_order_status_values_are_exactly_the_listed_ones():
    assert list(FlexChargeOrder.Status.values) == [
        "queued",
        "pending",
        "approved",
        "declined",
        "expired",
        "cancelled",
        "refunded",
        "partially_refunded",
        "failed",
    ]


def unique(model, field: str) -> bool:
    """``field`` is unique alone, or per account (§12: each account its own ids)."""
    if model._meta.get_field(field).unique:
        return True
    together = [tuple(getattr(c, "fields", ())) for c in model._meta.constraints]
    return any(set(fields) in ({field}, {field, "account"}) for fields in together)


def test_s6_order_id_unique_and_session_key_unique_once_known():
    assert unique(FlexChargeOrder, "order_id")
    assert unique(FlexChargeOrder, "order_session_key")
    assert FlexChargeOrder._meta.get_field("order_session_key").null  # unique once known
    assert unique(models.VaultedCard, "token")
    assert unique(WebhookEvent, "nonce")
    assert models.VaultedCard._meta.get_field("customer").null


# --- §3 SenseJS tag ---


def render(text: str, **context) -> str:
    return Template("{% load flexcharge %}" + text).render(Context(context))


@pytest.mark.parametrize("unset", ["FLEXCHARGE_MID", "FLEXCHARGE_SITE_ID"])
def test_s3_without_mid_or_site_id_the_tag_renders_only_a_comment(settings, unset):
    setattr(settings, unset, "")
    html = render("{% flexcharge_sensejs order_id='INV-1' %}").strip()
    assert html.startswith("<!--")
    assert html.endswith("-->")
    assert html.count("<!--") == 1
    assert "<script" not in html


def test_s3_the_tag_escapes_values_and_carries_the_nonce():
    evil = "</script><script>alert(1)</script>"
    html = render("{% flexcharge_sensejs order_id=oid nonce=n %}", oid=evil, n='abc"x')
    assert "</script><script>alert(1)" not in html
    assert 'nonce="abc&quot;x"' in html
    assert conf.MID in html
    assert conf.SITE_ID in html


def test_s3_the_sense_key_field_is_named_flexcharge_sense_key():
    html = render("{% flexcharge_sense_key_field %}")
    assert 'name="flexcharge_sense_key"' in html
    assert 'type="hidden"' in html


# --- §7 webhook answers, through a hostile host ---


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "application/x-www-form-urlencoded", ""]
)
def test_s7_applied_under_hostile_host_settings(hostile, content_type):
    order = pending()
    body = fc_body()

    response = send(hostile, body, fc_headers(body), content_type=content_type)

    assert response.status_code == 200
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.APPROVED
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.APPLIED


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("order.completed", "approved"),
        ("order.expired", "expired"),
        ("order.cancelled", "cancelled"),
    ],
)
def test_s7_each_event_moves_the_order(hostile, event, status):
    order = pending()
    body = fc_body(event)
    assert send(hostile, body, fc_headers(body)).status_code == 200
    order.refresh_from_db()
    assert order.status == status


#: ``GET /orders/{id}`` of a refunded order as FlexCharge documents it: status 6 Returned, no amounts.
RETURNED = {"id": "fc-c-1", "status": 6, "statusName": "Returned", "currencyCode": "USD"}


def test_s7_order_refunded_ends_refunded_once_flexcharge_confirms(
    hostile, mocked, api, signal_log, django_capture_on_commit_callbacks
):
    order = make_order("INV-C-1", FlexChargeOrder.Status.APPROVED, session_key="fc-c-1")
    mocked.add(responses_lib.GET, api + "orders/fc-c-1", json=RETURNED)
    body = fc_body("order.refunded")

    with django_capture_on_commit_callbacks(execute=True):
        assert send(hostile, body, fc_headers(body)).status_code == 200

    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.REFUNDED
    assert order.refunded_amount == order.amount
    # One order_status_changed + order_refunded per real change, none repeated.
    changes = [k["previous_status"] for n, _, k in signal_log.calls if n == "order_status_changed"]
    assert len(changes) == len(set(changes)) == signal_log.names().count("order_refunded")
    assert signal_log.names()[-2:] == ["order_status_changed", "order_refunded"]


def test_s7_unknown_order_and_unknown_event_are_200_stored_as_ignored(hostile):
    pending()
    unknown_order = fc_body(order_id="fc-nope", external="INV-NOPE")
    other_event = fc_body("payout.created")

    assert send(hostile, unknown_order, fc_headers(unknown_order)).status_code == 200
    assert send(hostile, other_event, fc_headers(other_event)).status_code == 200

    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"ignored"}
    assert FlexChargeOrder.objects.get().status == FlexChargeOrder.Status.PENDING


@pytest.mark.parametrize(
    "spoil", ["no_headers", "wrong_key", "stale_date", "reused_nonce", "other_host"]
)
def test_s7_refusals_are_401_and_apply_nothing(hostile, spoil, caplog):
    order = pending()
    body = fc_body()
    if spoil == "no_headers":
        headers = {}
    elif spoil == "wrong_key":
        headers = fc_headers(body, key=OTHER_KEY)
    elif spoil == "stale_date":
        headers = fc_headers(body, date=formatdate(time.time() - 3600, usegmt=True))
    elif spoil == "other_host":
        headers = fc_headers(body, host="evil.example.com")
    else:
        pending("INV-C-2", "fc-c-2")
        first = fc_body(order_id="fc-c-2", external="INV-C-2")
        used = fc_headers(first)
        assert send(hostile, first, used).status_code == 200
        headers = fc_headers(body, nonce=used["x-fc-nonce"])

    with caplog.at_level("WARNING"):
        response = send(hostile, body, headers)

    assert response.status_code == 401
    said = {
        "no_headers": "no signature headers",
        "wrong_key": "no key matches",
        "other_host": "no key matches",
        "stale_date": "stale date",
        "reused_nonce": "reused nonce",
    }[spoil]
    assert said in response.content.decode()
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.PENDING
    assert any(r.levelname == "WARNING" for r in caplog.records)
    assert KEY not in response.content.decode()


def test_s7_a_stored_delivery_is_200_as_duplicate_whatever_its_date(hostile, settings):
    order = pending()
    body = fc_body()
    headers = fc_headers(body, date=formatdate(time.time() - 200, usegmt=True))
    assert send(hostile, body, headers).status_code == 200

    settings.FLEXCHARGE_WEBHOOK_TOLERANCE = 60  # the stored delivery's date is now stale
    again = send(hostile, body, headers)

    assert again.status_code == 200
    assert WebhookEvent.objects.count() == 1
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.APPROVED


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[1, 2]",
        json.dumps({"Event": "order.completed"}).encode(),
    ],
)
def test_s7_signed_but_unusable_body_is_400_and_applies_nothing(hostile, body):
    order = pending()
    assert send(hostile, body, fc_headers(body)).status_code == 400
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.PENDING


@pytest.mark.parametrize(("site_test_mode", "event_test_mode"), [(False, True), (True, False)])
def test_s7_test_mode_mismatch_is_400(hostile, settings, site_test_mode, event_test_mode):
    settings.FLEXCHARGE_TEST_MODE = site_test_mode
    order = pending()
    body = fc_body(test_mode=event_test_mode)
    assert send(hostile, body, fc_headers(body)).status_code == 400
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.PENDING


def test_s7_either_rotation_key_verifies(hostile, settings):
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [OTHER_KEY, KEY]
    pending()
    body = fc_body()
    assert send(hostile, body, fc_headers(body, key=KEY)).status_code == 200


def test_s7_our_failure_is_500_and_the_row_keeps_the_error(hostile, monkeypatch):
    from django_flexcharge import order_state

    def broken(*args, **kwargs):
        raise RuntimeError("db hiccup")

    monkeypatch.setattr(order_state, "transition", broken)
    pending()
    body = fc_body()

    assert send(hostile, body, fc_headers(body)).status_code == 500
    stored = WebhookEvent.objects.get()
    assert stored.status == WebhookEvent.Status.FAILED
    assert "db hiccup" in stored.error


# --- §8 admin ---


def _action_label(action: object) -> str:
    """An admin action's description: an Action object on Django 6.1, a tuple before."""
    label = getattr(action, "description", None)
    return str(label if label is not None else action[2])  # type: ignore[index]


def test_s8_order_admin_has_refund_and_cancel_actions_and_search():
    order_admin = admin.site._registry[FlexChargeOrder]
    request = RequestFactory().get("/admin/")
    request.user = get_user_model()(is_superuser=True, is_staff=True, is_active=True)
    labels = [_action_label(action) for action in order_admin.get_actions(request).values()]
    assert any("Refund" in label for label in labels), labels
    assert any("Cancel" in label for label in labels), labels
    for field in ("order_id", "order_session_key", "email"):
        assert any(field in name for name in order_admin.search_fields)
    assert "status" in order_admin.list_filter


@pytest.mark.parametrize("model", ["VaultedCard", "Transmission", "WebhookEvent", "Refund"])
def test_s8_the_other_admins_are_read_only(model, admin_user):
    model_admin = admin.site._registry[getattr(models, model)]
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)


def test_s8_webhook_events_have_a_reapply_action(admin_user):
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    actions = admin.site._registry[WebhookEvent].get_actions(request)
    assert any("apply" in _action_label(action).lower() for action in actions.values())


# --- §9 management commands ---


@pytest.mark.parametrize(
    "name",
    [
        "flexcharge_emulator",
        "flexcharge_sync",
        "flexcharge_retry",
        "flexcharge_send_test_webhook",
        "flexcharge_prune",
    ],
)
def test_s9_each_command_exists(name):
    assert get_commands()[name] == "django_flexcharge"


def test_s9_prune_takes_n_days_positionally():
    from django.utils import timezone

    old = WebhookEvent.objects.create(event="order.completed", nonce="old", body="{}")
    WebhookEvent.objects.filter(pk=old.pk).update(
        received_at=timezone.now() - timezone.timedelta(days=40)
    )
    WebhookEvent.objects.create(event="order.completed", nonce="new", body="{}")

    call_command("flexcharge_prune", "30", stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert list(WebhookEvent.objects.values_list("nonce", flat=True)) == ["new"]


def test_s9_send_test_webhook_takes_the_url_positionally():
    parser = load_command_class("django_flexcharge", "flexcharge_send_test_webhook").create_parser(
        "manage.py", "flexcharge_send_test_webhook"
    )
    options = parser.parse_args(["https://shop.example.com/flexcharge/webhook/"])
    assert "https://shop.example.com/flexcharge/webhook/" in vars(options).values()


@pytest.mark.django_db(transaction=True)
def test_s9_send_test_webhook_reaches_the_site_signed(live_server, settings):
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [KEY]
    pending(session_key="fc-live-1")
    url = live_server.url + reverse("django_flexcharge:webhook")

    call_command(
        "flexcharge_send_test_webhook",
        url,
        "--order-id",
        "fc-live-1",
        "--external-order-id",
        "INV-C-1",
        stdout=open("/dev/null", "w"),  # noqa: SIM115
    )

    assert FlexChargeOrder.objects.get().status == FlexChargeOrder.Status.APPROVED


# --- §10 errors ---


def test_s10_exception_hierarchy():
    assert issubclass(exceptions.FlexChargeAPIError, exceptions.FlexChargeError)
    assert issubclass(exceptions.FlexChargeAuthError, exceptions.FlexChargeAPIError)
    assert issubclass(exceptions.FlexChargeTimeout, exceptions.FlexChargeAPIError)
    assert issubclass(exceptions.FlexChargeValidationError, exceptions.FlexChargeError)
    assert issubclass(exceptions.FlexChargeConfigurationError, ImproperlyConfigured)
    assert issubclass(exceptions.FlexChargeConfigurationError, exceptions.FlexChargeError)
    error = exceptions.FlexChargeAPIError("boom", status=400, code="2001", trace_id="t-1")
    assert (error.status, error.code, error.trace_id) == (400, "2001", "t-1")
    assert hasattr(error, "errors")


# --- §13 development without credentials ---

NO_CREDENTIALS = {
    "FLEXCHARGE_APP_KEY": "",
    "FLEXCHARGE_APP_SECRET": "",
    "FLEXCHARGE_MID": "",
    "FLEXCHARGE_SITE_ID": "",
    "FLEXCHARGE_TOKENIZATION_KEY": "",
    "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS": [],
}


def test_s13_missing_credentials_never_stop_migrate_or_check_only_deploy():
    with override_settings(**NO_CREDENTIALS):
        call_command("check")
        call_command("migrate", verbosity=0)
        with pytest.raises(SystemCheckError):
            call_command("check", "--deploy")


def test_s13_the_call_that_needs_a_credential_names_the_setting(card):
    with override_settings(**NO_CREDENTIALS), responses_lib.RequestsMock() as no_network:
        with pytest.raises(exceptions.FlexChargeConfigurationError, match="FLEXCHARGE_"):
            services.vault_card(card)
        assert not no_network.calls


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("FLEXCHARGE_TEST_MODE", "False", "bool"),
        ("FLEXCHARGE_TIMEOUT", "30", "number"),
        ("FLEXCHARGE_MIT_EXPIRY_DAYS", "21", "int"),
        ("FLEXCHARGE_DECLINE_MAX_AGE", "24", "number"),
        ("FLEXCHARGE_WEBHOOK_TOLERANCE", "300", "int"),
        ("FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS", KEY, "list"),
    ],
)
def test_s13_a_wrong_typed_setting_is_an_error_naming_setting_and_types(setting, value, expected):
    with override_settings(**{setting: value}), pytest.raises(SystemCheckError) as caught:
        call_command("check")
    text = str(caught.value)
    line = next(line for line in text.splitlines() if setting in line)
    assert expected in line, line
    assert "str" in line, line


# --- §11 background work, and the API edge as a strict FlexCharge would read it ---

EVALUATE_ANSWER = {
    "orderSessionKey": "e97b1ff1-4449-46da-bc6c-a76d23f16353",
    "senseKey": None,
    "orderId": "e97b1ff1-4449-46da-bc6c-a76d23f16353",
    "success": True,
    "result": "Success",
    "status": "SUBMITTED",
    "statusCode": None,
    "errors": [],
    "customProperties": {},
}
#: Keys the live sandbox validated on /evaluate (flattened ASP.NET names), as body paths.
EVALUATE_REQUIRED = (
    ("isDeclined",),
    ("idempotencyKey",),
    ("orderId",),
    ("transaction", "id"),
    ("transaction", "responseCode"),
    ("transaction", "avsResultCode"),
    ("transaction", "cvvResultCode"),
    ("transaction", "cavvResultCode"),
    ("transaction", "responseCodeSource"),
)


def dig(body: dict, path: tuple[str, ...]):
    for key in path:
        body = body[key]
    return body


def test_s11_evaluate_waits_for_commit_then_sends_a_body_flexcharge_accepts(
    payer, billing, subscription, mocked, api, django_capture_on_commit_callbacks
):
    from .factories import make_vaulted

    vaulted = make_vaulted()
    mocked.add(responses_lib.POST, api + "evaluate", json=EVALUATE_ANSWER)
    with django_capture_on_commit_callbacks(execute=True):
        order = services.evaluate_declined_payment(
            make_payment("INV-E-1"),
            card=vaulted,
            payer=payer,
            billing=billing,
            subscription=subscription,
        )
        assert not mocked.calls  # nothing in the caller's request
        assert order.status == FlexChargeOrder.Status.QUEUED

    token_call, evaluate_call = mocked.calls
    assert json.loads(token_call.request.body).keys() == {"AppKey", "AppSecret"}
    assert evaluate_call.request.headers["Authorization"].startswith("Bearer ")
    assert evaluate_call.request.headers["Content-Type"].startswith("application/json")
    body = json.loads(evaluate_call.request.body)
    for path in EVALUATE_REQUIRED:
        assert dig(body, path) not in ("", None), path
    assert body["isDeclined"] is True
    assert body["isMIT"] is True
    assert str(uuid.UUID(body["idempotencyKey"])) == body["idempotencyKey"].lower()
    assert body["mid"] == conf.MID
    assert body["siteId"] == conf.SITE_ID
    assert body["expiryDateUtc"].endswith("Z")
    assert body["transaction"]["amount"] == 1999  # cents, an integer
    assert body["transaction"]["currency"] == "USD"
    assert body["paymentMethod"]["cardNumber"] == vaulted.token
    assert body["paymentMethod"]["token"] is True
    assert body["payer"]["email"] == payer.email
    assert {"firstName", "lastName", "country", "countryCode", "addressLine1", "city"} <= set(
        body["billingInformation"]
    )
    assert body["subscription"]["subscriptionId"] == "sub_123"
    assert body["subscription"]["price"] == "1999"
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.PENDING
    assert order.order_session_key == EVALUATE_ANSWER["orderSessionKey"]


def test_s11_transmit_records_a_row_and_sends_nothing_before_commit(card, mocked, api):
    transmission = services.transmit_approved_payment(make_payment("INV-T-1"), card=card)
    assert not any(call.request.url.startswith(api + "transmit") for call in mocked.calls)
    assert Transmission.objects.get(pk=transmission.pk).order_id == "INV-T-1"


def test_api_tokenize_query_and_snake_case_body(card, mocked, api):
    mocked.add(responses_lib.POST, api + "tokenize", json=TOKENIZE_ANSWER)
    services.vault_card(card, email="jane@example.com", sense_key="sk-1")
    call = next(c for c in mocked.calls if "/tokenize" in c.request.url)
    query = call.request.params
    assert query["mid"] == conf.MID
    assert query["environment"] == conf.TOKENIZATION_KEY
    method = json.loads(call.request.body)["payment_method"]
    assert method["email"] == "jane@example.com"
    assert method["sense_key"] == "sk-1"
    assert method["credit_card"]["month"] == "09"
    assert len(method["credit_card"]["year"]) == 4
    assert set(method["credit_card"]) == {
        "first_name",
        "last_name",
        "number",
        "verification_value",
        "month",
        "year",
    }


def test_api_refund_sends_amount_to_refund_in_major_units(mocked, api):
    order = make_order("INV-R-1", FlexChargeOrder.Status.APPROVED, session_key="fc-r-1")
    mocked.add(
        responses_lib.POST,
        api + "orders/fc-r-1/refund",
        json={"status": "SUCCESS", "success": True, "result": None, "errors": []},
    )
    services.refund_order(order, 1250, reason="Customer request")
    call = next(c for c in mocked.calls if c.request.url.endswith("/refund"))
    raw = call.request.body.decode() if isinstance(call.request.body, bytes) else call.request.body
    body = json.loads(raw)
    assert body["amountToRefund"] == 12.5
    assert isinstance(body["amountToRefund"], float)  # a JSON number, not a string
    assert body["refundMessage"] == "Customer request"
    order.refresh_from_db()
    assert order.refunded_amount == 1250
    assert order.status == FlexChargeOrder.Status.PARTIALLY_REFUNDED


def test_api_cancel_posts_to_the_order_with_an_empty_or_guid_body(mocked, api):
    order = make_order("INV-X-1", FlexChargeOrder.Status.PENDING, session_key="fc-x-1")
    mocked.add(responses_lib.POST, api + "orders/fc-x-1/cancel", body="")
    services.cancel_order(order)
    call = next(c for c in mocked.calls if c.request.url.endswith("/cancel"))
    body = json.loads(call.request.body or "{}")
    assert set(body) <= {"idempotencyKey"}
    if body:
        uuid.UUID(body["idempotencyKey"])
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.CANCELLED


# --- §4 refusals and is_under_rescue ---


def test_s4_an_old_decline_or_a_reused_order_id_is_refused_and_nothing_sent(payer, billing):
    import datetime as dt

    from django.utils import timezone

    from .factories import make_vaulted

    vaulted = make_vaulted()
    old = make_payment("INV-OLD", occurred_at=timezone.now() - dt.timedelta(hours=25))
    make_order("INV-SENT", FlexChargeOrder.Status.PENDING, session_key="fc-sent")
    with responses_lib.RequestsMock() as no_network:
        with pytest.raises(exceptions.FlexChargeValidationError):
            services.evaluate_declined_payment(old, card=vaulted, payer=payer, billing=billing)
        with pytest.raises(exceptions.FlexChargeValidationError):
            services.evaluate_declined_payment(
                make_payment("INV-SENT"), card=vaulted, payer=payer, billing=billing
            )
        assert not no_network.calls
    assert list(FlexChargeOrder.objects.values_list("order_id", flat=True)) == ["INV-SENT"]


def test_s4_a_refund_above_the_refundable_rest_is_refused_before_sending():
    order = make_order("INV-R-2", FlexChargeOrder.Status.APPROVED, session_key="fc-r-2")
    with responses_lib.RequestsMock() as no_network:
        with pytest.raises(exceptions.FlexChargeValidationError, match="amount"):
            services.refund_order(order, order.amount + 1)
        assert not no_network.calls
    assert not models.Refund.objects.exists()


def test_s4_is_under_rescue_while_flexcharge_holds_the_order():
    make_order("INV-Q", FlexChargeOrder.Status.QUEUED, session_key=None)
    make_order("INV-P", FlexChargeOrder.Status.PENDING, session_key="fc-p")
    make_order("INV-A", FlexChargeOrder.Status.APPROVED, session_key="fc-a")
    assert services.is_under_rescue("INV-Q")
    assert services.is_under_rescue("INV-P")
    assert not services.is_under_rescue("INV-A")
    assert not services.is_under_rescue("INV-UNKNOWN")


# --- §2 checks, §7 proxy host and re-apply of a failed delivery ---


def test_s2_an_expiry_under_14_days_is_a_system_check_error(settings):
    from django.core import checks

    settings.FLEXCHARGE_MIT_EXPIRY_DAYS = 13
    errors = [m for m in checks.run_checks() if m.id.startswith("django_flexcharge.E")]
    assert any("FLEXCHARGE_MIT_EXPIRY_DAYS" in m.msg and m.hint for m in errors)


def test_s7_behind_a_proxy_the_configured_webhook_host_is_what_is_verified(hostile, settings):
    settings.FLEXCHARGE_WEBHOOK_HOST = "billing.example.com"
    order = pending()
    body = fc_body()

    assert send(hostile, body, fc_headers(body, host=HOST)).status_code == 401
    assert send(hostile, body, fc_headers(body, host="billing.example.com")).status_code == 200
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.APPROVED


def test_s7_a_redelivery_of_a_failed_event_is_re_applied(hostile, monkeypatch):
    from django_flexcharge import order_state

    order = pending()
    body = fc_body()
    headers = fc_headers(body)
    with monkeypatch.context() as patch:
        patch.setattr(order_state, "transition", lambda *a, **k: 1 / 0)
        assert send(hostile, body, headers).status_code == 500

    assert send(hostile, body, headers).status_code == 200
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.APPROVED


# --- §1 a host with only the contract's settings ---

MINIMAL_SETTINGS = """
SECRET_KEY = "x"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "host_urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "rest_framework",
    "django_flexcharge",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""
MINIMAL_URLS = """
from django.contrib import admin
from django.urls import include, path
urlpatterns = [path("admin/", admin.site.urls), path("flexcharge/", include("django_flexcharge.urls"))]
"""


def test_s1_s13_a_minimal_host_without_credentials_migrates_and_checks(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "host_settings.py").write_text(
        f"DB = {str(tmp_path / 'db.sqlite3')!r}\n" + MINIMAL_SETTINGS
    )
    (tmp_path / "host_urls.py").write_text(MINIMAL_URLS)
    root = str(Path(__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([root, str(tmp_path)]),
        "DJANGO_SETTINGS_MODULE": "host_settings",
    }

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    migrated = manage("migrate", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    checked = manage("check")
    assert checked.returncode == 0, checked.stderr
    assert "FLEXCHARGE_APP_KEY" in checked.stderr + checked.stdout  # reported as a warning
    assert manage("makemigrations", "--check", "--dry-run", "django_flexcharge").returncode == 0
    deploy = manage("check", "--deploy")
    assert deploy.returncode != 0
    assert "FLEXCHARGE_APP_KEY" in deploy.stderr


# --- §8 refunds: the admin form and what counts as a refund ---


def test_s8_the_refund_form_refuses_full_with_an_amount_typed(admin_client):
    order = make_order("INV-F-1", FlexChargeOrder.Status.APPROVED, session_key="fc-f-1")
    prefix = f"refund-{order.pk}"
    with responses_lib.RequestsMock() as no_network:
        response = admin_client.post(
            reverse("admin:django_flexcharge_flexchargeorder_changelist"),
            {
                "action": "refund_orders",
                "_selected_action": [order.pk],
                "apply": "1",
                f"{prefix}-kind": "full",
                f"{prefix}-amount": "5.00",
            },
        )
        assert not no_network.calls
    assert response.status_code == 200
    form = response.context["forms"][0]
    assert "amount" in form.errors
    assert not models.Refund.objects.exists()


def test_s8_success_true_with_a_declined_message_is_a_failed_refund(mocked, api):
    order = make_order("INV-F-2", FlexChargeOrder.Status.APPROVED, session_key="fc-f-2")
    mocked.add(
        responses_lib.POST,
        api + "orders/fc-f-2/refund",
        json={
            "responseCode": "0",
            "responseMessage": "DECLINED",
            "transactionId": None,
            "success": True,
            "result": None,
            "status": "SUCCESS",
            "statusCode": None,
            "errors": [],
            "customProperties": {},
        },
    )
    with pytest.raises(exceptions.FlexChargeError, match="DECLINED"):
        services.refund_order(order)
    assert models.Refund.objects.get().outcome == models.Refund.Outcome.FAILED
    order.refresh_from_db()
    assert order.refunded_amount == 0
    assert order.status == FlexChargeOrder.Status.APPROVED


# --- §6 terminal states never reopen ---


@pytest.mark.parametrize(
    ("stored", "event"),
    [
        ("expired", "order.completed"),
        ("cancelled", "order.completed"),
        ("declined", "order.completed"),
        ("refunded", "order.completed"),
        ("refunded", "order.expired"),
        ("approved", "order.expired"),
        ("approved", "order.cancelled"),
    ],
)
def test_s6_a_terminal_order_never_reopens(hostile, stored, event):
    order = make_order("INV-C-1", stored, session_key="fc-c-1", refunded_amount=0)
    if stored == "refunded":
        FlexChargeOrder.objects.filter(pk=order.pk).update(refunded_amount=order.amount)
    body = fc_body(event)

    assert send(hostile, body, fc_headers(body)).status_code == 200

    order.refresh_from_db()
    assert order.status == stored
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED
