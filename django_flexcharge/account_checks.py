"""System checks of ``FLEXCHARGE_ACCOUNTS`` and ``FLEXCHARGE_ACCOUNT_LOADER``: E060-E066, W061-W062.

A missing credential is a warning (W061), as for the flat settings, and an
error (E061) under ``manage.py check --deploy``.

The flat settings (the account "default") are checked by ``checks`` and
``security_checks``; this module checks every other declared account the same
way and names its alias in each message. A loader's accounts cannot be listed
at start-up: the same checks run when one is loaded (``accounts.account_config``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .accounts import DEFAULT, account_conf, account_problems
from .conf import FlexChargeSettings
from .exceptions import FlexChargeConfigurationError
from .signing import key_problem

ID = "django_flexcharge.{}"
CREDENTIALS = ("APP_KEY", "APP_SECRET", "MID", "SITE_ID")
#: A rescue window shorter than this is refused by FlexCharge (see ``checks``).
MIN_EXPIRY_DAYS = 14


def _declared() -> tuple[dict[str, Any], list[CheckMessage]]:
    value = getattr(settings, "FLEXCHARGE_ACCOUNTS", None) or {}
    if isinstance(value, dict):
        return value, []
    return {}, [
        Error(
            f"FLEXCHARGE_ACCOUNTS is a {type(value).__name__}, not a dict of alias -> settings.",
            hint="FLEXCHARGE_ACCOUNTS = {'brand-b': {'APP_KEY': ..., 'MID': ...}}",
            id=ID.format("E060"),
        )
    ]


@register(Tags.compatibility)
def check_accounts(**kwargs: Any) -> list[CheckMessage]:
    declared, messages = _declared()
    for alias, config in declared.items():
        if alias == DEFAULT:
            messages.append(
                Error(
                    "FLEXCHARGE_ACCOUNTS declares 'default': that account is the flat settings.",
                    hint="Set the default account's values as FLEXCHARGE_* settings instead.",
                    id=ID.format("E060"),
                )
            )
            continue
        problems = account_problems(alias, config)
        if problems:
            messages.append(
                Error(
                    f"FlexCharge account {alias!r}: {'; '.join(problems)}.",
                    hint="Each account is a dict of setting names without the FLEXCHARGE_ "
                    "prefix (APP_KEY, MID, SITE_ID, WEBHOOK_SUBSCRIBER_KEYS, ...).",
                    id=ID.format("E060"),
                )
            )
            continue
        messages += account_messages(alias, config)
    return messages


def _missing(alias: str) -> list[str]:
    own = account_conf(alias)
    return [key for key in CREDENTIALS if not own.is_configured(f"FLEXCHARGE_{key}")]


@register(Tags.compatibility, deploy=True)
def check_account_credentials_deploy(**kwargs: Any) -> list[CheckMessage]:
    declared, _ = _declared()
    messages: list[CheckMessage] = []
    for alias, config in declared.items():
        if alias == DEFAULT or account_problems(alias, config):
            continue  # check_accounts reports those
        missing = _missing(alias)
        if missing:
            messages.append(
                Error(
                    f"FlexCharge account {alias!r} has no {', '.join(missing)}: a deployed "
                    "site cannot call FlexCharge for it.",
                    hint="Copy them from that merchant's FlexCharge portal into its entry of "
                    "FLEXCHARGE_ACCOUNTS.",
                    id=ID.format("E061"),
                )
            )
    return messages


def account_messages(alias: str, config: dict[str, Any]) -> list[CheckMessage]:
    """What is wrong with one declared account, each message naming it."""
    messages: list[CheckMessage] = []
    own = account_conf(alias)
    missing = _missing(alias)
    if missing:
        messages.append(
            Warning(
                f"FlexCharge account {alias!r} has no {', '.join(missing)}.",
                hint="Copy them from that merchant's FlexCharge portal into its entry of "
                "FLEXCHARGE_ACCOUNTS.",
                id=ID.format("W061"),
            )
        )
    shared = [key for key in ("APP_KEY", "MID") if key not in config]
    if shared and not missing:
        # Falling back to the flat credentials makes it the default merchant under a new name.
        messages.append(
            Warning(
                f"FlexCharge account {alias!r} sets no {' or '.join(shared)} of its own: it "
                "uses the default account's.",
                hint="Give each account its own credentials (a brand with its own site may "
                "share the MID: then set MID to the same value explicitly).",
                id=ID.format("W062"),
            )
        )
    keys = config.get("WEBHOOK_SUBSCRIBER_KEYS")
    if isinstance(keys, list | tuple):
        for index, key in enumerate(keys):
            problem = key_problem(key)
            if problem is not None:
                messages.append(
                    Error(
                        f"FlexCharge account {alias!r}: WEBHOOK_SUBSCRIBER_KEYS[{index}] "
                        f"{problem.text}.",
                        hint="Paste the subscriber key exactly as that merchant's portal shows it.",
                        id=ID.format("E063"),
                    )
                )
    messages += _typed(alias, own, config)
    return messages


def _typed(alias: str, own: FlexChargeSettings, config: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key in sorted(config):
        if key in CREDENTIALS or key == "WEBHOOK_SUBSCRIBER_KEYS":
            continue
        try:
            value = getattr(own, key)
        except (FlexChargeConfigurationError, TypeError, ValueError) as err:
            messages.append(
                Error(
                    f"FlexCharge account {alias!r}: {key} is not usable ({err}).",
                    hint="Give it the type the flat FLEXCHARGE_ setting of that name takes.",
                    id=ID.format("E064"),
                )
            )
            continue
        if key == "MIT_EXPIRY_DAYS" and value < MIN_EXPIRY_DAYS:
            messages.append(
                Error(
                    f"FlexCharge account {alias!r}: MIT_EXPIRY_DAYS is {value}; FlexCharge "
                    f"needs {MIN_EXPIRY_DAYS} or more.",
                    hint="Use 21, the default, unless FlexCharge agreed otherwise.",
                    id=ID.format("E065"),
                )
            )
    return messages


@register(Tags.compatibility)
def check_account_loader(**kwargs: Any) -> list[CheckMessage]:
    path = getattr(settings, "FLEXCHARGE_ACCOUNT_LOADER", None)
    if not path or callable(path):
        return []
    try:
        loader = import_string(str(path))
    except ImportError as err:
        problem = f"cannot be imported ({err})"
    else:
        if callable(loader):
            return []
        problem = "is not callable"
    return [
        Error(
            f"FLEXCHARGE_ACCOUNT_LOADER {path!r} {problem}.",
            hint="Name a function loader(alias) -> dict | None, e.g. 'shop.flexcharge.load_account'.",
            id=ID.format("E066"),
        )
    ]
