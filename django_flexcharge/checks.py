"""System checks, ids ``django_flexcharge.E001``... Each message names the setting and says how to fix it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.urls import NoReverseMatch, reverse

from .conf import conf
from .exceptions import FlexChargeConfigurationError
from .setting_types import SettingTypeError, as_guid

ID = "django_flexcharge.{}"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


CREDENTIALS = (
    "FLEXCHARGE_APP_KEY",
    "FLEXCHARGE_APP_SECRET",
    "FLEXCHARGE_MID",
    "FLEXCHARGE_SITE_ID",
)
#: What a deployed site needs: the credentials, vaulting and webhook verification.
DEPLOY_REQUIRED = (
    *CREDENTIALS,
    "FLEXCHARGE_TOKENIZATION_KEY",
    "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS",
)
_EMULATOR_HINT = (
    "In development run `python manage.py flexcharge_emulator` and set "
    "FLEXCHARGE_API_URL = 'http://127.0.0.1:8765/v1/' and any values for the credentials "
    "(GUIDs for MID and SITE_ID): the emulator accepts the site's own."
)


@register(Tags.compatibility)
def check_credentials(**kwargs: Any) -> list[CheckMessage]:
    """Missing credentials are only warnings here: migrate, runserver and test must run without them."""
    missing = [name for name in CREDENTIALS if not conf.is_configured(name)]
    messages: list[CheckMessage] = []
    if missing:
        messages.append(
            Warning(
                f"FlexCharge credentials not set: {', '.join(missing)}. Calls to FlexCharge "
                "raise FlexChargeConfigurationError until they are; "
                "`check --deploy` reports them as errors.",
                hint=_EMULATOR_HINT + " In production copy them from the FlexCharge portal "
                "(Developers > Api Keys, Sites), e.g. FLEXCHARGE_APP_KEY = env('FLEXCHARGE_APP_KEY').",
                id=ID.format("W001"),
            )
        )
    if not conf.is_configured("FLEXCHARGE_TOKENIZATION_KEY"):
        messages.append(
            Warning(
                "FLEXCHARGE_TOKENIZATION_KEY is not set: cards cannot be vaulted.",
                hint="Copy the key from the FlexCharge portal, Developers > Tokenization. "
                + _EMULATOR_HINT,
                id=ID.format("W002"),
            )
        )
    return messages


@register(Tags.compatibility, deploy=True)
def check_credentials_deploy(**kwargs: Any) -> list[CheckMessage]:
    """``check --deploy``: every setting a live site needs, one error each."""
    return [
        Error(
            f"{name} is not set.",
            hint=f"Copy it from the FlexCharge portal into your settings, e.g. "
            f"{name} = env({name!r}); see docs/configuration.md.",
            id=ID.format("E001"),
        )
        for name in DEPLOY_REQUIRED
        if not conf.is_configured(name)
    ]


#: Every typed setting, by its ``conf`` property (the subscriber keys and the webhook
#: tolerance have checks of their own: security_checks.py).
TYPED_SETTINGS = (
    "APP_KEY",
    "APP_SECRET",
    "TOKENIZATION_KEY",
    "API_URL",
    "SENSEJS_URL",
    "SENSEJS_INVOKE",
    "SENSEJS_KEY_EVENT",
    "SENSEJS_KEY_GLOBAL",
    "WEBHOOK_HOST",
    "WEBHOOK_MAX_BODY",
    "MIT_EXPIRY_DAYS",
    "DECLINE_MAX_AGE",
    "TIMEOUT",
    "TEST_MODE",
    "MAX_ATTEMPTS",
    "RETRY_BASE_DELAY",
    "RETRY_MAX_DELAY",
    "TASK_BACKEND",
    "TASK_QUEUE",
    "DELIVERY_BATCH_SIZE",
)


@register(Tags.compatibility)
def check_setting_types(**kwargs: Any) -> list[CheckMessage]:
    """A setting of the wrong type is an error in every mode (E020); a MID or site id that is no GUID, E021."""
    messages: list[CheckMessage] = []
    for prop in (*TYPED_SETTINGS, "MID", "SITE_ID"):
        try:
            value = getattr(conf, prop)
            if prop in ("MID", "SITE_ID"):
                as_guid(f"FLEXCHARGE_{prop}", value)
        except SettingTypeError as err:
            if any(m.msg == err.check_message for m in messages):
                continue  # a setting others derive from (TEST_MODE reads API_URL): once
            guid = "GUID" in err.check_message
            messages.append(
                Error(
                    err.check_message,
                    hint=err.hint or None,
                    id=ID.format("E021" if guid else "E020"),
                )
            )
        except FlexChargeConfigurationError:
            pass  # not set: W001/W002 in development, E001 under --deploy
    return messages


@register(Tags.urls)
def check_webhook_routed(**kwargs: Any) -> list[CheckMessage]:
    try:
        reverse("django_flexcharge:webhook")
    except NoReverseMatch:
        return [
            Warning(
                "django_flexcharge.urls is not routed: every FlexCharge webhook would get a 404.",
                hint='Add path("flexcharge/", include("django_flexcharge.urls")) to your '
                "urlpatterns (from django.urls import include, path).",
                id=ID.format("W022"),
            )
        ]
    except Exception:  # noqa: S110 - a broken URLconf is reported by Django's own url checks
        pass
    return []


@register(Tags.compatibility)
def check_webhook_keys(**kwargs: Any) -> list[CheckMessage]:
    from .security_checks import webhook_key_messages

    return webhook_key_messages()


@register(Tags.compatibility)
def check_expiry_and_window(**kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    # A value of the wrong type is E020's; the ranges below are for numbers.
    try:
        days = conf.MIT_EXPIRY_DAYS
    except FlexChargeConfigurationError:
        days = 14
    if days < 14:
        messages.append(
            Error(
                "FLEXCHARGE_MIT_EXPIRY_DAYS must be 14 or more.",
                hint="FlexCharge needs a rescue window of at least two weeks; three (21) is best.",
                id=ID.format("E005"),
            )
        )
    try:
        hours = conf.DECLINE_MAX_AGE
    except FlexChargeConfigurationError:
        hours = 24
    if not 0 < hours <= 24:
        messages.append(
            Error(
                "FLEXCHARGE_DECLINE_MAX_AGE must be more than 0 and at most 24 hours.",
                hint="FlexCharge accepts only MITs that declined the same day.",
                id=ID.format("E006"),
            )
        )
    try:
        connect, read = conf.TIMEOUT
        valid_timeout = connect > 0 and read > 0
    except FlexChargeConfigurationError:
        valid_timeout = True
    if not valid_timeout:
        messages.append(
            Error(
                "FLEXCHARGE_TIMEOUT must be a (connect, read) pair of positive seconds.",
                hint="The default is (3.05, 30).",
                id=ID.format("E007"),
            )
        )
    return messages


def _url_problem(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an absolute http(s) URL"
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        return "must use https (plain http only on 127.0.0.1, e.g. the emulator)"
    return ""


@register(Tags.compatibility)
def check_urls(**kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    try:
        urls = (("FLEXCHARGE_API_URL", conf.API_URL), ("FLEXCHARGE_SENSEJS_URL", conf.SENSEJS_URL))
    except FlexChargeConfigurationError:
        return []  # not a string: E020
    for name, url in urls:
        problem = _url_problem(url)
        if problem:
            messages.append(
                Error(
                    f"{name} {problem}: {url!r}.",
                    hint="Use https://api-sandbox.flex-charge.com/v1/ (sandbox) or "
                    "https://api.flex-charge.com/v1/ (production).",
                    id=ID.format("E008"),
                )
            )
    if conf.is_production_api and getattr(settings, "FLEXCHARGE_TEST_MODE", None) is True:
        messages.append(
            Error(
                "FLEXCHARGE_TEST_MODE is True but FLEXCHARGE_API_URL is FlexCharge production.",
                hint="Production sends live webhooks (IsTestMode false) that a test-mode site "
                "refuses. Use sandbox keys with the sandbox URL, or unset FLEXCHARGE_TEST_MODE.",
                id=ID.format("E009"),
            )
        )
    return messages


@register(Tags.compatibility)
def check_task_backend(**kwargs: Any) -> list[CheckMessage]:
    from .compat import ImmediateBackend, task_backends

    try:
        alias = conf.TASK_BACKEND
    except FlexChargeConfigurationError:
        return []  # not a string: E020
    try:
        backend = task_backends[alias]
    except Exception as err:  # the handler raises its own InvalidTaskBackend types
        return [
            Error(
                f"Task backend {alias!r} is not usable: {err}",
                hint="Configure TASKS, e.g. {'default': {'BACKEND': "
                "'django_tasks_db.DatabaseBackend'}} and run manage.py db_worker.",
                id=ID.format("E010"),
            )
        ]
    if isinstance(backend, ImmediateBackend) and not settings.DEBUG:
        return [
            Warning(
                "The task backend runs FlexCharge calls inside the request (ImmediateBackend).",
                hint="Checkout then waits for FlexCharge and a FlexCharge outage slows your site. "
                "Use a real queue: 'django_tasks_db.DatabaseBackend' with manage.py db_worker.",
                id=ID.format("W011"),
            )
        ]
    return []


@register(Tags.compatibility)
def check_installed_apps(**kwargs: Any) -> list[CheckMessage]:
    if not apps.is_installed("rest_framework"):
        return [
            Error(
                "'rest_framework' must be in INSTALLED_APPS.",
                hint="The webhook view is a Django REST framework view.",
                id=ID.format("E012"),
            )
        ]
    return []


#: Refund vocabulary settings (docs/assumptions.md): each a list of strings.
_REFUND_LISTS = (
    "FLEXCHARGE_REFUND_APPROVED_WORDS",
    "FLEXCHARGE_REFUND_DECLINED_WORDS",
    "FLEXCHARGE_REFUND_APPROVED_CODES",
    "FLEXCHARGE_ORDER_REFUNDED_FIELDS",
)


@register(Tags.compatibility)
def check_refund_vocabularies(**kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name in _REFUND_LISTS:
        value = getattr(settings, name, None)
        if value is not None and (
            not isinstance(value, list | tuple | set | frozenset)
            or not all(isinstance(item, str) for item in value)
        ):
            messages.append(
                Error(
                    f"{name} must be a list of strings, not {type(value).__name__}.",
                    hint=f'e.g. {name} = ["SUCCESS", "APPROVED"]; a bare string is a common slip.',
                    id=ID.format("E050"),
                )
            )
    if messages:
        return messages
    both = conf.REFUND_APPROVED_WORDS & conf.REFUND_DECLINED_WORDS
    if both:
        messages.append(
            Error(
                f"{', '.join(sorted(both))} is both an approving and a refusing refund word.",
                hint="Remove it from FLEXCHARGE_REFUND_APPROVED_WORDS or "
                "FLEXCHARGE_REFUND_DECLINED_WORDS; a refusal word always wins.",
                id=ID.format("E051"),
            )
        )
    if conf.ORDER_AMOUNT_UNITS not in ("minor", "major"):
        messages.append(
            Error(
                f"FLEXCHARGE_ORDER_AMOUNT_UNITS is {conf.ORDER_AMOUNT_UNITS!r}.",
                hint='Use "minor" (cents, the default) or "major" (dollars).',
                id=ID.format("E052"),
            )
        )
    if not conf.REFUND_APPROVED_WORDS:
        messages.append(
            Error(
                "FLEXCHARGE_REFUND_APPROVED_WORDS is empty: no refund could ever count as made.",
                hint='Leave it unset, or list the words, e.g. ["SUCCESS", "APPROVED"].',
                id=ID.format("E053"),
            )
        )
    return messages


@register(Tags.compatibility)
def check_health_settings(**kwargs: Any) -> list[CheckMessage]:
    """The health thresholds are numbers >= 0; a health token is long enough to resist guessing."""
    messages: list[CheckMessage] = []
    for name in (
        "FLEXCHARGE_HEALTH_MAX_QUEUE_AGE",
        "FLEXCHARGE_HEALTH_MAX_REFUSALS",
        "FLEXCHARGE_HEALTH_WEBHOOK_SILENCE",
    ):
        value = getattr(settings, name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            messages.append(
                Error(
                    f"{name} must be a number of 0 or more, not {value!r}.",
                    hint="See docs/on-call.md for what each health threshold means.",
                    id=ID.format("E045"),
                )
            )
    token = getattr(settings, "FLEXCHARGE_HEALTH_TOKEN", "") or ""
    if token and len(str(token)) < 24:
        messages.append(
            Warning(
                "FLEXCHARGE_HEALTH_TOKEN is shorter than 24 characters.",
                hint="Use a long random value, e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'.",
                id=ID.format("W045"),
            )
        )
    return messages
