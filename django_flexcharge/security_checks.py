"""System checks of the security settings (docs/security.md): ids E004, E013-E017, W003, W017-W018.

Every message names the setting and, for a list entry, its position; none
ever holds a key or secret.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import SUBSCRIBER_KEYS, conf, subscriber_key_entries
from .exceptions import FlexChargeConfigurationError
from .public_credentials import is_loopback_url, is_public
from .signing import MIN_KEY_BYTES, key_problem

ID = "django_flexcharge.{}"
KEYS_FORM = "a list of base64 subscriber keys, e.g. ['<key from the portal>']"


def _text_setting(name: str) -> str:
    """``conf.<name>``, or "" when it is of the wrong type (the type check E020 reports that)."""
    try:
        return str(getattr(conf, name))
    except FlexChargeConfigurationError:
        return ""


def webhook_key_messages() -> list[CheckMessage]:
    """What is wrong with ``FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS`` (run by ``checks.check_webhook_keys``)."""
    value = getattr(settings, SUBSCRIBER_KEYS, [])
    entries, type_problem = subscriber_key_entries(value)
    messages: list[CheckMessage] = []
    if type_problem:
        hint = f"Set it to {KEYS_FORM}."
        if type_problem == "is a comma-separated str":
            hint += (
                " From an environment variable, read it with env.list(...) and leave no "
                "trailing comma."
            )
        messages.append(
            Error(
                f"{SUBSCRIBER_KEYS} {type_problem}; expected {KEYS_FORM}.",
                hint=hint,
                id=ID.format("E014"),
            )
        )
    for index, entry in enumerate(entries):
        problem = key_problem(entry)
        if problem is None:
            continue
        if problem.kind == "base64":
            hint = "Paste the subscriber key exactly as the portal shows it."
            check_id = "E004"
        else:
            hint = (
                f"A key that is blank or shorter than {MIN_KEY_BYTES} bytes is never used to "
                "verify (anyone could sign with it). Remove the entry, or paste the key from "
                "the FlexCharge portal, Developers > Webhooks."
            )
            check_id = "E014" if problem.kind == "type" else "E013"
        messages.append(
            Error(f"{SUBSCRIBER_KEYS}[{index}] {problem.text}.", hint=hint, id=ID.format(check_id))
        )
    if not entries and not type_problem:
        messages.append(
            Warning(
                f"{SUBSCRIBER_KEYS} is empty: every webhook will be refused.",
                hint="Add the subscriber key shown in the FlexCharge portal, Developers > Webhooks.",
                id=ID.format("W003"),
            )
        )
    return messages


@register(Tags.security)
def check_public_credentials(**kwargs: Any) -> list[CheckMessage]:
    """E015: the emulator's public credentials on a site that does not talk to the emulator."""
    api_url = _text_setting("API_URL")
    if is_loopback_url(api_url):
        return []
    found = [
        name
        for name in ("FLEXCHARGE_APP_KEY", "FLEXCHARGE_APP_SECRET", "FLEXCHARGE_TOKENIZATION_KEY")
        if is_public(name, getattr(settings, name, ""))
    ]
    entries, _ = subscriber_key_entries(getattr(settings, SUBSCRIBER_KEYS, []))
    found += [
        f"{SUBSCRIBER_KEYS}[{index}]"
        for index, entry in enumerate(entries)
        if is_public(SUBSCRIBER_KEYS, entry)
    ]
    return [
        Error(
            f"{name} is the FlexCharge emulator's public value, but FLEXCHARGE_API_URL is not "
            "the emulator (not a loopback address).",
            hint="Anyone can read the emulator's credentials (.env.example); with its subscriber "
            "key anyone can forge a webhook. Use the values from the FlexCharge portal. The app "
            "refuses to use these values until then.",
            id=ID.format("E015"),
        )
        for name in found
    ]


@register(Tags.security, deploy=True)
def check_webhook_host(**kwargs: Any) -> list[CheckMessage]:
    """E016: with a wildcard in ALLOWED_HOSTS the signed host is whatever the sender says."""
    if "*" in getattr(settings, "ALLOWED_HOSTS", []) and not _text_setting("WEBHOOK_HOST"):
        return [
            Error(
                "ALLOWED_HOSTS holds '*' and FLEXCHARGE_WEBHOOK_HOST is not set: webhook "
                "signatures are checked against whatever Host the sender chooses.",
                hint="Set FLEXCHARGE_WEBHOOK_HOST to the host name of the webhook URL registered "
                "in the FlexCharge portal (e.g. 'billing.example.com'), or list your host names "
                "in ALLOWED_HOSTS.",
                id=ID.format("E016"),
            )
        ]
    return []


@register(Tags.security)
def check_webhook_tolerance(**kwargs: Any) -> list[CheckMessage]:
    """E017 for a negative or non-integer window, W017 when the date check is off."""
    value = getattr(settings, "FLEXCHARGE_WEBHOOK_TOLERANCE", 300)
    if value is None or (value == 0 and not isinstance(value, bool)):
        return [
            Warning(
                f"FLEXCHARGE_WEBHOOK_TOLERANCE is {value!r}: the x-fc-date check is off. A "
                "captured delivery is then refused only by its stored nonce, so it can be "
                "replayed once flexcharge_prune has deleted that event.",
                hint="Leave it unset (300 s). Turn it off only while FlexCharge's clock or a "
                "proxy delays deliveries beyond any window; see docs/security.md.",
                id=ID.format("W017"),
            )
        ]
    try:
        _ = conf.WEBHOOK_TOLERANCE
    except FlexChargeConfigurationError as err:
        return [
            Error(
                str(err),
                hint="Seconds a delivery's x-fc-date may be old (or ahead); the default is 300.",
                id=ID.format("E017"),
            )
        ]
    return []


@register(Tags.security)
def check_emulator_in_production(**kwargs: Any) -> list[CheckMessage]:
    """W018: FLEXCHARGE_API_URL is the emulator (loopback) on a site with DEBUG off."""
    if settings.DEBUG or not is_loopback_url(_text_setting("API_URL")):
        return []
    return [
        Warning(
            "FLEXCHARGE_API_URL points at this machine (the emulator) while DEBUG is False.",
            hint="A deployed site must talk to FlexCharge: set FLEXCHARGE_API_URL to "
            "https://api-sandbox.flex-charge.com/v1/ or https://api.flex-charge.com/v1/. "
            "Ignore this for a local production-like run "
            "(SILENCED_SYSTEM_CHECKS = ['django_flexcharge.W018']).",
            id=ID.format("W018"),
        )
    ]
