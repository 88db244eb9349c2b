"""System checks, ids ``django_flexcharge.E001``... Each message names the setting and says how to fix it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import conf

ID = "django_flexcharge.{}"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@register(Tags.compatibility)
def check_credentials(**kwargs: Any) -> list[CheckMessage]:
    missing = [
        name
        for name in (
            "FLEXCHARGE_APP_KEY",
            "FLEXCHARGE_APP_SECRET",
            "FLEXCHARGE_MID",
            "FLEXCHARGE_SITE_ID",
        )
        if not conf.is_configured(name)
    ]
    messages: list[CheckMessage] = []
    if missing:
        messages.append(
            Error(
                f"Missing FlexCharge credentials: {', '.join(missing)}.",
                hint="Copy them from the FlexCharge portal (Developers > Api Keys, Sites) "
                "into your settings, e.g. FLEXCHARGE_APP_KEY = env('FLEXCHARGE_APP_KEY').",
                id=ID.format("E001"),
            )
        )
    if not conf.is_configured("FLEXCHARGE_TOKENIZATION_KEY"):
        messages.append(
            Warning(
                "FLEXCHARGE_TOKENIZATION_KEY is not set: cards cannot be vaulted.",
                hint="Copy the key from the FlexCharge portal, Developers > Tokenization.",
                id=ID.format("W002"),
            )
        )
    return messages


@register(Tags.compatibility)
def check_webhook_keys(**kwargs: Any) -> list[CheckMessage]:
    from .security_checks import webhook_key_messages

    return webhook_key_messages()


@register(Tags.compatibility)
def check_expiry_and_window(**kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    try:
        days = conf.MIT_EXPIRY_DAYS
    except (TypeError, ValueError):
        days = -1
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
    except (TypeError, ValueError):
        hours = -1
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
    except (TypeError, ValueError):
        valid_timeout = False
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
    for name, url in (
        ("FLEXCHARGE_API_URL", conf.API_URL),
        ("FLEXCHARGE_SENSEJS_URL", conf.SENSEJS_URL),
    ):
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
    if conf.is_production_api and getattr(settings, "FLEXCHARGE_TEST_MODE", None):
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
        backend = task_backends[conf.TASK_BACKEND]
    except Exception as err:  # the handler raises its own InvalidTaskBackend types
        return [
            Error(
                f"Task backend {conf.TASK_BACKEND!r} is not usable: {err}",
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
